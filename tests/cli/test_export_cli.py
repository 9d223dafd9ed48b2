"""`prefkit export`: TRL, the full pairs view as JSONL/Parquet, HF datasets, splits."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner, Result

import prefkit
from prefkit.cli.main import cli
from prefkit.synth import simulate


def invoke(*args: Any) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args], prog_name="prefkit")


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, int]:
    """A dataset with ties and a `split` column on prompts (p < 20: train, else test)."""
    ds = simulate(kind="pairwise", n_prompts=30, tie_threshold=0.3, seed=5)
    ids = ds.prompts.column("prompt_id").to_pylist()
    split = ["train" if i < 20 else "test" for i in range(len(ids))]
    ds = ds.with_tables(prompts=ds.prompts.append_column("split", pa.array(split)))
    path = tmp_path_factory.mktemp("export") / "sim"
    ds.save(path)
    j = ds.judgments
    decisive = j.filter(pc.not_equal(j.column("outcome"), 0))
    train_ids = set(ids[:20])
    n_train = sum(p in train_ids for p in decisive.column("prompt_id").to_pylist())
    return path, decisive.num_rows, n_train


def test_trl_needs_a_tie_policy_and_says_so(data: Any, tmp_path: Path) -> None:
    path, _, _ = data
    out = invoke("export", path, tmp_path / "t.jsonl", "--to", "trl")
    assert out.exit_code == 2
    assert "tie judgments" in out.output and "ties='drop'" in out.output
    assert not (tmp_path / "t.jsonl").exists()


def test_trl_jsonl_and_split(data: Any, tmp_path: Path) -> None:
    path, n, n_train = data
    out = invoke("export", path, tmp_path / "t.jsonl", "--to", "trl", "--ties", "drop")
    assert out.exit_code == 0, out.output
    rows = [json.loads(x) for x in (tmp_path / "t.jsonl").read_text().splitlines()]
    assert len(rows) == n and set(rows[0]) == {"prompt", "chosen", "rejected"}
    assert f"{n:,} pairs" in out.output
    out = invoke(
        "export",
        path,
        tmp_path / "train.jsonl",
        "--to",
        "trl",
        "--ties",
        "drop",
        "--split",
        "train",
    )
    assert out.exit_code == 0, out.output
    assert len((tmp_path / "train.jsonl").read_text().splitlines()) == n_train
    again = invoke("export", path, tmp_path / "train.jsonl", "--to", "trl", "--ties", "drop")
    assert again.exit_code == 2 and "already exists" in again.output


def test_parquet_and_jsonl_hold_the_full_view(data: Any, tmp_path: Path) -> None:
    path, n, n_train = data
    out = invoke(
        "export",
        path,
        tmp_path / "p.parquet",
        "--to",
        "parquet",
        "--ties",
        "drop",
        "--split",
        "train",
    )
    assert out.exit_code == 0, out.output
    t = pq.read_table(tmp_path / "p.parquet")
    assert t.num_rows == n_train
    assert {"prompt_id", "chosen_id", "rejected_id", "strength", "origin", "n_votes"} <= set(
        t.column_names
    )
    out = invoke(
        "export",
        path,
        tmp_path / "p.jsonl",
        "--to",
        "jsonl",
        "--ties",
        "drop",
        "--no-conversational",
    )
    assert out.exit_code == 0, out.output
    rows = [json.loads(x) for x in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert len(rows) == n and rows[0]["origin"] == "judgment" and isinstance(rows[0]["prompt"], str)


def test_split_errors(data: Any, tmp_path: Path) -> None:
    path, _, _ = data
    out = invoke(
        "export",
        path,
        tmp_path / "x.jsonl",
        "--to",
        "trl",
        "--ties",
        "drop",
        "--split",
        "validation",
    )
    assert out.exit_code == 2 and "the dataset has test, train" in out.output
    plain = tmp_path / "plain"
    simulate(kind="pairwise", n_prompts=5, seed=1).save(plain)
    out = invoke("export", plain, tmp_path / "y.jsonl", "--to", "trl", "--split", "train")
    assert out.exit_code == 2 and "no 'split' column" in out.output


def test_hf_one_split_per_value(data: Any, tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    path, n, n_train = data
    out = invoke("export", path, tmp_path / "hf", "--to", "hf", "--ties", "drop")
    assert out.exit_code == 0, out.output
    dd = datasets.load_from_disk(str(tmp_path / "hf"))
    assert sorted(dd) == ["test", "train"]
    assert dd["train"].num_rows == n_train and dd["test"].num_rows == n - n_train
    assert "strength" in dd["train"].column_names
    plain = tmp_path / "plain"
    simulate(kind="pairwise", n_prompts=5, seed=1).save(plain)
    out = invoke("export", plain, tmp_path / "hf2", "--to", "hf")
    assert out.exit_code == 0, out.output
    assert datasets.load_from_disk(str(tmp_path / "hf2")).num_rows == prefkit.load(plain).num_rows(
        "judgments"
    )
