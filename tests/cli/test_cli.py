"""The `prefkit` command: help and examples, exit codes, clean errors, the docs reference."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from prefkit.cli.main import cli
from prefkit.cli.reference import render_reference
from prefkit.schema import TableBuilder

REPO = Path(__file__).resolve().parents[2]
PAIRS = [
    {"prompt": "What is 2+2?", "chosen": "4", "rejected": "5"},
    {"prompt": "Capital of France?", "chosen": "Paris", "rejected": "Lyon"},
    {"prompt": "Say hi", "chosen": "Hi!", "rejected": ""},
]


def _jsonl(path: Path, rows: list[dict], extra: bytes = b"") -> Path:
    path.write_bytes(b"".join(json.dumps(r).encode() + b"\n" for r in rows) + extra)
    return path


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_every_command_has_help_with_an_example() -> None:
    code, out, _ = run("--help")
    assert code == 0
    for name, cmd in cli.commands.items():
        assert name in out
        c, text, _ = run(name, "--help")
        assert c == 0 and "Example" in text, name
        assert cmd.help


def test_docs_cli_reference_is_in_sync() -> None:
    doc = (REPO / "docs" / "cli.md").read_text()
    assert doc == render_reference(), (
        "regenerate with: python -m prefkit.cli.reference > docs/cli.md"
    )


def test_convert_info_validate_round_trip(tmp_path: Path) -> None:
    src = _jsonl(tmp_path / "pairs.jsonl", PAIRS)
    code, out, _ = run("convert", str(src), str(tmp_path / "ds"))
    assert code == 0, out
    assert (tmp_path / "ds" / "manifest.json").is_file()
    code, out, _ = run("info", str(tmp_path / "ds"), "--json")
    info = json.loads(out)
    assert info["counts"]["judgments"] == 3 and info["counts"]["prompts"] == 3
    assert info["outcomes"]["a_wins"] == 3 and info["kinds"] == ["pairwise"]
    code, out, _ = run("validate", str(tmp_path / "ds"), "--json")
    report = json.loads(out)
    assert code == 0 and report["ok"]
    # the empty rejected response is legal but flagged
    assert [p["code"] for p in report["problems"]] == ["empty-response"]
    code, out, _ = run("convert", str(tmp_path / "ds"), str(tmp_path / "back.jsonl"), "--to", "trl")
    assert code == 0, out
    back = [json.loads(line) for line in (tmp_path / "back.jsonl").read_text().splitlines()]
    key = lambda r: r["prompt"]  # noqa: E731
    assert sorted(back, key=key) == sorted(PAIRS, key=key)


def test_bad_record_exits_2_naming_file_line_field(tmp_path: Path) -> None:
    src = _jsonl(tmp_path / "bad.jsonl", PAIRS, b'{"prompt": "x", "chosen": 3, "rejected": "y"}\n')
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "prefkit",
            "convert",
            str(src),
            str(tmp_path / "out"),
            "--from",
            "trl",
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "bad.jsonl" in proc.stderr and "line 4" in proc.stderr and "chosen" in proc.stderr
    assert not (tmp_path / "out").exists()


def test_malformed_json_and_cut_gzip_are_clean_errors(tmp_path: Path) -> None:
    src = _jsonl(tmp_path / "broken.jsonl", PAIRS[:1], b'{"prompt": "x", "chosen": \n')
    code, _, err = run("convert", str(src), str(tmp_path / "o1"), "--from", "trl")
    assert code == 2 and "line 2" in err and "malformed JSON" in err
    gz = tmp_path / "cut.jsonl.gz"
    gz.write_bytes(
        gzip.compress(b"".join(json.dumps(r).encode() + b"\n" for r in PAIRS * 200))[:-40]
    )
    code, _, err = run("convert", str(gz), str(tmp_path / "o2"), "--from", "trl")
    assert code == 2 and "cut.jsonl.gz" in err and "gzip" in err


def test_quarantine_counts_reconcile(tmp_path: Path) -> None:
    src = _jsonl(tmp_path / "mixed.jsonl", PAIRS, b'{"prompt": "x"}\nnot json\n')
    code, out, _ = run(
        "convert", str(src), str(tmp_path / "ds"), "--from", "trl", "--on-error", "quarantine"
    )
    assert code == 0, out
    assert "kept 3" in out and "quarantined 2" in out
    side = tmp_path / "ds.quarantine.jsonl"
    assert len(side.read_text().splitlines()) == 2
    info = json.loads(run("info", str(tmp_path / "ds"), "--json")[1])
    q = info["origin"]["quarantine"]
    assert q["read"] == q["kept"] + q["quarantined"] == 5


def test_validate_exits_1_on_errors(tmp_path: Path) -> None:
    from prefkit import Dataset

    p, r, j = TableBuilder("prompts"), TableBuilder("responses"), TableBuilder("judgments")
    p.add(prompt_id="p", messages=[{"role": "user", "content": "q"}])
    r.add(response_id="r", prompt_id="p", messages=[{"role": "assistant", "content": "a"}])
    j.add(judgment_id="j", prompt_id="p", a="r", b="r", outcome=1)
    Dataset({"prompts": p.build(), "responses": r.build(), "judgments": j.build()}).save(
        tmp_path / "bad"
    )
    code, out, _ = run("validate", str(tmp_path / "bad"))
    assert code == 1 and "self-comparison" in out


def test_unknown_source_and_existing_output(tmp_path: Path) -> None:
    code, _, err = run("info", str(tmp_path / "nope.jsonl"), "--from", "trl")
    assert code == 2 and "nope.jsonl" in err
    src = _jsonl(tmp_path / "pairs.jsonl", PAIRS)
    assert run("convert", str(src), str(tmp_path / "ds"))[0] == 0
    code, _, err = run("convert", str(src), str(tmp_path / "ds"))
    assert code == 2 and "already exists" in err
    assert run("convert", str(src), str(tmp_path / "ds"), "--overwrite")[0] == 0


@pytest.mark.parametrize("kind", ["pairwise", "battles", "ratings", "rankings"])
def test_synth_writes_a_valid_dataset_with_planted_truth(tmp_path: Path, kind: str) -> None:
    out = tmp_path / kind
    code, text, _ = run("synth", "--kind", kind, "--n-prompts", "30", "--seed", "3", str(out))
    assert code == 0, text
    manifest = json.loads((out / "manifest.json").read_text())
    assert (
        manifest["planted"]["config"]["kind"] == kind
        if "config" in manifest["planted"]
        else manifest["planted"]
    )
    code, text, _ = run("validate", str(out))
    assert code == 0, text
