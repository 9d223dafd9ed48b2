"""Filters: the expression step and the ready filters, on a hand-checked fixture and synth."""

from __future__ import annotations

import pyarrow as pa
import pytest

from prefkit.curation import pairframe
from prefkit.curation.step import apply, run_step
from prefkit.curation.steps.filters import detect_language
from prefkit.dataset import Dataset
from prefkit.errors import PrefkitError
from prefkit.schema import messages
from prefkit.synth import simulate


def _ds(language: list[str | None] | None = None) -> Dataset:
    prompts = {
        "prompt_id": ["p1", "p2"],
        "messages": [
            messages(("user", "What is the capital of France?")),  # 6 words
            messages(("user", "Quelle est la capitale de la France et du pays ?")),  # 11
        ],
    }
    if language is not None:
        prompts["language"] = language
    texts = {
        "r1a": "Paris.",
        "r1b": "  paris ",  # identical to r1a up to case/whitespace... but "Paris." has a dot
        "r1c": "The capital of France is Paris, a large city.",  # 9 words
        "r2a": "Paris est la capitale.",  # 4 words
        "r2b": "C'est Paris.",  # 2 words
    }
    texts["r1b"] = "  PARIS. "
    responses = {
        "response_id": list(texts),
        "prompt_id": ["p1", "p1", "p1", "p2", "p2"],
        "messages": [messages(("assistant", t)) for t in texts.values()],
        "source": ["m1", "m2", "m1", "m1", "m2"],
    }
    judgments = {
        "judgment_id": ["j1", "j2", "j3", "j4", "j5", "j6"],
        "prompt_id": ["p1", "p1", "p1", "p2", "p2", "p2"],
        "a": ["r1a", "r1a", "r1c", "r2a", "r2a", "r2b"],
        "b": ["r1b", "r1c", "r1b", "r2b", "r2b", "r2a"],
        "outcome": pa.array([1, -1, 0, 0, 1, 1], pa.int8()),
        "tie_kind": [None, None, "bad", "good", None, None],
        "annotator_id": ["x", "x", "y", "x", "y", "z"],
    }
    return Dataset(
        {
            "prompts": pa.table(prompts),
            "responses": pa.table(responses),
            "judgments": pa.table(judgments),
        }
    )


def _ids(ds: Dataset, table: str = "judgments") -> list[str]:
    key = {"judgments": "judgment_id", "responses": "response_id", "prompts": "prompt_id"}[table]
    return ds.table(table).column(key).to_pylist()


def test_frame_columns_on_fixture() -> None:
    ds = _ds()
    f = pairframe.frame(
        ds, ["length_ratio", "chosen_words", "identical", "agreement", "n_votes", "a_source"]
    ).to_pydict()
    assert f["judgment_id"] == ["j1", "j2", "j3", "j4", "j5", "j6"]
    assert f["length_ratio"] == [1.0, 9.0, 9.0, 2.0, 2.0, 2.0]
    assert f["chosen_words"] == [1, 9, None, None, 4, 2]
    assert f["identical"] == [True, False, False, False, False, False]
    assert f["n_votes"] == [1, 1, 1, 3, 3, 3]
    assert f["agreement"] == pytest.approx([1, 1, 1, 1 / 3, 1 / 3, 1 / 3])
    assert f["a_source"] == ["m1", "m1", "m1", "m1", "m1", "m2"]


def test_filter_keeps_true_and_counts_null_apart() -> None:
    out, outcome = run_step(_ds(), "filter", expr="chosen_words > 1")
    assert _ids(out) == ["j2", "j5", "j6"]
    entry = out.manifest.lineage[-1]
    assert entry["step"] == "filter"
    assert entry["params"] == {"expr": "chosen_words > 1"}
    assert entry["removed"] == {"judgments": 3}
    assert entry["reasons"] == {
        "judgments": {"filter: chosen_words > 1": 1, "filter: chosen_words > 1 (null)": 2}
    }
    assert outcome.info == {"kept": 3, "false": 1, "null": 2}
    assert sorted(outcome.report.column("id").to_pylist()) == ["j1", "j3", "j4"]


def test_filter_mixed_columns() -> None:
    ds = _ds()
    out = apply(ds, "filter", expr="length_ratio < 3 and tie_kind is None and a_source in ('m1',)")
    assert _ids(out) == ["j1", "j5"]
    out = apply(ds, "filter", expr="agreement >= 0.5 or outcome == 0")
    assert _ids(out) == ["j1", "j2", "j3", "j4"]
    # The other tables are untouched by a judgment filter.
    assert _ids(out, "responses") == _ids(ds, "responses")


def test_filter_errors() -> None:
    ds = _ds()
    with pytest.raises(
        PrefkitError, match=r"unknown column\(s\) lenght_ratio; available: .*length_ratio"
    ):
        apply(ds, "filter", expr="lenght_ratio < 3")
    with pytest.raises(PrefkitError, match="not true/false"):
        apply(ds, "filter", expr="a_words + 1")
    with pytest.raises(PrefkitError, match="'expr' is required"):
        apply(ds, "filter")
    with pytest.raises(PrefkitError, match="filter expression is empty"):
        apply(ds, "filter", expr=" ")
    with pytest.raises(PrefkitError, match="attribute access"):
        apply(ds, "filter", expr="a.b > 1")
    with pytest.raises(PrefkitError, match="failed"):
        apply(ds, "filter", expr="a_source > 3")


