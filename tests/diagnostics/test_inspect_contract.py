"""The contract every registered check keeps, run over every check and every kind of data:
synth data of each feedback kind, an empty dataset, and every real dataset."""

from __future__ import annotations

from collections.abc import Callable

import orjson
import pyarrow as pa
import pytest
from realdata import REAL

import prefkit.diagnostics.checks  # noqa: F401  (registers the checks)
from prefkit.dataset import Dataset
from prefkit.diagnostics import CHECKS, Context, Finding, InspectOptions, inspect
from prefkit.diagnostics.context import ID_COLUMN
from prefkit.diagnostics.registry import resolve
from prefkit.errors import PrefkitError
from prefkit.synth import simulate

TOP = 5
AGAINST = ["What is the capital of France?", "Write a poem about the sea."]
SYNTH = {
    "pairwise": dict(kind="pairwise", n_prompts=120, judgments_per_pair=3, n_annotators=10),
    "battles": dict(kind="battles", n_prompts=150, n_models=5),
    "ratings": dict(kind="ratings", n_prompts=80, responses_per_prompt=3),
    "rankings": dict(kind="rankings", n_prompts=60, responses_per_prompt=4),
}


def _ids(ds: Dataset, kind: str) -> set[str]:
    table = {v: k for k, v in ID_COLUMN.items()}[kind]
    return set(ds.table(table).column(kind).to_pylist())


def _keeps_contract(ds: Dataset, findings: list[Finding], name: str) -> None:
    assert findings, f"{name} returned no finding"
    for f in findings:
        assert isinstance(f, Finding)
        assert f.check == name
        assert f.verdict.strip(), f"{name}: empty verdict"
        orjson.dumps(f.to_dict())  # JSON-serialisable
        for t in f.tables:
            assert len(t.rows) <= TOP, f"{name}: table {t.title!r} has {len(t.rows)} rows"
            assert all(len(r) == len(t.columns) for r in t.rows)
        for kind, ids in f.ids.items():
            assert kind in ID_COLUMN.values(), kind
            assert set(ids) <= _ids(ds, kind), f"{name}: unknown {kind} in ids"


def _run(ds: Dataset, name: str) -> list[Finding]:
    ctx = Context(ds, InspectOptions(against=AGAINST, embed="never", top=TOP))
    return CHECKS[name].run(ctx)


@pytest.mark.parametrize("name", list(CHECKS))
@pytest.mark.parametrize("kind", list(SYNTH))
def test_check_keeps_contract_on_synth(kind: str, name: str) -> None:
    ds = simulate(**SYNTH[kind], seed=1)
    _keeps_contract(ds, _run(ds, name), name)


@pytest.mark.parametrize("name", list(CHECKS))
def test_check_skips_an_empty_dataset(name: str) -> None:
    ds = Dataset()
    findings = _run(ds, name)
    assert {f.severity for f in findings} <= {"skipped", "ok", "info"}


@pytest.mark.shared_data
@pytest.mark.parametrize("data", sorted(REAL))
def test_every_check_runs_on_real_data(real_dataset: Callable[[str], Dataset], data: str) -> None:
    ds = real_dataset(data)
    for name in CHECKS:
        _keeps_contract(ds, _run(ds, name), name)


def test_inspect_runs_all_checks_in_registry_order() -> None:
    ds = simulate(kind="pairwise", n_prompts=60, judgments_per_pair=2, n_annotators=6)
    report = inspect(ds, embed="never", name="sim")
    assert report.options["checks"] == list(CHECKS)
    assert list(report.seconds) == list(CHECKS)
    seen = list(dict.fromkeys(f.check for f in report.findings))
    assert seen == list(CHECKS)
    assert report.fingerprint == ds.fingerprint()
    needs = [c.name for c in CHECKS.values() if c.needs_against]
    for f in report.findings:
        if f.check in needs:
            assert f.severity == "skipped" and "--against" in f.verdict


def test_unknown_check_names_the_known_ones() -> None:
    with pytest.raises(PrefkitError, match=r"unknown check.*nope.*known"):
        resolve(["nope"])


def test_progress_reports_each_check() -> None:
    ds = simulate(kind="pairwise", n_prompts=30)
    steps: list[tuple[str, int]] = []

    def progress(description: str, total: int | None) -> Callable[[int], None]:
        return lambda n: steps.append((description, n))

    inspect(ds, checks=list(CHECKS)[:2], embed="never", progress=progress)
    assert [s for s in steps if s[0] == "inspect"] == [("inspect", 1)] * min(2, len(CHECKS))


def test_context_streams_the_same_lengths_from_parquet(tmp_path: object) -> None:
    ds = simulate(kind="pairwise", n_prompts=50)
    import prefkit

    ds.save(tmp_path / "ds")  # type: ignore[operator]
    on_disk = prefkit.load(tmp_path / "ds")  # type: ignore[operator]
    for table in ("prompts", "responses"):
        mem = Context(ds).lengths(table).sort_by("id")
        disk = Context(on_disk).lengths(table).sort_by("id")
        assert mem.equals(disk)
    frame = Context(on_disk).judgment_frame()
    assert frame.column("judgment_id").to_pylist() == ds.judgments.column("judgment_id").to_pylist()


def test_lengths_count_characters_and_whitespace_words() -> None:
    ds = prefkit_pairs(["héllo  wörld\nfoo", "  "])
    lengths = {r["id"]: r for r in Context(ds).lengths("responses").to_pylist()}
    counts = sorted((r["n_chars"], r["n_words"]) for r in lengths.values())
    assert counts == [(1, 1), (2, 0), (16, 3)]


def prefkit_pairs(chosen: list[str]) -> Dataset:
    from prefkit import from_pairs

    table = pa.table(
        {"prompt": ["p"] * len(chosen), "chosen": chosen, "rejected": ["x"] * len(chosen)}
    )
    return from_pairs(table)


def test_param_converts_to_the_default_type_and_names_bad_values() -> None:
    ctx = Context(Dataset(), InspectOptions(params={"c": {"flag": "false", "n": "13", "x": "z"}}))
    assert ctx.param("c", "flag", True) is False
    assert ctx.param("c", "n", 8) == 13
    assert ctx.param("c", "missing", 0.5) == 0.5
    with pytest.raises(PrefkitError, match=r"c\.x=.z.: expected int"):
        ctx.param("c", "x", 1)
    half = Context(Dataset(), InspectOptions(params={"c": {"n": 0.5}}))
    with pytest.raises(PrefkitError, match="expected int"):
        half.param("c", "n", 1)


def test_params_must_name_a_check_and_unused_keys_are_reported() -> None:
    ds = simulate(kind="pairwise", n_prompts=30)
    with pytest.raises(PrefkitError, match="unknown check"):
        inspect(ds, embed="never", params={"nope": {"x": 1}})
    name = next(iter(CHECKS))
    report = inspect(ds, checks=[name], embed="never", params={name: {"no_such_key": 1}})
    assert report.options["unused_params"] == [f"{name}.no_such_key"]
