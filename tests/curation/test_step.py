"""The curation framework: parameter checking, lineage entries, removed/added counts, and
the cascade that drops everything referring to a dropped row (rankings included)."""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

import prefkit
from prefkit.curation import STEPS, Outcome, Param, Step, apply, drop_rows, register, run_step
from prefkit.curation.step import REPORT_SCHEMA, report_table
from prefkit.errors import PrefkitError
from prefkit.schema.validate import has_errors, validate
from prefkit.synth import simulate
from tinysteps import drop_first, drop_ties, registered


def _copy_judgments(ds: Any) -> Outcome:
    j = ds.judgments
    copy = j.set_column(0, j.schema.field(0), pc.binary_join_element_wise(j.column(0), "copy", "-"))
    return Outcome(
        {"judgments": pa.concat_tables([j, copy])}, added={"judgments": {"copy": len(j)}}
    )


TINY = (
    Step("t_ties", "Drop ties.", drop_ties, (Param("reason", "tie", "why"),)),
    Step(
        "t_first",
        "Drop the first prompts.",
        partial(drop_first, np=np.int64(1)),  # a numpy scalar in the info
        (
            Param("n", 2, "how many"),
            Param("flag", False, "a flag"),
            Param("mode", "a", "a mode", choices=("a", "b")),
            Param("ratio", 0.5, "a ratio"),
            Param("names", ["x"], "names"),
        ),
    ),
    Step("t_copy", "Copy judgments.", _copy_judgments),
    Step(
        "t_need",
        "Needs a value.",
        lambda ds, value: Outcome({}),
        (Param("value", None, "v", required=True),),
    ),
)


@pytest.fixture
def tiny() -> Iterator[None]:
    with registered(TINY):
        yield


@pytest.fixture(scope="module")
def ds() -> prefkit.Dataset:
    return simulate(kind="pairwise", n_prompts=40, tie_threshold=0.3, seed=1)


def test_lineage_entry_records_params_fingerprints_and_counts(tiny: None, ds: Any) -> None:
    n_ties = pc.sum(pc.equal(ds.judgments.column("outcome"), 0)).as_py()
    assert n_ties > 0
    out = apply(ds, "t_ties")
    entry = out.manifest.lineage[-1]
    assert entry["step"] == "t_ties"
    assert entry["params"] == {"reason": "tie"}
    assert entry["removed"] == {"judgments": n_ties}
    assert entry["added"] == {}
    assert entry["reasons"] == {"judgments": {"tie": n_ties}}
    assert entry["inputs"] == [ds.fingerprint()]
    assert entry["output"] == out.fingerprint() != ds.fingerprint()
    assert out.num_rows("judgments") == ds.num_rows("judgments") - n_ties
    assert len(out.manifest.lineage) == len(ds.manifest.lineage) + 1
    assert len(ds.manifest.lineage) == len(out.manifest.lineage) - 1  # input untouched


def test_params_are_converted_and_defaults_recorded(tiny: None, ds: Any) -> None:
    out, outcome = run_step(ds, "t_first", n="3", flag="yes", ratio="0.25", names="p, q")
    entry = out.manifest.lineage[-1]
    assert entry["params"] == {
        "n": 3,
        "flag": True,
        "mode": "a",
        "ratio": 0.25,
        "names": ["p", "q"],
    }
    assert entry["info"] == {"flag": True, "ratio": 0.25, "names": ["p", "q"], "np": 1}
    assert type(entry["info"]["np"]) is int  # numpy scalars made plain for the JSON manifest
    assert entry["removed"]["prompts"] == 3
    assert entry["reasons"]["prompts"] == {"first-a": 3}
    assert outcome.report is not None and outcome.report.schema == REPORT_SCHEMA