def test_drop_ties() -> None:
    ds = _ds()
    assert _ids(apply(ds, "drop-ties")) == ["j1", "j2", "j5", "j6"]
    out = apply(ds, "drop-ties", kind="bad")
    assert _ids(out) == ["j1", "j2", "j4", "j5", "j6"]
    assert out.manifest.lineage[-1]["reasons"] == {"judgments": {"tie (bad)": 1}}
    assert _ids(apply(ds, "drop-ties", kind="good")) == ["j1", "j2", "j3", "j5", "j6"]
    with pytest.raises(PrefkitError, match="'kind' must be one of"):
        apply(ds, "drop-ties", kind="both")


def test_drop_identical() -> None:
    out = apply(_ds(), "drop-identical")
    assert _ids(out) == ["j2", "j3", "j4", "j5", "j6"]
    assert out.manifest.lineage[-1]["reasons"] == {"judgments": {"identical responses": 1}}


def test_length_cascades() -> None:
    ds = _ds()
    out = apply(ds, "length", min_words=2)
    assert _ids(out, "responses") == ["r1c", "r2a", "r2b"]
    assert _ids(out) == ["j4", "j5", "j6"]
    entry = out.manifest.lineage[-1]
    assert entry["reasons"] == {
        "responses": {"response words outside [2, inf]": 2},
        "judgments": {"response words outside [2, inf] (cascade)": 3},
    }
    out = apply(ds, "length", max_words=5)
    assert _ids(out, "responses") == ["r1a", "r1b", "r2a", "r2b"]
    assert _ids(out) == ["j1", "j4", "j5", "j6"]
    out = apply(ds, "length", prompt_max_words=6)
    assert _ids(out, "prompts") == ["p1"]
    assert _ids(out, "responses") == ["r1a", "r1b", "r1c"]
    assert _ids(out) == ["j1", "j2", "j3"]
    assert out.manifest.lineage[-1]["removed"] == {"prompts": 1, "responses": 2, "judgments": 3}
    with pytest.raises(PrefkitError, match="'min_words' must be >= 0"):
        apply(ds, "length", min_words=-1)
    with pytest.raises(PrefkitError, match="'max_words'"):
        apply(ds, "length", min_words=5, max_words=2)
    with pytest.raises(PrefkitError, match="'max_words' expects int"):
        apply(ds, "length", max_words="many")


def test_language_detected_and_from_column() -> None:
    out, outcome = run_step(_ds(), "language", keep=["en"])
    assert _ids(out, "prompts") == ["p1"]
    assert _ids(out) == ["j1", "j2", "j3"]
    assert outcome.info["languages"] == {"en": 1, "fr": 1}
    # The column wins where set; nulls are detected (p1 -> en).
    ds = _ds(language=[None, "FR-ca"])
    out, outcome = run_step(ds, "language", keep="fr")
    assert _ids(out, "prompts") == ["p2"]
    assert outcome.info["detected"] == 1 and outcome.info["from_column"] == 1
    assert out.manifest.lineage[-1]["reasons"]["prompts"] == {"language not in fr": 1}
    assert _ids(apply(ds, "language", keep="en,fr"), "prompts") == ["p1", "p2"]


def test_detect_language_scripts_and_stopwords() -> None:
    texts = [
        "The cat is on the mat.",
        "Der Hund ist nicht hier und das ist gut",
        "El perro está en la casa con su amigo",
        "Het is niet een goede dag voor mij",
        "Привет, как дела?",
        "今日は天気がいいです",
        "我爱北京天安门",
        "안녕하세요",
        "Γεια σου κόσμε",
        "مرحبا بالعالم",
        "xyz qqq",
        "",
        None,
    ]
    got = detect_language(pa.array(texts, pa.string())).to_pylist()
    assert got == ["en", "de", "es", "nl", "ru", "ja", "zh", "ko", "el", "ar", "und", "und", "und"]


def test_synth_planted_columns_and_suspicion() -> None:
    ds = simulate(n_prompts=300, flip_rate=0.2, length_bias=2.0, seed=1)
    flipped = sum(ds.judgments.column("flipped").to_pylist())
    out = apply(ds, "filter", expr="flipped == False")
    assert out.num_rows("judgments") == ds.num_rows("judgments") - flipped
    out = apply(ds, "filter", expr="suspicion < 0.5")
    kept = out.judgments.column("flipped").to_pylist()
    # Flipped labels are over-represented among the dropped ones.
    assert sum(kept) / len(kept) < flipped / ds.num_rows("judgments")
    # Re-running gives the same fingerprint (deterministic).
    again = apply(ds, "filter", expr="suspicion < 0.5")
    assert again.fingerprint() == out.fingerprint()
