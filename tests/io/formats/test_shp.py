"""The Stanford SHP adapter, on a small fixture in SHP's column layout (no SHP data ships)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import orjson
import pyarrow as pa
import pytest

import prefkit
from prefkit.errors import InputError
from prefkit.io.api import detect_format
from prefkit.io.formats.base import REGISTRY, Sample
from prefkit.io.records import iter_records


def _row(post, domain, ratio, history, ida, idb, ta, tb, sa, sb, text_a, text_b, label):
    pref_t, dis_t = (ta, tb) if label == 1 else (tb, ta)
    pref_s, dis_s = (sa, sb) if label == 1 else (sb, sa)
    return {
        "post_id": post,
        "domain": domain,
        "upvote_ratio": ratio,
        "history": history,
        "c_root_id_A": ida,
        "c_root_id_B": idb,
        "created_at_utc_A": ta,
        "created_at_utc_B": tb,
        "score_A": sa,
        "score_B": sb,
        "human_ref_A": text_a,
        "human_ref_B": text_b,
        "labels": label,
        "seconds_difference": float(pref_t - dis_t),
        "score_ratio": pref_s / dis_s,
    }


ROWS = [
    _row(
        "p1",
        "askscience_train",
        0.98,
        "Why is the sky blue?",
        "c1",
        "c2",
        1000,
        900,
        52,
        10,
        "Rayleigh scattering.",
        "Because it is.",
        1,
    ),
    _row(
        "p1",
        "askscience_train",
        0.98,
        "Why is the sky blue?",
        "c3",
        "c1",
        950,
        1000,
        4,
        52,
        "Magic.",
        "Rayleigh scattering.",
        0,
    ),
    _row(
        "p2",
        "legaladvice_train",
        0.71,
        "Can my landlord keep my deposit?",
        "c4",
        "c5",
        5000,
        5100,
        3,
        30,
        "Yes.",
        "Only for damage beyond wear.",
        0,
    ),
]


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    return path


def _csv(path: Path, rows: list[dict]) -> Path:
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


def test_mapping(tmp_path):
    path = _jsonl(tmp_path / "shp.jsonl", ROWS)
    assert detect_format(path).name == "shp"
    ds = prefkit.load(path)
    assert ds.counts()["prompts"] == 2
    assert ds.counts()["responses"] == 5  # c1 answers p1 twice: one response
    assert ds.counts()["judgments"] == 3
    prompts = {r["prompt_id"]: r for r in ds.prompts.to_pylist()}
    responses = {r["response_id"]: r for r in ds.responses.to_pylist()}
    for j, rec in zip(ds.judgments.to_pylist(), ROWS, strict=True):
        p = prompts[j["prompt_id"]]
        assert p["messages"] == [{"role": "user", "content": rec["history"]}]
        assert (p["post_id"], p["domain"], p["upvote_ratio"]) == (
            rec["post_id"],
            rec["domain"],
            rec["upvote_ratio"],
        )
        a, b = responses[j["a"]], responses[j["b"]]
        assert a["messages"] == [{"role": "assistant", "content": rec["human_ref_A"]}]
        assert b["messages"] == [{"role": "assistant", "content": rec["human_ref_B"]}]
        assert (a["score"], b["score"]) == (rec["score_A"], rec["score_B"])
        assert (a["c_root_id"], a["created_at_utc"]) == (
            rec["c_root_id_A"],
            rec["created_at_utc_A"],
        )
        assert j["outcome"] == (1 if rec["labels"] == 1 else -1)
        assert j["strength"] == pytest.approx(rec["score_ratio"])
        assert j["seconds_difference"] == rec["seconds_difference"]
        assert j["annotator_kind"] == "human" and j["annotator_id"] is None


def test_csv_container_and_computed_strength(tmp_path):
    rows = [{k: v for k, v in r.items() if k != "score_ratio"} for r in ROWS]
    ds = prefkit.load(_csv(tmp_path / "shp.csv", rows), format="shp")
    assert ds.judgments.column("strength").to_pylist() == pytest.approx(
        [r["score_ratio"] for r in ROWS]
    )
    assert ds.judgments.column("outcome").to_pylist() == [1, -1, -1]
    assert pa.types.is_int64(ds.responses.column("created_at_utc").type)
    assert sorted(ds.responses.column("created_at_utc").to_pylist()) == [900, 950, 1000, 5000, 5100]


@pytest.mark.parametrize("suffix", ["jsonl", "csv", "parquet"])
def test_round_trip_restores_every_column(tmp_path, suffix):
    ds = prefkit.load(_jsonl(tmp_path / "shp.jsonl", ROWS))
    out = prefkit.save(ds, tmp_path / f"out.{suffix}", "shp")
    back = prefkit.load(out)
    assert back.manifest.source["format"] == "shp"
    written = sorted(
        (r.data for r in iter_records(out)), key=lambda r: (r["post_id"], r["c_root_id_A"])
    )
    expected = sorted(ROWS, key=lambda r: (r["post_id"], r["c_root_id_A"]))
    assert len(written) == len(expected)
    for got, want in zip(written, expected, strict=True):
        assert set(got) == set(want)
        for key, value in want.items():
            if isinstance(value, (int, float)):
                assert float(got[key]) == pytest.approx(value), key
            else:
                assert got[key] == value, key


def test_writer_from_plain_pairs_keeps_only_what_it_has(tmp_path):
    rows = [{"prompt": f"q{i}", "chosen": f"good {i}", "rejected": f"bad {i}"} for i in range(20)]
    ds = prefkit.from_pairs(rows)
    out = prefkit.save(ds, tmp_path / "out.jsonl", "shp")
    written = [json.loads(line) for line in out.read_text().splitlines()]
    assert all(set(r) == {"history", "human_ref_A", "human_ref_B", "labels"} for r in written)
    # A is the pair's first response in the judgment, i.e. chosen: from_pairs judgments say a wins.
    assert all(r["labels"] == 1 and r["human_ref_A"].startswith("good") for r in written)
    # Pairs without a judgment (from scores) get a content-hashed order, not always A.
    scored = prefkit.Dataset(
        {
            "prompts": ds.prompts,
            "responses": ds.responses.set_column(
                ds.responses.column_names.index("score"),
                "score",
                pa.array(
                    [
                        1.0 if m[0]["content"].startswith("good") else 0.0
                        for m in ds.responses.column("messages").to_pylist()
                    ]
                ),
            ),
        }
    )
    out = prefkit.save(scored, tmp_path / "scored.jsonl", "shp", scores="best_vs_worst")
    written = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(written) == 20
    assert 0 < sum(r["labels"] for r in written) < 20
    for r in written:
        good = r["human_ref_A"] if r["labels"] == 1 else r["human_ref_B"]
        assert good.startswith("good")
        assert (r["score_A"] if r["labels"] == 1 else r["score_B"]) == 1.0


BAD = [
    ({**ROWS[0], "labels": 2}, "labels", "expected 1"),
    ({**ROWS[0], "labels": None}, "labels", "is missing"),
    ({k: v for k, v in ROWS[0].items() if k != "human_ref_B"}, "human_ref_B", "is missing"),
    ({**ROWS[0], "score_A": "many"}, "score_A", "expected a number"),
    ({**ROWS[0], "history": 7}, "history", "expected a string"),
]


@pytest.mark.parametrize(("bad", "field", "words"), BAD)
def test_bad_record_names_file_line_and_field(tmp_path, bad, field, words):
    path = _jsonl(tmp_path / "bad.jsonl", [ROWS[0], bad])
    with pytest.raises(InputError) as info:
        prefkit.load(path, format="shp")
    err = info.value
    assert (err.file, err.where, err.field) == (str(path), "line 2", field)
    assert words in err.message


def test_quarantine_counts_reconcile(tmp_path):
    path = _jsonl(tmp_path / "mixed.jsonl", [ROWS[0], BAD[0][0], ROWS[1], BAD[2][0], ROWS[2]])
    ds = prefkit.load(path, format="shp", on_error="quarantine")
    q = ds.manifest.quarantine
    assert (q["read"], q["kept"], q["quarantined"]) == (5, 3, 2)
    assert ds.counts()["judgments"] == 3


def test_sniff():
    sniff = REGISTRY["shp"].sniff
    p = Path("x.jsonl")
    assert sniff(Sample(p, ROWS, "jsonl")) >= 0.9
    assert sniff(Sample(p, [{"prompt": "q", "chosen": "a", "rejected": "b"}], "jsonl")) == 0
    assert sniff(Sample(p, [], None)) == 0
    assert REGISTRY["trl"].sniff(Sample(p, ROWS, "jsonl")) == 0
