"""The shape check: counts, lengths, empty texts, sources, annotators and ties.

Every number is checked against an independent count: by hand on a small dataset, with
plain Python/NumPy over the tables of synth data (and its planted word counts), against
the record counts published in the real datasets' SOURCE.md files, and with a tiny
offline tokenizer whose tokens are exactly the whitespace words.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from realdata import REAL

from prefkit import Dataset
from prefkit.diagnostics import Context, Finding, InspectOptions
from prefkit.diagnostics.checks import shape
from prefkit.schema import messages
from prefkit.synth import simulate


def _run(ds: Dataset, **options: Any) -> dict[str, Finding]:
    findings = shape.run(Context(ds, InspectOptions(embed="never", **options)))
    assert all(f.check == "shape" for f in findings)
    return {f.title: f for f in findings}


# --- helpers -----------------------------------------------------------------------------------
def _gini_pairs(x: np.ndarray) -> float:
    """Gini as the mean absolute difference over all pairs / (2 * mean): the textbook form."""
    x = np.asarray(x, float)
    return float(np.abs(x[:, None] - x[None, :]).sum() / (2 * len(x) ** 2 * x.mean()))


def test_gini_golden_values() -> None:
    assert shape.gini(np.array([3, 3, 3, 3])) == 0.0
    assert shape.gini(np.array([0, 0, 0, 4])) == pytest.approx(0.75)
    assert shape.gini(np.array([1, 2, 3, 4])) == pytest.approx(0.25)
    rng = np.random.default_rng(0)
    for _ in range(5):
        x = rng.integers(1, 100, size=rng.integers(2, 40))
        assert shape.gini(x) == pytest.approx(_gini_pairs(x))


def test_log_edges_are_geometric_and_cover_the_range() -> None:
    values = np.array([0, 3, 5, 1000])
    edges = shape.log_edges(values, 30)
    assert edges[0] == 3 and edges[-1] > 1000 and len(edges) == 31
    steps = np.diff(np.log(edges))
    assert np.allclose(steps, steps[0])
    counts, _ = np.histogram(values, edges)
    assert counts.sum() == 3  # the empty text is not in the picture


# --- a hand-built dataset ----------------------------------------------------------------------
def _hand() -> Dataset:
    prompts = pa.table(
        {"prompt_id": ["p1", "p2"], "messages": [messages(("user", "why is the sky blue")), []]}
    )
    texts = ["short answer", "a much longer answer here", "   ", "", "one"]
    responses = pa.table(
        {
            "response_id": ["r1", "r2", "r3", "r4", "r5"],
            "prompt_id": ["p1", "p1", "p1", "p2", "p2"],
            "messages": [messages(("assistant", t)) for t in texts],
            "source": ["m1", "m2", "m1", None, "m1"],
            # r4 is an image: no text expected.
            "media": [None, None, None, [{"uri": "img.png", "mime": "image/png"}], None],
        }
    )
    # (a, b, outcome, tie_kind, annotator): pair r1/r2 judged 3 times (both orders).
    rows = [
        ("r1", "r2", 1, None, "ann1"),
        ("r2", "r1", 0, "good", "ann1"),
        ("r1", "r2", -1, None, "ann1"),
        ("r1", "r3", 0, "bad", "ann1"),
        ("r2", "r3", 0, None, "ann2"),
        ("r4", "r5", 1, None, None),
    ]
    judgments = pa.table(
        {
            "judgment_id": [f"j{i}" for i in range(len(rows))],
            "prompt_id": ["p1"] * 5 + ["p2"],
            "a": [r[0] for r in rows],
            "b": [r[1] for r in rows],
            "outcome": pa.array([r[2] for r in rows], pa.int8()),
            "tie_kind": [r[3] for r in rows],
            "annotator_id": [r[4] for r in rows],
        }
    )
    return Dataset({"prompts": prompts, "responses": responses, "judgments": judgments})


def test_counts_and_judges_per_item_by_hand() -> None:
    c = _run(_hand())["Counts"].metrics
    assert (c["prompts"], c["responses"], c["judgments"], c["rankings"]) == (2, 5, 6, 0)
    assert c["responses_per_prompt_mean"] == pytest.approx(2.5)
    assert c["responses_per_prompt_max"] == 3
    # Items: {r1, r2} x3, {r1, r3}, {r2, r3}, {r4, r5}.
    assert c["judged_items"] == 4
    assert c["judges_per_item_mean"] == pytest.approx(6 / 4)
    assert c["judges_per_item_max"] == 3
    assert c["items_with_several_judges_share"] == pytest.approx(1 / 4)


def test_ties_by_hand() -> None:
    t = _run(_hand())["Ties"]
    assert t.metrics["tie_rate"] == pytest.approx(3 / 6)
    assert (t.metrics["good_ties"], t.metrics["bad_ties"], t.metrics["unspecified_ties"]) == (
        1,
        1,
        1,
    )
    assert sorted(t.ids["judgment_id"]) == ["j1", "j3", "j4"]
    assert t.severity == "warning"  # 50% >= 35%
    assert _run(_hand(), params={"shape": {"tie_warning": 0.6}})["Ties"].severity == "info"


def test_empty_texts_by_hand() -> None:
    e = _run(_hand())["Empty texts"]
    # r3 is whitespace only; r4 has no text but is an image, so it is not empty.
    assert e.ids == {"response_id": ["r3"], "prompt_id": ["p2"]}
    assert e.metrics["empty_responses"] == 1 and e.metrics["empty_prompts"] == 1
    assert e.severity == "warning"


def test_lengths_by_hand() -> None:
    f = _run(_hand())["Text lengths"]
    m = f.metrics
    # Responses with text or without media: r1 2, r2 5, r3 0, r5 1 words (r4 is media).
    words = np.array([2, 5, 0, 1])
    assert m["response_words_p50"] == pytest.approx(np.quantile(words, 0.5))
    assert m["response_words_p95"] == pytest.approx(np.quantile(words, 0.95))
    assert m["response_words_max"] == 5
    assert m["response_chars_max"] == len("a much longer answer here")
    assert "1 responses are media only" in f.verdict
    hist = next(p for p in f.plots if p.title.startswith("Responses length (words)"))
    assert sum(hist.series["count"]) == 3  # r3 has no words: left out of the picture
    assert hist.title.endswith("1 empty not shown")


def test_sources_and_annotators_by_hand() -> None:
    found = _run(_hand())
    s = found["Sources"].metrics
    assert s["sources"] == 2
    assert s["top_source_share"] == pytest.approx(3 / 5)  # m1 wrote r1, r3, r5
    rows = {r[0]: r for r in found["Sources"].tables[0].rows}
    # Times judged: m1 = r1 in j0-j3 (4) + r3 in j3, j4 (2) + r5 in j5 (1); m2 = r2 (4).
    assert (rows["m1"][3], rows["m2"][3], rows["(none)"][3]) == (7, 4, 1)
    a = found["Annotators"]
    assert a.metrics["annotators"] == 2
    assert a.metrics["top_annotator_share"] == pytest.approx(4 / 5)
    assert a.metrics["labels_with_annotator_share"] == pytest.approx(5 / 6)
    assert a.severity == "warning"
    assert a.ids == {"annotator_id": ["ann1"]}


def test_times_judged_per_source_matches_a_recount() -> None:
    ds = _hand()
    source = dict(
        zip(
            ds.responses.column("response_id").to_pylist(),
            ds.responses.column("source").to_pylist(),
            strict=True,
        )
    )
    appear = Counter(
        source[x] or "(none)"
        for x in ds.judgments.column("a").to_pylist() + ds.judgments.column("b").to_pylist()
    )
    rows = {r[0]: r for r in _run(ds)["Sources"].tables[0].rows}
    assert {k: r[3] for k, r in rows.items()} == dict(appear)


def test_empty_dataset_is_skipped() -> None:
    findings = shape.run(Context(Dataset(), InspectOptions(embed="never")))
    assert [f.severity for f in findings] == ["skipped"]


# --- synth ---------------------------------------------------------------------------------------
def test_synth_pairwise_counts_ties_and_lengths() -> None:
    ds = simulate(
        kind="pairwise",
        n_prompts=300,
        responses_per_prompt=3,
        judgments_per_pair=3,
        tie_threshold=0.3,
        n_annotators=12,
        seed=1,
    )
    found = _run(ds)
    c = found["Counts"].metrics
    assert {k: c[k] for k in ds.counts()} == ds.counts()
    assert c["judges_per_item_mean"] == 3 and c["items_with_several_judges_share"] == 1.0
    assert c["judged_items"] == 300 * 3
    outcome = np.asarray(ds.judgments.column("outcome"))
    t = found["Ties"].metrics
    assert t["ties"] == int(np.count_nonzero(outcome == 0))
    assert t["tie_rate"] == pytest.approx(np.mean(outcome == 0))
    # Response words against the simulator's planted word counts.
    planted = np.asarray(ds.responses.column("n_words"))
    m = found["Text lengths"].metrics
    for q, key in ((0.05, "p5"), (0.5, "p50"), (0.95, "p95")):
        assert m[f"response_words_{key}"] == pytest.approx(np.quantile(planted, q))
    assert m["response_words_max"] == planted.max()
    # Annotators: counts per annotator recounted with Counter.
    per = np.array(list(Counter(ds.judgments.column("annotator_id").to_pylist()).values()))
    a = found["Annotators"].metrics
    assert a["annotators"] == len(per) == 12
    assert a["gini"] == pytest.approx(_gini_pairs(per))
    assert a["top_annotator_share"] == pytest.approx(per.max() / per.sum())
    assert found["Annotators"].severity == "info"
    assert found["Sources"].severity == "skipped"
    assert found["Empty texts"].severity == "ok"


def test_synth_rankings_tied_pairs() -> None:
    ds = simulate(kind="rankings", n_prompts=120, responses_per_prompt=4, tie_threshold=0.3, seed=2)
    tied = pairs = 0
    for tiers in ds.rankings.column("tiers").to_pylist():
        n = sum(len(t) for t in tiers)
        pairs += n * (n - 1) // 2
        tied += sum(len(t) * (len(t) - 1) // 2 for t in tiers)
    t = _run(ds)["Ties"]
    assert t.metrics["ranking_tied_pairs"] == tied > 0
    assert t.metrics["ranking_pairs"] == pairs
    assert t.metrics["ranking_tied_pair_share"] == pytest.approx(tied / pairs)
    assert "tie_rate" not in t.metrics


def test_synth_battles_sources() -> None:
    ds = simulate(kind="battles", n_prompts=400, n_models=6, seed=3)
    s = _run(ds, top=3)["Sources"]
    per = Counter(ds.responses.column("source").to_pylist())
    assert s.metrics["sources"] == len(per) == 6
    assert s.metrics["top_source_share"] == pytest.approx(max(per.values()) / sum(per.values()))
    assert len(s.tables[0].rows) == 3
    assert [r[1] for r in s.tables[0].rows] == sorted(per.values(), reverse=True)[:3]


def test_dominant_annotator_threshold_is_a_parameter() -> None:
    ds = simulate(kind="pairwise", n_prompts=200, n_annotators=3, seed=4)
    a = _run(ds)["Annotators"]
    assert a.severity == "info"  # about a third each
    strict = _run(ds, params={"shape": {"dominant_share": 0.3}})["Annotators"]
    assert strict.severity == "warning"
    assert len(strict.ids["annotator_id"]) == 1


# --- model tokens --------------------------------------------------------------------------------
def _word_tokenizer(path: Path, corpus: list[str]) -> str:
    """A tiny WordLevel tokenizer split on whitespace: one token per whitespace word."""
    tokenizers = pytest.importorskip("tokenizers")
    transformers = pytest.importorskip("transformers")
    tok = tokenizers.Tokenizer(tokenizers.models.WordLevel(unk_token="[UNK]"))
    tok.pre_tokenizer = tokenizers.pre_tokenizers.WhitespaceSplit()
    tok.train_from_iterator(corpus, tokenizers.trainers.WordLevelTrainer(special_tokens=["[UNK]"]))
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]")
    fast.save_pretrained(path)
    return str(path)


def test_token_lengths_with_an_offline_tokenizer(tmp_path: Path) -> None:
    ds = simulate(kind="pairwise", n_prompts=150, seed=5)
    path = _word_tokenizer(tmp_path / "tok", ["the cat sat on the mat", "a dog ran far"])
    found = _run(ds, tokenizer=path)
    m = found["Text lengths"].metrics
    # Whitespace-split words and WordLevel tokens coincide, unknown words included.
    for key in ("p5", "p50", "p95", "max", "mean"):
        assert m[f"response_tokens_{key}"] == pytest.approx(m[f"response_words_{key}"])
        assert m[f"prompt_tokens_{key}"] == pytest.approx(m[f"prompt_words_{key}"])
    titles = [p.title for p in found["Text lengths"].plots]
    assert any(t.startswith("Responses length (tokens)") for t in titles)
    assert path in found["Text lengths"].verdict


def test_token_lengths_of_a_subword_tokenizer(tmp_path: Path) -> None:
    tokenizers = pytest.importorskip("tokenizers")
    transformers = pytest.importorskip("transformers")
    tok = tokenizers.Tokenizer(tokenizers.models.BPE(unk_token="[UNK]"))
    tok.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    tok.train_from_iterator(
        ["precise accurate vague wrong careful engine river"] * 5,
        tokenizers.trainers.BpeTrainer(vocab_size=60, special_tokens=["[UNK]"]),
    )
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]")
    fast.save_pretrained(tmp_path / "bpe")
    ds = simulate(kind="pairwise", n_prompts=60, seed=6)
    texts = [m[0]["content"] for m in ds.responses.column("messages").to_pylist()]
    expect = np.array([len(fast(t, add_special_tokens=False)["input_ids"]) for t in texts])
    m = _run(ds, tokenizer=str(tmp_path / "bpe"))["Text lengths"].metrics
    assert m["response_tokens_max"] == expect.max()
    assert m["response_tokens_p50"] == pytest.approx(np.quantile(expect, 0.5))
    assert m["response_tokens_mean"] > m["response_words_mean"]  # subwords: more tokens


# --- real data -----------------------------------------------------------------------------------
def _tie_count(ds: Dataset) -> int:
    return sum(1 for o in ds.judgments.column("outcome").to_pylist() if o == 0)


@pytest.mark.shared_data
@pytest.mark.parametrize("data", sorted(REAL))
def test_counts_and_ties_on_every_real_dataset(
    real_dataset: Callable[[str], Dataset], data: str
) -> None:
    ds = real_dataset(data)
    found = _run(ds, top=5)
    c = found["Counts"].metrics
    assert {k: c[k] for k in ds.counts()} == ds.counts()
    if ds.counts()["judgments"]:
        assert found["Ties"].metrics["ties"] == _tie_count(ds)
        items = Counter(
            (p, *sorted((a, b)))
            for p, a, b in zip(
                ds.judgments.column("prompt_id").to_pylist(),
                ds.judgments.column("a").to_pylist(),
                ds.judgments.column("b").to_pylist(),
                strict=True,
            )
        )
        assert c["judged_items"] == len(items)
        assert c["judges_per_item_max"] == max(items.values())
    lengths = found["Text lengths"].metrics
    if "response_words_max" in lengths:
        texts = [
            "\n\n".join(m["content"] or "" for m in msgs or [])
            for msgs in ds.responses.column("messages").to_pylist()
        ]
        assert lengths["response_words_max"] == max(len(t.split()) for t in texts)


@pytest.mark.shared_data
def test_real_ukp_convarg(real_dataset: Callable[[str], Dataset]) -> None:
    found = _run(real_dataset("ukp_convarg1"))
    # SOURCE.md: 84,445 assignments by 3,815 workers; values a1 32,849 / a2 32,491 / equal 19,105;
    # 5 labels per pair for 16,737 pairs and 4 for 190.
    t = found["Ties"].metrics
    assert t["ties"] == 19_105 and t["tie_rate"] == pytest.approx(19_105 / 84_445)
    assert found["Ties"].severity == "info"
    a = found["Annotators"].metrics
    assert a["annotators"] == 3_815
    assert a["labels_with_annotator_share"] == 1.0
    assert found["Annotators"].severity == "info"  # the busiest worker gave 5%
    assert found["Counts"].metrics["items_with_several_judges_share"] == 1.0
    assert found["Sources"].severity == "skipped"


@pytest.mark.shared_data
def test_real_vicuna80(real_dataset: Callable[[str], Dataset]) -> None:
    found = _run(real_dataset("vicuna80_human_battles"))
    # SOURCE.md: scores 1 -> 3,211, 2 -> 3,025, 3 (tie) -> 804; 9 models x 80 answers;
    # the 4 Guanaco models' answers are not included (4 x 80 empty responses).
    assert found["Ties"].metrics["ties"] == 804
    assert found["Sources"].metrics["sources"] == 9
    assert found["Empty texts"].metrics["empty_responses"] == 320
    assert found["Empty texts"].severity == "warning"
    assert found["Counts"].metrics["judges_per_item_max"] == 3
    assert found["Annotators"].severity == "skipped"  # no annotator ids


@pytest.mark.shared_data
def test_real_hh_rlhf_and_imagereward(real_dataset: Callable[[str], Dataset]) -> None:
    hh = _run(real_dataset("hh_rlhf_harmless_test"))
    assert hh["Ties"].severity == "ok" and hh["Ties"].metrics["tie_rate"] == 0
    assert hh["Counts"].metrics["judges_per_item_max"] == 1
    assert hh["Empty texts"].metrics["empty_responses"] == 4  # 4 raw pairs have an empty side
    ir = _run(real_dataset("imagereward_test"))
    # Images: responses are media, not empty texts, and their lengths are left out.
    assert ir["Empty texts"].severity == "ok"
    assert "response_words_p50" not in ir["Text lengths"].metrics
    assert ir["Ties"].metrics["ranking_tied_pairs"] > 0
    pairs = list(
        itertools.chain.from_iterable(
            [len(t) * (len(t) - 1) // 2 for t in tiers]
            for tiers in real_dataset("imagereward_test").rankings.column("tiers").to_pylist()
        )
    )
    assert ir["Ties"].metrics["ranking_tied_pairs"] == sum(pairs)
