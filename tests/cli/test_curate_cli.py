"""`prefkit curate`: sub-commands generated from the step registry, reports, recipes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pytest
from click.testing import CliRunner, Result

import prefkit
from prefkit.cli.curate import RESERVED, registry, summary_lines
from prefkit.cli.main import cli
from prefkit.curation import Outcome, Param, Step
from prefkit.synth import simulate
from tinysteps import drop_first, drop_ties, registered

TINY = (
    Step(
        "t_ties",
        "Drop tie judgments.",
        drop_ties,
        (Param("reason", "tie", "Why they went."),),
        paper="Nobody (2024)",
    ),
    Step(
        "t_first",
        "Drop the first prompts.",
        drop_first,
        (
            Param("n", 2, "How many prompts."),
            Param("shuffle", False, "A flag."),
            Param("mode", "a", "A mode.", choices=("a", "b")),
            Param("ratio", 0.5, "A ratio."),
            Param("keep", ["x"], "Names."),
            Param("note", None, "An optional note."),
        ),
    ),
    Step(
        "t_need",
        "Needs a value.",
        lambda ds, min_value: Outcome({}),
        (Param("min_value", 0.0, "V.", required=True),),
    ),
    Step("t_none", "Does nothing.", lambda ds: Outcome({})),
)


@pytest.fixture(autouse=True)
def tiny() -> Iterator[None]:
    with registered(TINY):
        yield


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("curate") / "sim"
    simulate(kind="pairwise", n_prompts=30, tie_threshold=0.3, seed=3).save(path)
    return path


def invoke(*args: Any) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args], prog_name="prefkit")


def test_help_lists_registered_steps_with_generated_options() -> None:
    out = invoke("curate", "--help")
    assert out.exit_code == 0, out.output
    assert "t_ties" in out.output and "Drop tie judgments." in out.output
    assert "--recipe FILE" in out.output
    assert "__recipe" not in out.output
    help_ = invoke("curate", "t_first", "--help").output
    for option in (
        "--n INTEGER",
        "--shuffle / --no-shuffle",
        "[a|b]",
        "--ratio FLOAT",
        "--keep A,B,...",
        "--note TEXT",
        "--report FILE",
        "--overwrite",
    ):
        assert option in help_, option
    assert "How many prompts." in help_
    assert "Nobody (2024)" in invoke("curate", "t_ties", "--help").output


def test_run_one_step_writes_dataset_summary_and_lineage(data: Path, tmp_path: Path) -> None:
    out = invoke(
        "curate",
        "t_first",
        data,
        tmp_path / "out",
        "--n",
        3,
        "--shuffle",
        "--mode",
        "b",
        "--keep",
        "p,q",
    )
    assert out.exit_code == 0, out.output
    assert "prompts: 30 -> 27; removed 3 (first-b 3)" in out.output
    assert "first-b (cascade)" in out.output  # responses and judgments went with them
    assert "wrote " in out.output
    ds = prefkit.load(tmp_path / "out")
    entry = ds.manifest.lineage[-1]
    assert entry["step"] == "t_first"
    assert entry["params"] == {
        "n": 3,
        "shuffle": True,
        "mode": "b",
        "ratio": 0.5,
        "keep": ["p", "q"],
        "note": None,
    }
    assert entry["removed"]["prompts"] == 3
    assert ds.num_rows("prompts") == 27


def test_report_csv_and_jsonl(data: Path, tmp_path: Path) -> None:
    ds = prefkit.load(data)
    ties = pc.sum(pc.equal(ds.judgments.column("outcome"), 0)).as_py()
    out = invoke(
        "curate", "t_ties", data, tmp_path / "a", "--report", tmp_path / "r.csv", "--reason", "tied"
    )
    assert out.exit_code == 0, out.output
    assert f"removed {ties} (tied {ties})" in out.output
    lines = (tmp_path / "r.csv").read_text().splitlines()
    assert lines[0] == '"table","id","reason","detail"'
    assert len(lines) == ties + 1
    out = invoke("curate", "t_ties", data, tmp_path / "b", "--report", tmp_path / "r.jsonl")
    rows = [json.loads(x) for x in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert len(rows) == ties and rows[0]["reason"] == "tie" and rows[0]["table"] == "judgments"


def test_step_without_report_writes_an_empty_one(data: Path, tmp_path: Path) -> None:
    out = invoke("curate", "t_none", data, tmp_path / "o", "--report", tmp_path / "r.csv")
    assert out.exit_code == 0, out.output
    assert "no rows removed or added" in out.output
    assert (tmp_path / "r.csv").read_text().strip() == '"table","id","reason","detail"'
    bad = invoke("curate", "t_none", data, tmp_path / "o2", "--report", tmp_path / "r.txt")
    assert bad.exit_code == 2 and "--report" in bad.output


def test_user_errors_exit_2(data: Path, tmp_path: Path) -> None:
    out = invoke("curate", "t_need", data, tmp_path / "o")
    assert out.exit_code == 2 and "--min-value" in out.output
    out = invoke("curate", "t_first", data, tmp_path / "o", "--mode", "c")
    assert out.exit_code == 2 and "'c' is not one of 'a', 'b'" in out.output
    out = invoke("curate", "t_first", data, tmp_path / "o", "--n", "x")
    assert out.exit_code == 2
    out = invoke("curate", "nope", data, tmp_path / "o")
    assert out.exit_code == 2 and "No such command 'nope'" in out.output
    (tmp_path / "exists").mkdir()
    out = invoke("curate", "t_none", data, tmp_path / "exists")
    assert out.exit_code == 2 and "already exists" in out.output
    out = invoke("curate", "t_none", data, data, "--overwrite")
    assert out.exit_code == 2 and "is DATASET" in out.output


def test_overwrite_replaces_output(data: Path, tmp_path: Path) -> None:
    (tmp_path / "o").mkdir()
    out = invoke("curate", "t_ties", data, tmp_path / "o", "--overwrite")
    assert out.exit_code == 0, out.output
    assert prefkit.load(tmp_path / "o").manifest.lineage[-1]["step"] == "t_ties"


RECIPE = """\
steps:
  - t_ties: {reason: tied}
  - step: t_first
    n: 2
  - t_none
