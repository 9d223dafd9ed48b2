"""Gatherer / KeyIndex: values fetched by id equal a plain lookup, in any order, from
memory, from whole columns and from the row-group cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import prefkit
from prefkit.io import gather
from prefkit.io.gather import Gatherer, KeyIndex


@pytest.mark.parametrize("in_memory_bytes", [0, 1 << 40])
def test_gather_matches_a_dict_lookup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, in_memory_bytes: int
) -> None:
    monkeypatch.setattr(gather, "IN_MEMORY_BYTES", in_memory_bytes)
    monkeypatch.setattr(gather, "CACHE_GROUPS", 2)
    monkeypatch.setattr("prefkit.io.store.ROW_GROUP_ROWS", 64)  # many small row groups
    ds = prefkit.synth.simulate(kind="pairwise", n_prompts=400, seed=5)
    ds.save(tmp_path / "ds")
    on_disk = prefkit.load(tmp_path / "ds")
    responses = ds.responses
    truth = dict(
        zip(
            responses.column("response_id").to_pylist(),
            responses.column("messages").to_pylist(),
            strict=True,
        )
    )
    rng = np.random.default_rng(0)
    ids = list(truth)
    wanted = [ids[i] for i in rng.integers(0, len(ids), 500)] + ["no-such-id"]
    rng.shuffle(wanted)
    for source in (ds, on_disk):
        got = (
            Gatherer(source, "responses", "response_id", "messages")
            .take(pa.array(wanted))
            .to_pylist()
        )
        assert got == [truth.get(i) for i in wanted]


def test_key_index_handles_uneven_ids_and_hash_collisions() -> None:
    keys = pa.array(["a", "bb", "ccc", "dddd", "bb2"])
    index = KeyIndex(keys)
    assert index.positions(pa.array(["ccc", "zz", "a", "bb2", "a"])).tolist() == [2, -1, 0, 4, 0]
    # repeated ids (a collision of the hashes) switch to exact search; the first wins
    dup = KeyIndex(pa.array(["x", "y", "x"]))
    assert dup.positions(pa.array(["x", "y", "q"])).tolist()[1:] == [1, -1]
    assert dup.positions(pa.array(["x"])).tolist()[0] in (0, 2)
