"""The column contracts of the five canonical tables: conform, TableBuilder, concat."""

from __future__ import annotations

import pyarrow as pa
import pytest

from prefkit.schema import (
    CORE,
    ID_COLUMN,
    TABLES,
    SchemaError,
    TableBuilder,
    concat,
    conform,
    empty_table,
    ids,
    messages,
    meta_columns,
    text_of,
)


def _judgments(**extra: pa.Array) -> pa.Table:
    cols = {
        "judgment_id": pa.array(["j1", "j2"]),
        "prompt_id": pa.array(["p1", "p1"]),
        "a": pa.array(["r1", "r2"]),
        "b": pa.array(["r2", "r1"]),
        "outcome": pa.array([1, -1], pa.int64()),
    }
    cols.update(extra)
    return pa.table(cols)


# --- the contract itself ------------------------------------------------------------------------
def test_five_tables_each_with_its_id_column_first() -> None:
    assert TABLES == ("prompts", "responses", "judgments", "rankings", "annotators")
    for name in TABLES:
        schema = CORE[name]
        assert schema.names[0] == ID_COLUMN[name]
        assert not schema.field(ID_COLUMN[name]).nullable


@pytest.mark.parametrize("name", TABLES)
def test_empty_table_has_the_core_schema(name: str) -> None:
    t = empty_table(name)
    assert t.num_rows == 0
    assert t.schema == CORE[name]
    assert conform(name, t).schema == CORE[name]


# --- conform ------------------------------------------------------------------------------------
def test_conform_adds_missing_nullable_columns_as_nulls() -> None:
    out = conform("judgments", _judgments())
    assert out.schema.names == CORE["judgments"].names
    for col in ("tie_kind", "strength", "annotator_id", "annotator_kind", "rationale"):
        assert out.column(col).null_count == 2
        assert out.schema.field(col).type == CORE["judgments"].field(col).type


def test_conform_puts_core_first_in_canonical_order_and_keeps_meta_after() -> None:
    t = _judgments(lang=pa.array(["en", "de"]), split=pa.array(["train", "test"]))
    # Shuffle the column order: meta first, core reversed.
    t = t.select(["split", "lang", *reversed(_judgments().column_names)])
    out = conform("judgments", t)
    assert out.schema.names == [*CORE["judgments"].names, "split", "lang"]
    assert out.column("lang").to_pylist() == ["en", "de"]
    assert out.column("split").to_pylist() == ["train", "test"]
    assert meta_columns("judgments", out) == ["split", "lang"]


def test_conform_casts_core_types() -> None:
    t = _judgments(strength=pa.array(["0.5", "2"]), annotator_id=pa.array([7, 8]))
    out = conform("judgments", t)
    assert out.schema.field("outcome").type == pa.int8()
    assert out.column("outcome").to_pylist() == [1, -1]
    assert out.schema.field("strength").type == pa.float64()
    assert out.column("strength").to_pylist() == [0.5, 2.0]
    assert out.column("annotator_id").to_pylist() == ["7", "8"]


def test_conform_keeps_meta_types_untouched() -> None:
    t = _judgments(votes=pa.array([3, 4], pa.int16()))
    out = conform("judgments", t)
    assert out.schema.field("votes").type == pa.int16()


@pytest.mark.parametrize("column", ["judgment_id", "prompt_id", "a", "b", "outcome"])
def test_conform_missing_key_column_names_table_and_column(column: str) -> None:
    with pytest.raises(SchemaError) as err:
        conform("judgments", _judgments().drop_columns([column]))
    assert "'judgments'" in str(err.value)
    assert repr(column) in str(err.value)


def test_conform_uncastable_type_names_table_and_column() -> None:
    with pytest.raises(SchemaError) as err:
        conform("judgments", _judgments(strength=pa.array(["strong", "weak"])))
    assert "'judgments'" in str(err.value)
    assert "'strength'" in str(err.value)