"""


def test_recipe_runs_every_step_and_writes_reports(data: Path, tmp_path: Path) -> None:
    recipe = tmp_path / "steps.yaml"
    recipe.write_text(RECIPE)
    out = invoke(
        "curate", "--recipe", recipe, data, tmp_path / "out", "--report-dir", tmp_path / "rep"
    )
    assert out.exit_code == 0, out.output
    lines = out.output.splitlines()
    assert lines[0].startswith("[1/3] t_ties (") and "(tied " in lines[0]
    assert any(line.startswith("[2/3] t_first (") for line in lines)
    assert any(line.startswith("[3/3] t_none (") and "no rows removed" in line for line in lines)
    ds = prefkit.load(tmp_path / "out")
    assert [e["step"] for e in ds.manifest.lineage[-3:]] == ["t_ties", "t_first", "t_none"]
    assert sorted(p.name for p in (tmp_path / "rep").iterdir()) == [
        "01-t_ties.csv",
        "02-t_first.csv",
        "03-t_none.csv",
    ]
    # options may come in any order around --recipe
    again = invoke("curate", "--overwrite", "--recipe", recipe, data, tmp_path / "out", "-q")
    assert again.exit_code == 0 and again.output == ""
    assert prefkit.load(tmp_path / "out").fingerprint() == ds.fingerprint()


def test_recipe_errors_name_the_step_and_exit_2(data: Path, tmp_path: Path) -> None:
    recipe = tmp_path / "bad.yaml"
    recipe.write_text("steps:\n  - t_ties\n  - t_first: {n: many}\n")
    out = invoke("curate", "--recipe", recipe, data, tmp_path / "o")
    assert out.exit_code == 2
    assert "step 2" in out.output and "'n'" in out.output
    assert not (tmp_path / "o").exists()
    recipe.write_text("steps:\n  - nope\n")
    out = invoke("curate", "--recipe", recipe, data, tmp_path / "o")
    assert out.exit_code == 2 and "step 1" in out.output and "nope" in out.output
    out = invoke("curate", "--recipe", tmp_path / "missing.yaml", data, tmp_path / "o")
    assert out.exit_code == 2


def test_summary_lines_from_an_entry(data: Path) -> None:
    ds = prefkit.load(data)
    entry = {"removed": {}, "added": {}, "reasons": {}, "added_reasons": {}}
    assert summary_lines(entry, ds, ds) == ["no rows removed or added"]


def test_registered_steps_do_not_clash_with_cli_options() -> None:
    for step in registry().values():
        for p in step.params:
            assert p.name.replace("_", "-") not in RESERVED, (step.name, p.name)


def test_real_steps_build_their_commands() -> None:
    from prefkit.cli.curate import step_command

    for step in registry().values():
        cmd = step_command(step)
        assert cmd.name == step.name
        out = invoke("curate", step.name, "--help")
        assert out.exit_code == 0, (step.name, out.output)


def test_other_commands_do_not_import_the_steps() -> None:
    import subprocess
    import sys

    code = (
        "import sys; from prefkit.cli.main import cli; "
        "assert 'prefkit.curation.steps' not in sys.modules, 'steps imported eagerly'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
