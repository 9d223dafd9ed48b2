"""Python interop: Dataset <-> pandas / polars / HF datasets, and from_pairs from each.

A round-trip must keep every table's content. The check is the content fingerprint per
table (row-order free, column names and DuckDB types included) plus Arrow equality after
casting back to the original schema. Two differences are legitimate and allowed: pandas 3
and polars hand string and list meta columns back as ``large_string`` / ``large_list``
(core columns are conformed to their exact types; DuckDB reads both as VARCHAR / LIST,
so the fingerprints still agree), and pandas turns an integer meta column with nulls
into float64 (same values, different type and fingerprint; tested on its own below). HF ``datasets`` has no map type, so ``to_hf`` carries
the map columns (``context``, ``attributes``) as ``list<struct<key, value>>`` and
``from_frames`` turns them back into maps.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pytest

import prefkit
from builders import CONVERSATIONAL
from prefkit import Dataset
from prefkit.schema import CORE, TABLES, TableBuilder, messages, text_of
from prefkit.synth import simulate

pd = pytest.importorskip("pandas")
pl = pytest.importorskip("polars")
hf = pytest.importorskip("datasets")

KINDS = ("pairwise", "battles", "rankings", "ratings")
VIA: dict[str, Callable[[Dataset], dict[str, Any]]] = {
    "pandas": Dataset.to_pandas,
    "polars": Dataset.to_polars,
    "hf": lambda ds: dict(ds.to_hf()),
}


@pytest.fixture(scope="module", params=KINDS)
def simulated(request: pytest.FixtureRequest) -> Dataset:
    return simulate(kind=request.param, n_prompts=20, seed=0)


def _table(name: str, rows: list[dict[str, Any]]) -> pa.Table:
    b = TableBuilder(name)
    for r in rows:
        b.add(**r)
    return b.build()


def _hand_made() -> Dataset:
    """Every tricky column filled: maps (filled, empty, null), media, tiers with ties, meta."""
    hi = messages(("system", "Be brief."), ("user", "Hi"))
    return Dataset(
        {
            "prompts": _table(
                "prompts",
                [
                    dict(prompt_id="p1", messages=hi, context=[("persona", "pirate")], lang="en"),
                    dict(prompt_id="p2", messages=messages(("user", "2+2?")), context=[]),
                    dict(prompt_id="p3", messages=messages(("user", "x")), context=None),
                ],
            ),
            "responses": _table(
                "responses",
                [
                    dict(
                        response_id="r1",
                        prompt_id="p1",
                        messages=messages(("assistant", "Ahoy")),
                        source="m1",
                        score=4.5,
                        attributes=[("helpfulness", 4.0), ("verbosity", 1.0)],
                        tags=["a", "b"],
                    ),
                    dict(
                        response_id="r2",
                        prompt_id="p1",
                        messages=messages(("assistant", "Hello")),
                        source="m2",
                        attributes=[],
                        media=[{"uri": "img/1.png", "mime": "image/png"}],
                    ),
                    dict(response_id="r3", prompt_id="p1", messages=messages(("assistant", ""))),
                ],
            ),
            "judgments": _table(
                "judgments",
                [
                    dict(
                        judgment_id="j1",
                        prompt_id="p1",
                        a="r1",
                        b="r2",
                        outcome=1,
                        annotator_id="u1",
                        votes=1,
                    ),
                    dict(
                        judgment_id="j2",
                        prompt_id="p1",
                        a="r2",
                        b="r3",
                        outcome=0,
                        tie_kind="bad",
                        strength=0.5,
                        annotator_kind="human",
                        votes=3,
                    ),
                ],
            ),
            "rankings": _table(
                "rankings",
                [dict(ranking_id="k1", prompt_id="p1", tiers=[["r1"], ["r2", "r3"]])],
            ),
            "annotators": _table("annotators", [dict(annotator_id="u1", group="g1", expert=True)]),
        }
    )


def assert_same_content(original: Dataset, back: Dataset) -> None:
    assert back.counts() == original.counts()
    assert back.table_fingerprints() == original.table_fingerprints()
    assert back.fingerprint() == original.fingerprint()
    for name in TABLES:
        a, b = original.table(name), back.table(name)
        assert b.column_names == a.column_names, name
        for field in CORE[name]:  # core columns come back with their exact types
            assert b.schema.field(field.name).type == field.type, (name, field.name)
        assert b.cast(a.schema).equals(a), name  # meta may be large_string / large_list


# --- Dataset -> frames -> Dataset ---------------------------------------------------------------
@pytest.mark.parametrize("via", sorted(VIA))
def test_round_trip_simulated(simulated: Dataset, via: str) -> None:
    frames = VIA[via](simulated)
    assert set(frames) == set(TABLES)
    assert_same_content(simulated, Dataset.from_frames(frames))


@pytest.mark.parametrize("via", sorted(VIA))
def test_round_trip_hand_made(via: str) -> None:
    ds = _hand_made()
    back = Dataset.from_frames(VIA[via](ds))
    assert_same_content(ds, back)
    # Null, empty and filled maps stay distinct.
    assert back.prompts.column("context").to_pylist() == [[("persona", "pirate")], [], None]
    assert back.responses.column("attributes").to_pylist()[:2] == [
        [("helpfulness", 4.0), ("verbosity", 1.0)],
        [],
    ]
    assert back.rankings.column("tiers").to_pylist() == [[["r1"], ["r2", "r3"]]]


def test_pandas_turns_a_nullable_int_meta_column_into_float() -> None:
    # pandas' default numpy dtypes have no integer with missing values: an int64 meta
    # column with nulls comes back as double. Values and nulls are kept; only the type
    # (and so that table's fingerprint) changes. polars and HF keep int64.
    ds = Dataset({"judgments": _hand_made().judgments.drop_columns(["votes"])})
    votes = pa.array([None, 3], pa.int64())
    ds = Dataset({"judgments": ds.judgments.append_column("votes", votes)})
    back = Dataset.from_frames(ds.to_pandas())
    assert back.judgments.schema.field("votes").type == pa.float64()
    assert back.judgments.column("votes").to_pylist() == [None, 3.0]
    assert back.judgments.cast(ds.judgments.schema).equals(ds.judgments)
    for via in ("polars", "hf"):
        assert_same_content(ds, Dataset.from_frames(VIA[via](ds)))


@pytest.mark.parametrize("via", sorted(VIA))
def test_round_trip_empty_dataset(via: str) -> None:
    assert_same_content(Dataset(), Dataset.from_frames(VIA[via](Dataset())))


@pytest.mark.parametrize("via", sorted(VIA))
def test_round_trip_chunked_and_sliced_tables(via: str) -> None:
    # Several chunks, some of them slices with nulls, as tables read from shards are.
    ds = _hand_made()
    prompts = pa.concat_tables([ds.prompts.slice(0, 1), ds.prompts.slice(1)])
    responses = pa.concat_tables([ds.responses.slice(1), ds.responses.slice(0, 1)])
    chunked = Dataset(
        {**{n: ds.table(n) for n in TABLES}, "prompts": prompts, "responses": responses}
    )
    assert chunked.prompts.column("context").num_chunks == 2
    assert_same_content(chunked, Dataset.from_frames(VIA[via](chunked)))
    assert chunked.fingerprint() == ds.fingerprint()  # row order and chunking do not count


def test_ratings_attributes_survive_every_route() -> None:
    ds = simulate(kind="ratings", n_prompts=20, seed=0)
    attrs = ds.responses.column("attributes").to_pylist()
    assert any(attrs), "ratings data should carry attributes"
    for via in VIA.values():
        back = Dataset.from_frames(via(ds))
        assert back.responses.column("attributes").to_pylist() == attrs
        assert back.kinds() == ds.kinds()


def test_rankings_tiers_survive_every_route() -> None:
    ds = simulate(kind="rankings", n_prompts=20, seed=0)
    tiers = ds.rankings.column("tiers").to_pylist()
    assert tiers and all(isinstance(t, list) and t for t in tiers)
    for via in VIA.values():
        assert Dataset.from_frames(via(ds)).rankings.column("tiers").to_pylist() == tiers


def test_to_hf_is_one_split_per_table_with_maps_as_key_value_lists() -> None:
    ds = simulate(kind="ratings", n_prompts=20, seed=0)
    dd = ds.to_hf()
    assert isinstance(dd, hf.DatasetDict)
    assert set(dd) == set(TABLES)
    assert {k: v.num_rows for k, v in dd.items()} == ds.counts()
    attrs = dd["responses"].data.table.schema.field("attributes").type
    assert pa.types.is_list(attrs)
    assert [f.name for f in attrs.value_type] == ["key", "value"]


def test_from_frames_respects_an_hf_selection() -> None:
    # A selected / filtered HF dataset shares the whole underlying Arrow table; only the
    # selected rows may come back.
    ds = simulate(kind="battles", n_prompts=20, seed=0)
    dd = ds.to_hf()
    keep = [5, 0, 3]
    back = Dataset.from_frames({**dd, "judgments": dd["judgments"].select(keep)})
    want = ds.judgments.take(keep)
    assert (
        back.judgments.column("judgment_id").to_pylist() == want.column("judgment_id").to_pylist()
    )
    by_source = dd["responses"].filter(lambda r: r["source"] == "model-00")
    assert 0 < by_source.num_rows < ds.num_rows("responses")
    back = Dataset.from_frames({"responses": by_source})
    assert set(back.responses.column("source").to_pylist()) == {"model-00"}
    assert back.num_rows("responses") == by_source.num_rows


def test_from_frames_accepts_a_subset_of_tables_and_mixed_kinds() -> None:
    ds = _hand_made()
    frames = {
        "prompts": ds.to_pandas()["prompts"],
        "responses": ds.to_polars()["responses"],
        "judgments": ds.to_hf()["judgments"],
        "rankings": ds.rankings,
    }
    back = Dataset.from_frames(frames)
    assert back.num_rows("annotators") == 0
    for name in ("prompts", "responses", "judgments", "rankings"):
        assert back.table_fingerprints()[name] == ds.table_fingerprints()[name], name


def test_from_frames_unknown_table_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown table"):
        Dataset.from_frames({"pairs": pd.DataFrame({"x": [1]})})


# --- from_pairs ----------------------------------------------------------------------------------
STANDARD = [
    {"prompt": "What colour is the sky?", "chosen": "Blue.", "rejected": "Green."},
    {"prompt": "2+2?", "chosen": "4", "rejected": "5"},
]
STYLES = {"standard": STANDARD, "conversational": CONVERSATIONAL}
CONTAINERS: dict[str, Callable[[list[dict[str, Any]]], Any]] = {
    "list": lambda rows: rows,
    "arrow": pa.Table.from_pylist,
    "pandas": pd.DataFrame,
    "polars": pl.DataFrame,
    "hf": hf.Dataset.from_list,
}


def _chosen_rejected(ds: Dataset) -> list[tuple[str, str]]:
    text = {
        r["response_id"]: text_of(r["messages"])
        for r in ds.responses.select(["response_id", "messages"]).to_pylist()
    }
    return [(text[j["a"]], text[j["b"]]) for j in ds.judgments.to_pylist()]


def _expected(rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
    def as_text(v: Any) -> str:
        return v if isinstance(v, str) else text_of(v)

    return [(as_text(r["chosen"]), as_text(r["rejected"])) for r in rows]


@pytest.mark.parametrize("style", sorted(STYLES))
@pytest.mark.parametrize("container", sorted(CONTAINERS))
def test_from_pairs(container: str, style: str) -> None:
    rows = STYLES[style]
    ds = prefkit.from_pairs(CONTAINERS[container](rows))
    assert ds.num_rows("judgments") == len(rows)
    assert ds.num_rows("prompts") == len(rows)
    assert ds.num_rows("responses") == 2 * len(rows)
    assert ds.judgments.column("outcome").to_pylist() == [1] * len(rows)
    assert _chosen_rejected(ds) == _expected(rows)
    assert ds.kinds() == ["pairwise"]
    # Every container gives the same dataset as the plain list.
    assert ds.fingerprint() == prefkit.from_pairs(rows).fingerprint()


def test_from_pairs_conversational_keeps_turns() -> None:
    ds = prefkit.from_pairs(pl.DataFrame(CONVERSATIONAL))
    prompts = {tuple(m["role"] for m in p) for p in ds.prompts.column("messages").to_pylist()}
    assert prompts == {("user",), ("system", "user")}
    pairs = ds.to_pairs(conversational=True).to_pylist()
    assert sorted(p["chosen"][0]["content"] for p in pairs) == ["4", "Hello!"]


@pytest.mark.parametrize("container", sorted(CONTAINERS))
def test_from_pairs_custom_column_names(container: str) -> None:
    rows = [{"question": r["prompt"], "good": r["chosen"], "bad": r["rejected"]} for r in STANDARD]
    ds = prefkit.from_pairs(
        CONTAINERS[container](rows), prompt="question", chosen="good", rejected="bad"
    )
    assert ds.fingerprint() == prefkit.from_pairs(STANDARD).fingerprint()


def test_from_pairs_pandas_from_arrow_standard() -> None:
    ds = prefkit.from_pairs(pa.Table.from_pylist(STANDARD).to_pandas())
    assert ds.fingerprint() == prefkit.from_pairs(STANDARD).fingerprint()


def test_from_pairs_pandas_from_arrow_conversational() -> None:
    frame = hf.Dataset.from_list(CONVERSATIONAL).to_pandas()
    ds = prefkit.from_pairs(frame)
    assert ds.fingerprint() == prefkit.from_pairs(CONVERSATIONAL).fingerprint()


def test_from_pairs_bad_row_names_row_and_field() -> None:
    rows = [*STANDARD, {"prompt": "x", "chosen": 3, "rejected": "y"}]
    with pytest.raises(prefkit.InputError) as info:
        prefkit.from_pairs(pd.DataFrame(rows))
    assert info.value.field == "chosen"
    assert "3" in (info.value.where or "")