def test_conform_outcome_out_of_int8_range_is_a_schema_error() -> None:
    t = _judgments().set_column(4, "outcome", pa.array([1, 1000], pa.int64()))
    with pytest.raises(SchemaError, match="'outcome'"):
        conform("judgments", t)


def test_conform_null_in_key_column_is_a_schema_error() -> None:
    t = _judgments().set_column(2, "a", pa.array(["r1", None]))
    with pytest.raises(SchemaError) as err:
        conform("judgments", t)
    assert "'judgments'" in str(err.value)
    assert "'a'" in str(err.value)


def test_conform_is_idempotent() -> None:
    once = conform("judgments", _judgments(lang=pa.array(["en", None])))
    assert conform("judgments", once).equals(once)


# --- TableBuilder -------------------------------------------------------------------------------
def test_builder_meta_column_appearing_midway_gives_earlier_rows_null() -> None:
    b = TableBuilder("prompts")
    b.add(prompt_id="p1", messages=messages(("user", "hi")))
    b.add(prompt_id="p2", messages=messages(("user", "yo")), lang="en")
    b.add(prompt_id="p3", messages=messages(("user", "hey")))
    assert len(b) == 3
    t = b.build()
    assert t.schema.names == [*CORE["prompts"].names, "lang"]
    assert t.column("lang").to_pylist() == [None, "en", None]
    assert t.column("prompt_id").to_pylist() == ["p1", "p2", "p3"]
    assert t.column("messages").to_pylist()[0] == [{"role": "user", "content": "hi"}]
    assert t.column("context").null_count == 3


def test_builder_mixed_meta_scalars_fall_back_to_strings() -> None:
    b = TableBuilder("prompts")
    b.add(prompt_id="p1", n=3)
    b.add(prompt_id="p2", n="three")
    t = b.build()
    assert t.schema.field("n").type == pa.string()
    assert t.column("n").to_pylist() == ["3", "three"]


def test_builder_maps_and_core_types() -> None:
    b = TableBuilder("responses")
    b.add(
        response_id="r1",
        prompt_id="p1",
        messages=messages(("assistant", "ok")),
        score=4,
        attributes=[("helpfulness", 3.0)],
        media=[{"uri": "file://a.png", "mime": "image/png"}],
    )
    t = b.build()
    assert t.schema == CORE["responses"]
    row = t.to_pylist()[0]
    assert row["score"] == 4.0
    assert row["attributes"] == [("helpfulness", 3.0)]
    assert row["media"] == [{"uri": "file://a.png", "mime": "image/png"}]


def test_builder_build_resets_for_the_next_batch() -> None:
    b = TableBuilder("annotators")
    b.add(annotator_id="u1", age=30)
    first = b.build()
    assert len(b) == 0
    b.add(annotator_id="u2")
    second = b.build()
    assert first.column("age").to_pylist() == [30]
    assert second.schema.names == ["annotator_id"]
    assert second.column("annotator_id").to_pylist() == ["u2"]


def test_builder_without_rows_builds_an_empty_core_table() -> None:
    t = TableBuilder("rankings").build()
    assert t.num_rows == 0
    assert t.schema == CORE["rankings"]


# --- concat -------------------------------------------------------------------------------------
def test_concat_unifies_meta_columns() -> None:
    t1 = pa.table({"prompt_id": ["a"], "lang": ["en"]})
    t2 = pa.table({"prompt_id": ["b"], "split": ["test"]})
    out = concat("prompts", [t1, t2])
    assert out.schema.names[: len(CORE["prompts"])] == CORE["prompts"].names
    assert set(meta_columns("prompts", out)) == {"lang", "split"}
    rows = {r["prompt_id"]: r for r in out.to_pylist()}
    assert rows["a"]["lang"] == "en" and rows["a"]["split"] is None
    assert rows["b"]["lang"] is None and rows["b"]["split"] == "test"


