"""The coverage check and its n-gram machinery.

Golden values come from a brute-force reference written here in plain Python (regex
normalisation, sets of word tuples), independent of the vectorised hashing in
``prefkit.diagnostics.ngrams``. Planted contamination on synth prompts must be recovered
exactly (recall = precision = 1): the rule is deterministic, so any miss is a bug, not
noise. Texts in these tests are ASCII, where Python's ``[^\\w\\s]`` and the module's
``[\\p{P}\\p{S}]`` remove the same characters.
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter, defaultdict
from collections.abc import Sequence

import numpy as np
import orjson
import pyarrow as pa
import pytest
from realdata import REAL, SHARED_DATA

import prefkit
from prefkit.dataset import Dataset
from prefkit.diagnostics import inspect
from prefkit.diagnostics import ngrams as ng
from prefkit.diagnostics.checks import coverage
from prefkit.diagnostics.context import Context, InspectOptions
from prefkit.diagnostics.evalset import read_prompts
from prefkit.diagnostics.findings import Finding
from prefkit.views import prompt_text


# --- the brute-force reference -------------------------------------------------------------------
def _words(text: str) -> list[str]:
    return re.sub(r"[^\w\s]|_", " ", text.lower()).split()


def _grams(words: list[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def _truth(
    evals: Sequence[str], train: Sequence[str], n: int = 13, min_share: float = 0.0
) -> dict[tuple[int, int], tuple[int, float]]:
    """{(train row, eval row): (shared keys, share)} under the documented rule."""
    postings: dict[tuple[str, ...], list[int]] = defaultdict(list)  # n-gram -> train rows
    whole: dict[tuple[str, ...], list[int]] = defaultdict(list)  # short text -> train rows
    for t, text in enumerate(train):
        w = _words(text)
        whole[tuple(w)].append(t)
        for g in _grams(w, n):
            postings[g].append(t)
    out = {}
    for e, text in enumerate(evals):
        we = _words(text)
        if not we:
            continue
        if len(we) < n:
            for t in whole.get(tuple(we), []):
                out[(t, e)] = (1, 1.0)
            continue
        ge = _grams(we, n)
        shared = Counter(t for g in ge for t in postings.get(g, []))
        for t, k in shared.items():
            if k / len(ge) >= min_share:
                out[(t, e)] = (k, k / len(ge))
    return out


def _texts(ds: Dataset) -> tuple[list[str], list[str]]:
    prompts = ds.table("prompts")
    texts = prompt_text(prompts.column("messages").combine_chunks()).to_pylist()
    return prompts.column("prompt_id").to_pylist(), [t or "" for t in texts]


def _run(ds: Dataset, against: Sequence[str], **options: object) -> list[Finding]:
    report = inspect(ds, checks=["coverage"], against=list(against), **options)  # type: ignore[arg-type]
    orjson.dumps(report.to_dict())  # findings are plain data
    return report.findings


def _pairs_ds(prompts: Sequence[str], chosen: Sequence[str] | None = None) -> Dataset:
    n = len(prompts)
    return prefkit.from_pairs(
        pa.table(
            {
                "prompt": list(prompts),
                "chosen": list(chosen) if chosen else [f"yes {i}" for i in range(n)],
                "rejected": [f"no {i}" for i in range(n)],
            }
        )
    )


# --- n-grams ------------------------------------------------------------------------------------------
def test_normalize_lowercases_and_splits_on_punctuation() -> None:
    got = ng.normalize(["Hello, World!  state-of-the-art\tA_b", "", None, " ?! ", "x"]).to_pylist()
    assert got == [
        ["hello", "world", "state", "of", "the", "art", "a", "b"],
        None,
        None,
        None,
        ["x"],
    ]


@pytest.mark.parametrize("n", [1, 3, 5])
def test_pairs_match_brute_force(n: int, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(n)
    vocab = ["a", "b", "c"]  # small, so that many n-grams collide

    def text() -> str:
        return " ".join(rng.choice(vocab) for _ in range(rng.randint(0, 12))) + rng.choice(
            ["", "."]
        )

    evals = [text() for _ in range(40)]
    train = [text() for _ in range(150)]
    want = _truth(evals, train, n)
    index = ng.EvalIndex.build(evals, n)
    for chunk in (ng.PAIR_CHUNK, 7):  # 7: expand pairs a few texts at a time
        monkeypatch.setattr(ng, "PAIR_CHUNK", chunk)
        p = index.pairs(train)
        got = {
            (int(t), int(e)): (int(s), float(f))
            for t, e, s, f in zip(p.train, p.eval, p.shared, p.share, strict=True)
        }
        assert got.keys() == want.keys()
        for k, (s, f) in want.items():
            assert got[k][0] == s and got[k][1] == pytest.approx(f)
    assert len(want) > 50  # the test exercises many pairs


def test_find_overlaps_streams_batches_like_one_pass() -> None:
    rng = random.Random(0)
    vocab = [f"w{i}" for i in range(8)]
    evals = [" ".join(rng.choices(vocab, k=rng.randint(1, 9))) for _ in range(30)]
    train = [" ".join(rng.choices(vocab, k=rng.randint(1, 9))) for _ in range(120)]
    ids = [f"t{i}" for i in range(len(train))]
    want = _truth(evals, train, 4, min_share=0.5)
    batches = [
        (pa.array(ids[lo : lo + 17]), pa.array(train[lo : lo + 17])) for lo in range(0, 120, 17)
    ]
    over = ng.find_overlaps(ng.EvalIndex.build(evals, 4), batches, min_share=0.5)
    assert sorted(set(over.flagged_ids)) == sorted({ids[t] for t, _ in want})
    assert over.n_pairs == len(want)
    for e in range(len(evals)):
        shares = [f for (t, ee), (_, f) in want.items() if ee == e]
        assert over.best_share[e] == pytest.approx(max(shares, default=0.0))
        assert over.matches[e] == len(shares)
        if shares:
            assert over.best_id[e] is not None
            t = ids.index(over.best_id[e])
            assert want[(t, e)][1] == pytest.approx(max(shares))
    assert over.scanned == 120


def test_hashed_counts_count_unigrams_and_bigrams() -> None:
    m = ng.hashed_counts(["a b a", "", "c"], dim=1 << 16)
    assert m.shape == (3, 1 << 16)
    assert m.sum(axis=1).ravel().tolist() == [[5.0, 0.0, 1.0]]  # 3 unigrams + 2 bigrams
    assert sorted(m[0].data.tolist()) == [1.0, 1.0, 1.0, 2.0]  # "a" twice


# --- contamination: planted on synth prompts ---------------------------------------------------
UNRELATED = [
    "What is the boiling point of water on top of Mount Everest and why does it differ?",
    "Translate the phrase good morning into Japanese.",
    "Write a limerick about a cat who learns to play the violin in the moonlight at midnight.",
    "How many bones are in the adult human body?",
    "Explain the difference between mitosis and meiosis to a ten year old student in simple words.",
    "zebra",
]


def _planted() -> tuple[Dataset, list[str], set[int]]:
    """Synth training prompts and an eval set with planted copies; returns the planted rows."""
    ds = prefkit.synth.simulate(kind="pairwise", n_prompts=300, seed=3)
    _, train = _texts(ds)
    long_ = [t for t in train if len(_words(t)) >= 14]
    short = [t for t in train if 0 < len(_words(t)) < 13]
    evals: list[str] = []
    planted: set[int] = set()

    def add(text: str, leaked: bool) -> None:
        if leaked:
            planted.add(len(evals))
        evals.append(text)

    for t in long_[:8]:
        add(t, True)  # verbatim, long
    for t in short[:6]:
        add(t, True)  # verbatim, short: whole-text equality
    for t in long_[8:14]:
        # light edit: case, punctuation, spacing, and the last word replaced
        words = t.split()
        add("  " + " ".join(words[:-1]).upper().replace(".", ";") + " zebra!!", True)
    for t in short[6:8]:
        words = t.split()
        add(" ".join(words[:-1]) + " zebra", False)  # short and edited: not caught (documented)
    for t in UNRELATED:
        add(t, False)
    return ds, evals, planted


def test_planted_contamination_is_recovered_exactly() -> None:
    ds, evals, planted = _planted()
    ids, train = _texts(ds)
    truth = _truth(evals, train)
    assert {e for _, e in truth} == planted  # the reference agrees with the plan
    contamination, cover = _run(ds, evals, embed="never")
    assert contamination.title == "Contamination with the eval prompts"
    m = contamination.metrics
    table_rows = contamination.tables[0].rows
    found = {int(r[0][1:]) - 1 for r in table_rows}
    assert len(table_rows) == len(planted) <= 20
    recall = len(found & planted) / len(planted)
    precision = len(found & planted) / len(found)
    assert (recall, precision) == (1.0, 1.0)
    assert m["contaminated"] == len(planted) == 20
    assert m["contaminated_share"] == pytest.approx(20 / len(evals))
    assert m["short_eval_prompts"] == sum(1 for e in evals if 0 < len(_words(e)) < 13)
    assert contamination.severity == "error"  # 20 of 34 >= 5%
    # every training prompt concerned, including synth duplicates of the copied prompts
    assert set(contamination.ids["prompt_id"]) == {ids[t] for t, _ in truth}
    assert m["training_prompts_flagged"] == len({t for t, _ in truth})
    assert m["pairs"] == len(truth)
    # verbatim copies are fully contained; the edited ones lost their last n-gram
    for row in table_rows:
        e = int(row[0][1:]) - 1
        best = max(f for (t, ee), (_, f) in truth.items() if ee == e)
        assert row[5] == pytest.approx(round(best, 3))
    assert m["fully_contained"] == 14
    # coverage: copies are their own nearest neighbours (TF-IDF cosine 1)
    assert cover.metrics["method"] == "lexical"
    assert cover.metrics["covered_share"] >= 14 / len(evals)


def test_palm_rule_counts_share_of_ngrams_per_training_prompt() -> None:
    sentence = (
        "the committee reviewed every proposal submitted during the spring session and "
        "selected three projects for funding after a long public debate about priorities"
    )
    words = sentence.split(" ")  # 23 words: 16 distinct 8-grams
    evals = [" ".join(words)]
    most = " ".join(words[:21])  # 14 of 16 8-grams (88%)
    some = " ".join(["intro", *words[:12]])  # 5 of 16 (31%)
    ds = _pairs_ds([most, some, "unrelated prompt about cooking rice"])
    ids, train = _texts(ds)
    rows = {t: ids[i] for i, t in enumerate(train)}
    any_gram = _run(ds, evals, embed="never", params={"coverage": {"n": 8}})[0]
    assert set(any_gram.ids["prompt_id"]) == {rows[most], rows[some]}
    palm = _run(ds, evals, embed="never", params={"coverage": {"n": 8, "min_share": 0.7}})[0]
    assert palm.ids["prompt_id"] == [rows[most]]
    assert palm.tables[0].rows[0][4:6] == [14, round(14 / 16, 3)]
    thirteen = _run(ds, evals, embed="never")[0]  # default n = 13: 9 and 0 shared 13-grams
    assert thirteen.ids["prompt_id"] == [rows[most]]


def test_responses_are_scanned_on_request() -> None:
    leaked = (
        "Describe the water cycle in detail, including evaporation, condensation, "
        "precipitation and the role of the sun."
    )  # 17 words
    ds = _pairs_ds(
        ["What is rain?", "Tell me about clouds."], [f"Sure. {leaked} Here it is.", "ok"]
    )
    plain = _run(ds, [leaked], embed="never")[0]
    assert plain.severity == "ok" and "response_id" not in plain.ids
    assert "contaminated_via_responses" not in plain.metrics
    scanned = _run(ds, [leaked], embed="never", params={"coverage": {"responses": True}})[0]
    assert scanned.metrics["contaminated"] == 0
    assert scanned.metrics["contaminated_via_responses"] == 1
    chosen = ds.table("responses").to_pylist()
    want = [r["response_id"] for r in chosen if leaked in r["messages"][0]["content"]]
    assert scanned.ids["response_id"] == want


# --- coverage ----------------------------------------------------------------------------------------
TRAIN = [
    "How would you introduce yourself as a medieval knight at a royal banquet?",
    "What are the most effective ways to deal with stress?",
    "Write a program to find the nth Fibonacci number using dynamic programming.",
    "Explain how photosynthesis turns sunlight into chemical energy in plants.",
    "What is the capital city of Australia?",
    "Give me a recipe for a vegan chocolate cake.",
    "How do I change a flat tire on my bicycle?",
    "Summarize the causes of the French Revolution.",
]
PARAPHRASES = {  # eval prompt -> the training prompt it paraphrases
    "Introduce yourself in the tone of a medieval knight at a royal banquet.": 0,
    "How does photosynthesis convert light from the sun into chemical energy?": 3,
    "Which city is the capital of Australia?": 4,
}
FAR = ["Describe the rules of cricket to a beginner.", "Translate good morning into Japanese."]


def test_embedding_coverage_finds_paraphrases() -> None:
    pytest.importorskip("sentence_transformers")
    ds = _pairs_ds(TRAIN)
    ids, train = _texts(ds)
    evals = [*PARAPHRASES, *FAR]
    contamination, cover = _run(ds, evals, embed="always")
    assert contamination.severity == "ok"
    m = cover.metrics
    assert m["method"] == "embedding" and not m["sampled"]
    assert m["covered_share"] == pytest.approx(3 / 5) and m["far_share"] == pytest.approx(2 / 5)
    assert cover.severity == "info"  # 40% far: between 20% and 50%
    rows = {r[0]: r for r in cover.tables[0].rows}
    for k, (text, source) in enumerate(PARAPHRASES.items()):
        row = rows[f"#{k + 1}"]
        assert row[2] == ids[train.index(TRAIN[source])]
        assert row[4] >= 0.8, text
    assert {r[0] for r in cover.tables[0].rows[:2]} == {"#4", "#5"}  # least covered first
    assert sum(cover.plots[0].series["eval prompts"]) == 5


def test_lexical_coverage_without_embeddings() -> None:
    ds = _pairs_ds(TRAIN)
    ids, train = _texts(ds)
    edited = "Give me a recipe for a vegan chocolate cake, please."
    contamination, cover = _run(ds, [edited, *FAR], embed="never")
    assert contamination.severity == "ok"  # 10 words, not equal to the training prompt
    m = cover.metrics
    assert m["method"] == "lexical" and m["threshold"] == 0.5 and m["far"] == 0.2
    rows = {r[0]: r for r in cover.tables[0].rows}
    assert rows["#1"][2] == ids[train.index(TRAIN[5])] and rows["#1"][4] > 0.8
    assert rows["#2"][4] < 0.2 and rows["#3"][4] < 0.2
    assert m["covered_share"] == pytest.approx(1 / 3) and m["far_share"] == pytest.approx(2 / 3)
    assert cover.severity == "warning"


def test_training_sample_is_capped_and_keeps_ngram_matches() -> None:
    ds = prefkit.synth.simulate(kind="pairwise", n_prompts=300, seed=5)
    _, train = _texts(ds)
    copy = next(t for t in train if len(_words(t)) >= 14)
    contamination, cover = _run(
        ds, [copy, *FAR], embed="never", params={"coverage": {"max_train": 40}}
    )
    m = cover.metrics
    assert m["sampled"] is True and m["training_prompts"] == 300
    assert 40 <= m["training_prompts_compared"] <= 41  # the sample plus the n-gram match
    assert "sample" in cover.verdict and "lower bounds" in cover.tables[0].note
    row = next(r for r in cover.tables[0].rows if r[0] == "#1")
    assert row[3] == coverage._snippet(copy)  # its n-gram match (or a duplicate) is nearest
    assert row[4] == pytest.approx(1.0)
    assert contamination.metrics["training_prompts_scanned"] == 300  # n-grams: no sampling
    few = _run(ds, [copy, *FAR], embed="never", params={"coverage": {"max_eval": 2}})[1]
    assert few.metrics["eval_prompts_compared"] == 2 and len(few.tables[0].rows) == 2
    assert "2 of 3 eval prompts sampled" in few.tables[0].note


def test_skipped_without_eval_prompts_or_training_prompts() -> None:
    ds = _pairs_ds(TRAIN[:2])
    (f,) = inspect(ds, checks=["coverage"]).findings
    assert f.severity == "skipped" and "--against" in f.verdict
    (g,) = coverage.run(Context(Dataset({}), InspectOptions(against=["x"], embed="never")))
    assert g.severity == "skipped" and "no prompts" in g.verdict


# --- real data ----------------------------------------------------------------------------------------
@pytest.mark.shared_data
@pytest.mark.parametrize("name", sorted(REAL))
def test_real_datasets(name: str, real_dataset) -> None:  # type: ignore[no-untyped-def]
    ds = real_dataset(name)
    if name == "llmbar":
        eval_path = SHARED_DATA / "vicuna80_human_battles" / "prompts" / "vicuna_questions.jsonl"
    else:
        eval_path = SHARED_DATA / "llmbar"
    evals = read_prompts(eval_path).texts
    ids, train = _texts(ds)
    truth = _truth(evals, train)
    contamination, cover = _run(ds, evals, embed="never")
    bad = {e for _, e in truth}
    assert contamination.metrics["contaminated"] == len(bad)
    assert set(contamination.ids.get("prompt_id", [])) == {ids[t] for t, _ in truth}
    assert contamination.severity == (
        "ok" if not bad else "error" if len(bad) >= 0.05 * len(evals) else "warning"
    )
    # an eval prompt equal to a training prompt (after normalisation) is covered
    normalised = {tuple(_words(x)) for x in train}
    exact = {e for e, t in enumerate(evals) if tuple(_words(t)) in normalised}
    assert cover.metrics["covered_share"] * len(evals) >= len(exact)
    assert cover.metrics["method"] == "lexical"
    if name == "vicuna80_human_battles":
        # LLMBar's Natural set and its MT-Bench subset hold Vicuna questions
        assert len(bad) == 5
        leaked = {train[t].strip() for t, _ in truth}
        assert leaked == {evals[e].strip() for e in bad} and len(leaked) == 3
        assert contamination.severity == "warning"
    elif name == "llmbar":
        assert len(bad) == 3  # the same three Vicuna questions, seen from the other side
    elif name == "oasst_en100_trees":
        # LLMBar reuses an OASST root message, repeated in the transcripts of 4 threads
        assert len(bad) == 1 and contamination.metrics["training_prompts_flagged"] == 4
        (e,) = bad
        assert evals[e].startswith("Hello There!")
    else:
        # nothing leaks, and LLMBar's instructions are far from these prompts' topics
        assert len(bad) == 0 and contamination.severity == "ok"
        assert cover.severity == "warning" and cover.metrics["far_share"] >= 0.9


def test_real_vicuna_mt_bench_overlap_by_hand() -> None:
    """The vicuna80/llmbar overlap, recomputed from the raw JSON with exact string equality."""
    if not SHARED_DATA.is_dir():
        pytest.skip("shared data not found")
    vicuna = {
        json.loads(line)["text"].strip()
        for line in (SHARED_DATA / "vicuna80_human_battles/prompts/vicuna_questions.jsonl")
        .read_text()
        .splitlines()
    }
    llmbar = [
        r["input"].strip()
        for f in sorted((SHARED_DATA / "llmbar").rglob("dataset.json"))
        for r in json.loads(f.read_text())
    ]
    assert sum(t in vicuna for t in llmbar) == 5
    assert len({t for t in llmbar if t in vicuna}) == 3
    over = ng.find_overlaps(
        ng.EvalIndex.build(llmbar), [(pa.array(sorted(vicuna)), pa.array(sorted(vicuna)))]
    )
    assert int(over.contaminated.sum()) == 5
    assert np.all(over.best_share[over.contaminated] == 1.0)