def test_added_rows_are_counted(tiny: None, ds: Any) -> None:
    out = apply(ds, "t_copy")
    entry = out.manifest.lineage[-1]
    n = ds.num_rows("judgments")
    assert entry["added"] == {"judgments": n}
    assert entry["added_reasons"] == {"judgments": {"copy": n}}
    assert entry["removed"] == {}


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"bogus": 1}, "unknown parameter(s) bogus"),
        ({"n": "two"}, "parameter 'n' expects int"),
        ({"n": 2.5}, "parameter 'n' expects int"),
        ({"flag": "maybe"}, "parameter 'flag' expects bool"),
        ({"ratio": "x"}, "parameter 'ratio' expects float"),
        ({"mode": "c"}, "parameter 'mode' must be one of a, b"),
    ],
)
def test_bad_params_name_the_parameter(tiny: None, ds: Any, params: dict, message: str) -> None:
    with pytest.raises(
        PrefkitError, match=r"curate t_first: " + message.replace("(", r"\(").replace(")", r"\)")
    ):
        apply(ds, "t_first", **params)


def test_required_param_and_unknown_step(tiny: None, ds: Any) -> None:
    with pytest.raises(PrefkitError, match="parameter 'value' is required"):
        apply(ds, "t_need")
    with pytest.raises(PrefkitError, match="unknown curation step 'nope'"):
        apply(ds, "nope")


def test_register_twice_is_refused(tiny: None) -> None:
    with pytest.raises(ValueError, match="registered twice"):
        register(TINY[0])


def test_unknown_table_in_outcome_is_a_bug(tiny: None, ds: Any) -> None:
    register(Step("t_bad", "bad", lambda ds: Outcome({"nope": pa.table({"x": [1]})})))
    try:
        with pytest.raises(ValueError, match="unknown tables"):
            apply(ds, "t_bad")
    finally:
        STEPS.pop("t_bad")


def test_lineage_survives_save_and_load(tiny: None, ds: Any, tmp_path: Any) -> None:
    out = apply(apply(ds, "t_ties"), "t_first", n=1)
    out.save(tmp_path / "ds")
    back = prefkit.load(tmp_path / "ds")
    assert back.manifest.lineage == out.manifest.lineage
    assert back.fingerprint() == out.fingerprint()
    assert [e["step"] for e in back.manifest.lineage[-2:]] == ["t_ties", "t_first"]


def test_report_table() -> None:
    t = report_table("prompts", ["p1", "p2"], "dup", ["of p0", None])
    assert t.schema == REPORT_SCHEMA
    assert t.to_pylist()[0] == {"table": "prompts", "id": "p1", "reason": "dup", "detail": "of p0"}
    assert report_table("judgments", pa.array(["j"]), "tie").column("detail").to_pylist() == [None]


# --- the cascade -------------------------------------------------------------------------


def _ranked() -> prefkit.Dataset:
    """Two prompts; p1 has r1..r4 ranked [[r1], [r2, r3], [r4]] and judged; p2 has r5, r6."""
    from prefkit.schema.tables import conform

    msgs = lambda text, role="assistant": [{"role": role, "content": text}]  # noqa: E731
    prompts = pa.table(
        {"prompt_id": ["p1", "p2"], "messages": [msgs("q1", "user"), msgs("q2", "user")]}
    )
    responses = pa.table(
        {
            "response_id": ["r1", "r2", "r3", "r4", "r5", "r6"],
            "prompt_id": ["p1", "p1", "p1", "p1", "p2", "p2"],
            "messages": [msgs(f"a{i}") for i in range(1, 7)],
        }
    )
    judgments = pa.table(
        {
            "judgment_id": ["j1", "j2", "j3"],
            "prompt_id": ["p1", "p1", "p2"],
            "a": ["r1", "r2", "r5"],
            "b": ["r2", "r4", "r6"],
            "outcome": pa.array([1, -1, 1], pa.int8()),
        }
    )
    rankings = pa.table(
        {
            "ranking_id": ["k1", "k2", "k3"],
            "prompt_id": ["p1", "p1", "p2"],
            "tiers": [[["r1"], ["r2", "r3"], ["r4"]], [["r2"], ["r3"]], [["r5"], ["r6"]]],
        }
    )
    tables = {
        "prompts": conform("prompts", prompts),
        "responses": conform("responses", responses),
        "judgments": conform("judgments", judgments),
        "rankings": conform("rankings", rankings),
    }
    return prefkit.Dataset(tables)


