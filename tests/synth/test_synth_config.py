"""SynthConfig checks and the fast TRL benchmark writer."""

from __future__ import annotations

import dataclasses
import math

import orjson
import pytest

from prefkit.errors import PrefkitError
from prefkit.synth import SynthConfig, simulate, write_trl_jsonl
from prefkit.synth.text import BAD_ADJECTIVES, GOOD_ADJECTIVES

SIMPLE_TYPES = {"int", "float", "str", "bool", "tuple[str, ...]", "tuple[float, ...]"}


def test_every_knob_is_simple_and_documented():
    for f in dataclasses.fields(SynthConfig):
        assert f.type in SIMPLE_TYPES, f.name
        assert f.metadata.get("help"), f.name


def test_docs_mention_every_knob():
    from pathlib import Path

    docs = Path(__file__).resolve().parents[2] / "docs" / "synth.md"
    if not docs.exists():
        pytest.skip("docs/synth.md not present")
    text = docs.read_text()
    missing = [f.name for f in dataclasses.fields(SynthConfig) if f"`{f.name}`" not in text]
    assert not missing


@pytest.mark.parametrize(
    ("knob", "value"),
    [
        ("kind", "votes"),
        ("responses_per_prompt", 1),
        ("flip_rate", 1.5),
        ("gamma", 0.0),
        ("beta", 0.0),
        ("judgments_per_pair", 50),
        ("pairs_per_prompt", 2),
        ("attributes", ("only",)),
        ("attribute_weights", (1.0, 2.0)),
        ("annotator_flip_rates", (0.1, 0.2)),
        ("n_cyclic_triads", 2000),
        ("tie_threshold", -1.0),
        ("skip_threshold", math.inf),
        ("annotator_kind", "robot"),
        ("duplicate_rate", 1.2),
    ],
)
def test_bad_knobs_name_the_knob(knob, value):
    with pytest.raises(PrefkitError, match=knob):
        SynthConfig(**{knob: value})


def test_copies_must_leave_originals():
    with pytest.raises(PrefkitError, match=r"n_prompts.*duplicate_rate"):
        SynthConfig(n_prompts=10, duplicate_rate=0.6, near_duplicate_rate=0.5)
    cfg = SynthConfig(n_prompts=10, duplicate_rate=0.8)  # originals copied more than once
    assert cfg.n_base_prompts == 2
    assert len(simulate(cfg).manifest.planted["duplicates"]["exact"]) == 8


def test_cyclic_triads_only_pairwise():
    with pytest.raises(PrefkitError, match="n_cyclic_triads"):
        SynthConfig(kind="rankings", n_cyclic_triads=1)


def test_unknown_override_is_an_error():
    with pytest.raises(PrefkitError, match="flip_rat"):
        simulate(flip_rat=0.1)
    with pytest.raises(PrefkitError, match="colour"):
        SynthConfig.from_dict({"colour": 1})


def test_round_trip_through_dict():
    cfg = SynthConfig(beta=math.inf, attributes=["a", "b"], annotator_flip_rates=[0.1] * 20)
    data = orjson.loads(orjson.dumps(cfg.to_dict()))
    assert data["beta"] == "inf" and data["skip_threshold"] == "-inf"
    back = SynthConfig.from_dict(data)
    assert back == cfg and isinstance(back.attributes, tuple)


def test_trl_writer(tmp_path):
    path = write_trl_jsonl(
        tmp_path / "pairs.jsonl", 3000, seed=4, prompt_words=30, response_words=80
    )
    again = write_trl_jsonl(
        tmp_path / "again.jsonl", 3000, seed=4, prompt_words=30, response_words=80
    )
    assert path.read_bytes() == again.read_bytes()
    lines = path.read_bytes().splitlines()
    assert len(lines) == 3000
    rows = [orjson.loads(line) for line in lines]
    assert all(set(r) == {"prompt", "chosen", "rejected"} for r in rows)
    assert all(isinstance(v, str) and v for r in rows for v in r.values())
    words = sum(len(r["chosen"].split()) for r in rows) / len(rows)
    assert 60 < words < 100
    assert 22 < sum(len(r["prompt"].split()) for r in rows) / len(rows) < 38
    good, bad = set(GOOD_ADJECTIVES), set(BAD_ADJECTIVES)

    def net(text: str) -> int:
        ws = [w.strip(".,?").lower() for w in text.split()]
        return sum(w in good for w in ws) - sum(w in bad for w in ws)

    assert sum(net(r["chosen"]) > net(r["rejected"]) for r in rows) > 0.6 * len(rows)
    assert write_trl_jsonl(tmp_path / "empty.jsonl", 0).read_bytes() == b""


def test_trl_writer_batches_join_cleanly(tmp_path):
    path = write_trl_jsonl(tmp_path / "b.jsonl", 1001, batch_size=100)
    lines = path.read_bytes().split(b"\n")
    assert lines[-1] == b"" and len(lines) == 1002
    assert all(orjson.loads(line) for line in lines[:-1])


def test_trl_writer_file_loads_as_trl(tmp_path):
    from prefkit import load

    path = write_trl_jsonl(tmp_path / "pairs.jsonl", 200, seed=1)
    try:
        ds = load(path, format="trl")
    except PrefkitError as exc:  # the TRL adapter is optional for this test
        pytest.skip(f"trl format unavailable: {exc}")
    assert ds.judgments.num_rows == 200