def test_concat_meta_columns_with_clashing_types_become_strings() -> None:
    t1 = pa.table({"prompt_id": ["a", "b"], "x": [1, None]})
    t2 = pa.table({"prompt_id": ["c"], "x": ["s"]})
    out = concat("prompts", [t1, t2])
    assert out.schema.field("x").type == pa.string()
    assert out.column("x").to_pylist() == ["1", None, "s"]
    assert out.column("prompt_id").to_pylist() == ["a", "b", "c"]


def test_concat_clash_on_nested_meta_column() -> None:
    t1 = pa.table({"prompt_id": ["a"], "tags": [["x", "y"]]})
    t2 = pa.table({"prompt_id": ["b"], "tags": [3]})
    out = concat("prompts", [t1, t2])
    assert out.schema.field("tags").type == pa.string()
    assert out.column("tags")[1].as_py() == "3"
    assert out.column("tags")[0].as_py() is not None


def test_concat_promotes_compatible_numeric_meta() -> None:
    t1 = pa.table({"prompt_id": ["a"], "n": pa.array([1], pa.int32())})
    t2 = pa.table({"prompt_id": ["b"], "n": pa.array([2.5], pa.float64())})
    out = concat("prompts", [t1, t2])
    assert out.column("n").to_pylist() == [1, 2.5]


def test_concat_of_nothing_is_the_empty_table() -> None:
    assert concat("judgments", []).schema == CORE["judgments"]
    assert concat("judgments", [empty_table("judgments")]).num_rows == 0


def test_concat_conforms_core_types() -> None:
    t1 = pa.table({"annotator_id": pa.array([1, 2])})
    t2 = pa.table({"annotator_id": ["u3"]})
    out = concat("annotators", [conform("annotators", t1), t2])
    assert out.column("annotator_id").to_pylist() == ["1", "2", "u3"]


# --- helpers and ids ----------------------------------------------------------------------------
def test_messages_and_text_of() -> None:
    msgs = messages(("system", "Be brief."), ("user", "Hi"))
    assert msgs == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    assert text_of(msgs) == "Be brief.\n\nHi"
    assert text_of(None) == ""
    assert text_of([{"role": "user", "content": None}]) == ""


def test_content_ids_are_deterministic_and_content_sensitive() -> None:
    m = messages(("user", "Hi"))
    assert ids.prompt_id(m) == ids.prompt_id(messages(("user", "Hi")))
    assert ids.prompt_id(m).startswith("p_")
    assert ids.prompt_id(m) != ids.prompt_id(messages(("user", "Hi!")))
    assert ids.prompt_id(m, {"persona": "x"}) != ids.prompt_id(m)
    # An empty context is the same prompt as no context.
    assert ids.prompt_id(m, {}) == ids.prompt_id(m)
    pid = ids.prompt_id(m)
    r = messages(("assistant", "Hello"))
    assert ids.response_id(pid, r).startswith("r_")
    assert ids.response_id(pid, r) == ids.response_id(pid, messages(("assistant", "Hello")))
    assert ids.response_id(pid, r, "gpt") != ids.response_id(pid, r, "llama")
    assert ids.response_id(pid, r) != ids.response_id(ids.prompt_id(messages(("user", "Yo"))), r)
    assert ids.event_id("train", 3) == "train:3"


@pytest.mark.parametrize(
    "text",
    [
        "plain",
        "",
        'quotes " and \\ backslash',
        "line\nbreak\ttab\r",
        "ünïcødé ✓ 🙂",
        "\x00\x01\x1f ctrl",
        "a/b",
    ],
)
def test_batched_one_turn_ids_equal_the_general_ids(text: str) -> None:
    from prefkit.schema import ids

    [pid] = ids.one_turn_prompt_ids([text])
    assert pid == ids.prompt_id([{"role": "user", "content": text}])
    [rid] = ids.one_turn_response_ids([pid], [text])
    assert rid == ids.response_id(pid, [{"role": "assistant", "content": text}])