def _tiers(ds: Any) -> dict[str, Any]:
    return dict(
        zip(
            ds.rankings.column("ranking_id").to_pylist(),
            ds.rankings.column("tiers").to_pylist(),
            strict=True,
        )
    )


def test_drop_response_cascades_to_judgments_and_rankings() -> None:
    ds = _ranked()
    out = drop_rows(ds, "bad", responses=["r2"])
    new = ds.with_tables(**out.tables)
    assert new.responses.column("response_id").to_pylist() == ["r1", "r3", "r4", "r5", "r6"]
    assert new.judgments.column("judgment_id").to_pylist() == ["j3"]
    # r2 leaves k1's middle tier; k2 is left with one response and goes
    assert _tiers(new) == {"k1": [["r1"], ["r3"], ["r4"]], "k3": [["r5"], ["r6"]]}
    assert out.reasons == {
        "responses": {"bad": 1},
        "judgments": {"bad (cascade)": 2},
        "rankings": {"bad (cascade)": 1},
    }
    assert "prompts" not in out.tables
    report = out.report.to_pylist()
    assert {(r["table"], r["id"], r["reason"]) for r in report} == {
        ("responses", "r2", "bad"),
        ("judgments", "j1", "bad (cascade)"),
        ("judgments", "j2", "bad (cascade)"),
        ("rankings", "k2", "bad (cascade)"),
    }
    assert not has_errors(validate(new))


def test_drop_whole_tier_removes_the_empty_tier() -> None:
    ds = _ranked()
    new = ds.with_tables(**drop_rows(ds, "x", responses=["r2", "r3"]).tables)
    assert _tiers(new) == {"k1": [["r1"], ["r4"]], "k3": [["r5"], ["r6"]]}


def test_drop_prompt_cascades_everything() -> None:
    ds = _ranked()
    out = drop_rows(ds, "dup", prompts=["p1"])
    new = ds.with_tables(**out.tables)
    assert new.prompts.column("prompt_id").to_pylist() == ["p2"]
    assert new.responses.column("response_id").to_pylist() == ["r5", "r6"]
    assert new.judgments.column("judgment_id").to_pylist() == ["j3"]
    assert new.rankings.column("ranking_id").to_pylist() == ["k3"]
    assert out.reasons["prompts"] == {"dup": 1}
    assert out.reasons["responses"] == {"dup (cascade)": 4}
    assert out.reasons["judgments"] == {"dup (cascade)": 2}
    assert out.reasons["rankings"] == {"dup (cascade)": 2}
    assert not has_errors(validate(new))


def test_drop_judgments_and_rankings_directly() -> None:
    ds = _ranked()
    out = drop_rows(ds, "noise", judgments=["j2"], rankings=["k1"])
    assert set(out.tables) == {"judgments", "rankings"}
    assert out.reasons == {"judgments": {"noise": 1}, "rankings": {"noise": 1}}
    new = ds.with_tables(**out.tables)
    assert new.rankings.column("ranking_id").to_pylist() == ["k2", "k3"]
    assert _tiers(new)["k2"] == [["r2"], ["r3"]]


def test_drop_nothing_changes_nothing() -> None:
    ds = _ranked()
    out = drop_rows(ds, "none")
    assert out.tables == {} and out.reasons == {} and out.report is None


def test_cascade_lineage_through_apply_counts_every_table() -> None:
    ds = _ranked()
    register(Step("t_cascade", "drop r2", lambda d: drop_rows(d, "bad", responses=["r2"])))
    try:
        entry = apply(ds, "t_cascade").manifest.lineage[-1]
    finally:
        STEPS.pop("t_cascade")
    assert entry["removed"] == {"responses": 1, "judgments": 2, "rankings": 1}


def test_numbers_refuse_booleans() -> None:
    from prefkit.curation.step import Param
    from prefkit.errors import PrefkitError

    with pytest.raises(PrefkitError, match="expects int"):
        Param("k", 1, "k").convert("s", True)
    assert Param("k", 1, "k").convert("s", "3") == 3
