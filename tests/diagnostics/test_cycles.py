"""The `cycles` check: directed cycles in the majority-preference graph.

Golden values come from three independent sources: hand-built graphs whose cycles are
counted by hand, a brute-force enumeration of every triple of nodes in plain Python (with
reachability by boolean matrix closure for longer cycles) run on random graphs and on every
real dataset, and Kendall & Babington Smith's closed form for complete tournaments. On synth
data the planted rock-paper-scissors prompts must be recovered exactly.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable
from itertools import combinations
from typing import Any

import numpy as np
import pytest
from realdata import REAL

from builders import build
from prefkit.dataset import Dataset
from prefkit.diagnostics.checks import cycles
from prefkit.diagnostics.context import Context
from prefkit.diagnostics.findings import Finding
from prefkit.diagnostics.inspect import inspect
from prefkit.diagnostics.registry import CHECKS
from prefkit.schema import messages
from prefkit.synth import simulate

# --- helpers ------------------------------------------------------------------------------


def _dataset(
    judgments: list[tuple[str, str, str, int]],
    sources: dict[str, str] | None = None,
    rankings: list[tuple[str, str, list[list[str]]]] = (),  # type: ignore[assignment]
) -> Dataset:
    """``judgments``: (prompt, a, b, outcome); response ids are globally unique."""
    prompt_of: dict[str, str] = {}
    for p, a, b, _ in judgments:
        prompt_of[a] = prompt_of[b] = p
    for _, p, tiers in rankings:
        for tier in tiers:
            prompt_of.update(dict.fromkeys(tier, p))
    return build(
        prompts=[
            {"prompt_id": p, "messages": messages(("user", p))}
            for p in sorted(set(prompt_of.values()))
        ],
        responses=[
            {
                "response_id": r,
                "prompt_id": p,
                "messages": messages(("assistant", r)),
                "source": (sources or {}).get(r),
            }
            for r, p in sorted(prompt_of.items())
        ],
        judgments=[
            {"judgment_id": f"j{i:04d}", "prompt_id": p, "a": a, "b": b, "outcome": o}
            for i, (p, a, b, o) in enumerate(judgments)
        ],
        rankings=[{"ranking_id": k, "prompt_id": p, "tiers": tiers} for k, p, tiers in rankings],
    )


def _run(ds: Dataset, **params: Any) -> list[Finding]:
    return inspect(ds, checks=["cycles"], params={"cycles": params} if params else {}).findings


def _one(findings: list[Finding], part: str) -> Finding:
    found = [f for f in findings if f.title.endswith(part)]
    assert len(found) == 1, [f.title for f in findings]
    return found[0]


def brute_force(
    votes: dict[tuple[str, str, str], list[int]], min_nodes: int = 3
) -> dict[str, dict[str, Any]]:
    """Per group: nodes, cyclic and complete triads, nodes on cycles, Kendall's d when the
    majority graph is a complete tournament. ``votes[(g, x, y)] = [x wins, y wins, ties]``."""
    groups: dict[str, dict[str, Any]] = defaultdict(lambda: {"nodes": set(), "edges": set()})
    for (g, x, y), (wx, wy, _) in votes.items():
        groups[g]["nodes"] |= {x, y}
        if wx != wy:
            groups[g]["edges"].add((x, y) if wx > wy else (y, x))
    out = {}
    for g, d in groups.items():
        nodes, edges = sorted(d["nodes"]), d["edges"]
        if len(nodes) < min_nodes:
            continue
        cyclic = complete = 0
        for a, b, c in combinations(nodes, 3):
            pairs = [(a, b), (b, c), (a, c)]
            if all((u, v) in edges or (v, u) in edges for u, v in pairs):
                complete += 1
                if {(a, b), (b, c), (c, a)} <= edges or {(b, a), (c, b), (a, c)} <= edges:
                    cyclic += 1
        # Nodes on a directed cycle: those that reach themselves (transitive closure).
        idx = {n: i for i, n in enumerate(nodes)}
        reach = np.zeros((len(nodes), len(nodes)), bool)
        for u, v in edges:
            reach[idx[u], idx[v]] = True
        for k in range(len(nodes)):  # Floyd–Warshall on booleans
            reach |= reach[:, [k]] & reach[[k], :]
        on_cycle = {n for n in nodes if reach[idx[n], idx[n]]}
        n = len(nodes)
        tournament = len(edges) == n * (n - 1) // 2
        out[g] = {"n": n, "cyclic": cyclic, "complete": complete, "on_cycle": on_cycle,
                  "edges": edges, "tournament": tournament}  # fmt: skip
    return out


def votes_of(ds: Dataset, by_model: bool = False) -> dict[tuple[str, str, str], list[int]]:
    """Votes per unordered pair counted in plain Python from the tables (rankings of a
    prompt count when it has two or more, or judgments too, as the check's default)."""
    votes: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
    source = dict(
        zip(*ds.responses.select(["response_id", "source"]).to_pydict().values(), strict=True)
    )

    def add(g: str, a: str, b: str, o: int) -> None:
        if a == b:
            return
        x, y = min(a, b), max(a, b)
        cell = votes[(g, x, y)]
        if o == 0:
            cell[2] += 1
        else:
            cell[0 if (o > 0) == (a == x) else 1] += 1

    for j in ds.judgments.select(["prompt_id", "a", "b", "outcome"]).to_pylist():
        if by_model:
            sa, sb = source.get(j["a"]), source.get(j["b"])
            if sa is not None and sb is not None:
                add("all", sa, sb, j["outcome"])
        else:
            add(j["prompt_id"], j["a"], j["b"], j["outcome"])
    if not by_model:
        rankings = ds.rankings.to_pylist()
        count: dict[str, int] = defaultdict(int)
        for r in rankings:
            count[r["prompt_id"]] += 1
        judged = set(ds.judgments.column("prompt_id").to_pylist())
        for r in rankings:
            if count[r["prompt_id"]] < 2 and r["prompt_id"] not in judged:
                continue
            items = [(lvl, rid) for lvl, tier in enumerate(r["tiers"]) for rid in tier]
            for (la, a), (lb, b) in combinations(items, 2):
                add(r["prompt_id"], a, b, 1 if la < lb else -1 if la > lb else 0)
    return votes


def _check_against_brute_force(f: Finding, ref: dict[str, dict[str, Any]]) -> None:
    m = f.metrics
    assert m["cyclic_triads"] == sum(r["cyclic"] for r in ref.values())
    assert m["complete_triads"] == sum(r["complete"] for r in ref.values())
    assert m["nodes_on_cycles"] == sum(len(r["on_cycle"]) for r in ref.values())
    assert m["complete_tournaments"] == sum(r["tournament"] for r in ref.values())
    cyclic_groups = {g for g, r in ref.items() if r["on_cycle"]}
    if "prompts_with_cycle" in m:
        assert m["prompts_analysed"] == len(ref)
        assert set(f.ids["prompt_id"]) == cyclic_groups
        on_cycle = {n for r in ref.values() for n in r["on_cycle"]}
        assert set(f.ids["response_id"]) == on_cycle


# --- registry and helpers -----------------------------------------------------------------
def test_registered() -> None:
    check = CHECKS["cycles"]
    assert check.title == "Intransitive preferences"
    assert not check.needs_against


def test_kendall_d_max_closed_form() -> None:
    # Kendall & Babington Smith (1940): (n^3 - n)/24 for odd n, (n^3 - 4n)/24 for even n;
    # for n = 3..6 the maxima are 1, 2, 5, 8 circular triads.
    assert cycles.kendall_d_max(np.array([3, 4, 5, 6])).tolist() == [1, 2, 5, 8]


def test_shortest_cycle() -> None:
    assert cycles.shortest_cycle([(0, 1), (1, 2)]) == []
    four = [(0, 1), (1, 2), (2, 3), (3, 0)]
    assert cycles.shortest_cycle(four) == [0, 1, 2, 3]
    # A chord makes a triangle the shortest cycle.
    assert len(cycles.shortest_cycle([*four, (2, 0)])) == 3


# --- golden values on hand-built graphs ---------------------------------------------------
def test_hand_built_prompts() -> None:
    """p1: r1 > r2 > r3 > r1 (with a minority vote and a tie on r1–r2) and r4 below all:
    4 complete triads, 1 cyclic, Kendall d = C(4,3) − (1 + 1 + 1 + 0) = 1, ζ = 1 − 1/2.
    p2: a 4-cycle without chords: no triad, but one strongly connected component.
    p3: transitive, except one pair with an even split (no edge).
    p4: two responses only (not analysed)."""
    # fmt: off
    ds = _dataset(
        [
            ("p1", "r1", "r2", 1),
            ("p1", "r2", "r1", 1),
            ("p1", "r1", "r2", 1),
            ("p1", "r1", "r2", 0),
            ("p1", "r2", "r3", 1),
            ("p1", "r1", "r3", -1),
            ("p1", "r4", "r1", -1),
            ("p1", "r2", "r4", 1),
            ("p1", "r3", "r4", 1),
            ("p2", "s1", "s2", 1),
            ("p2", "s2", "s3", 1),
            ("p2", "s3", "s4", 1),
            ("p2", "s4", "s1", 1),
            ("p3", "t1", "t2", 1),
            ("p3", "t2", "t3", 1),
            ("p3", "t1", "t3", 1),
            ("p3", "t1", "t3", -1),
            ("p4", "u1", "u2", 1),
        ]
    )
    # fmt: on
    f = _one(_run(ds), "per prompt")
    m = f.metrics
    assert m["prompts_analysed"] == 3
    assert m["prompts_with_cycle"] == 2
    assert m["cyclic_triads"] == 1
    assert m["complete_triads"] == 4  # p1's four triads; p3's triad misses the tied pair
    assert m["cyclic_triad_share"] == pytest.approx(0.25)
    assert m["cyclic_components"] == 2
    assert m["tied_pairs"] == 1
    assert m["complete_tournaments"] == 1
    assert m["kendall_zeta_mean"] == pytest.approx(0.5)
    assert sorted(f.ids["prompt_id"]) == ["p1", "p2"]
    assert sorted(f.ids["response_id"]) == ["r1", "r2", "r3", "s1", "s2", "s3", "s4"]
    # Every judgment of a pair whose majority edge is on a cycle (minority and tie included).
    assert sorted(f.ids["judgment_id"]) == [f"j{i:04d}" for i in (0, 1, 2, 3, 4, 5, 9, 10, 11, 12)]
    rows = {r[0]: r for r in f.tables[0].rows}
    assert rows["p1"][2] == 1
    assert rows["p1"][4] == "r1 → r2 → r3 → r1"
    assert rows["p1"][5] == "2–1 (+1 ties), 1–0, 1–0"
    assert rows["p2"][4] == "s1 → s2 → s3 → s4 → s1"
    assert f.severity == "info"  # fewer than min_triads complete triads


def test_random_graphs_match_brute_force_and_kendall() -> None:
    """Random prompts of 3–9 responses, random subsets of pairs, 1–4 votes with ties: the
    sparse-product counts equal a brute-force triple enumeration, and on complete
    tournaments Kendall's ζ from out-degrees equals 1 − d/d_max with d enumerated."""
    rng = np.random.default_rng(7)
    judgments = []
    for p in range(60):
        n = int(rng.integers(3, 10))
        keep = 1.0 if p % 3 == 0 else 0.7
        for i, k in combinations(range(n), 2):
            if rng.random() > keep:
                continue
            for _ in range(int(rng.integers(1, 5))):
                judgments.append(
                    (
                        f"p{p:02d}",
                        f"r{p:02d}-{i}",
                        f"r{p:02d}-{k}",
                        int(rng.choice([1, -1, 1, -1, 0])),
                    )
                )
    ds = _dataset(judgments)
    ref = brute_force(votes_of(ds))
    f = _one(_run(ds), "per prompt")
    _check_against_brute_force(f, ref)
    assert f.metrics["cyclic_triads"] > 0
    graph = cycles.prompt_graph(Context(ds))
    assert graph is not None
    v, an = graph
    labels = v.group_labels.to_pylist()
    for g, r in ref.items():
        i = labels.index(g)
        assert an.cyclic[i] == r["cyclic"] and an.complete[i] == r["complete"]
        if r["tournament"]:
            assert an.zeta[i] == pytest.approx(1 - r["cyclic"] / cycles.kendall_d_max(r["n"]))
        else:
            assert math.isnan(an.zeta[i])


# --- synth: planted rock-paper-scissors prompts -------------------------------------------
def test_synth_planted_triads_recovered_exactly() -> None:
    """A rational teacher (beta=inf, no flips) judges every other prompt transitively, so
    the check must find exactly the planted triads: their prompts, their judgments, their
    responses."""
    ds = simulate(
        kind="pairwise", n_prompts=400, responses_per_prompt=3, n_cyclic_triads=15,
        judgments_per_pair=3, beta=math.inf, seed=3,
    )  # fmt: skip
    f = _one(_run(ds), "per prompt")
    prompts = ds.prompts.filter(ds.prompts.column("cyclic_triad"))
    judgments = ds.judgments.filter(ds.judgments.column("cyclic"))
    assert set(f.ids["prompt_id"]) == set(prompts.column("prompt_id").to_pylist())
    assert set(f.ids["judgment_id"]) == set(judgments.column("judgment_id").to_pylist())
    planted = {r for t in ds.manifest.planted["cyclic_triads"] for r in t["cycle"]}
    assert set(f.ids["response_id"]) == planted
    assert f.metrics["cyclic_triads"] == 15
    assert f.metrics["complete_triads"] == 400
    assert f.metrics["kendall_zeta_mean"] == pytest.approx(1 - 15 / 400)
    assert f.severity == "info"  # 15 / 400 = 3.75 % < warn_share


def test_synth_noisy_teacher_adds_accidental_cycles() -> None:
    """With a Bradley–Terry teacher (beta=1) and 10 % flips, a majority of 3 still cycles by
    chance: every planted triad is found, plus accidental ones (counted, not asserted)."""
    ds = simulate(
        kind="pairwise", n_prompts=300, responses_per_prompt=3, n_cyclic_triads=10,
        judgments_per_pair=3, flip_rate=0.1, seed=4,
    )  # fmt: skip
    f = _one(_run(ds), "per prompt")
    planted = set(
        ds.prompts.filter(ds.prompts.column("cyclic_triad")).column("prompt_id").to_pylist()
    )
    found = set(f.ids["prompt_id"])
    assert planted <= found
    assert len(found) > len(planted)  # accidental cycles exist at this noise level
    assert f.metrics["cyclic_triad_share"] < cycles.RANDOM_SHARE


# --- rankings -----------------------------------------------------------------------------
def test_rankings_condorcet_paradox() -> None:
    """Three rankings A>B>C, B>C>A, C>A>B: every pairwise majority is 2–1 and they cycle.
    A prompt with a single ranking is skipped by default and transitive when included."""
    rankings = [
        ("k1", "p1", [["a"], ["b"], ["c"]]),
        ("k2", "p1", [["b"], ["c"], ["a"]]),
        ("k3", "p1", [["c"], ["a"], ["b"]]),
        ("k4", "p2", [["d"], ["e", "f"], ["g"]]),
    ]
    ds = _dataset([], rankings=rankings)
    f = _one(_run(ds), "per prompt")
    assert f.metrics["prompts_analysed"] == 1
    assert f.metrics["cyclic_triads"] == 1 and f.metrics["complete_triads"] == 1
    assert sorted(f.ids["ranking_id"]) == ["k1", "k2", "k3"]
    assert f.ids["judgment_id"] == []
    assert f.tables[0].rows[0][5] == "2–1, 2–1, 2–1"
    f_all = _one(_run(ds, rankings="all"), "per prompt")
    assert f_all.metrics["prompts_analysed"] == 2
    assert f_all.metrics["cyclic_triads"] == 1
    assert f_all.metrics["tied_pairs"] == 1  # e and f share a tier
    assert _run(ds, rankings="none")[0].severity == "skipped"


# --- across models ------------------------------------------------------------------------
def test_hand_built_rock_paper_scissors_battles() -> None:
    """rock beats scissors, scissors beats paper, paper beats rock (each 3–1), and all beat
    dud: 1 cyclic triad of 4, Kendall ζ = 0.5; only the battles among the three are ids."""
    models = ["rock", "paper", "scissors", "dud"]
    beats = [("rock", "scissors"), ("scissors", "paper"), ("paper", "rock")]
    beats += [(m, "dud") for m in models[:3]]
    judgments, sources, n = [], {}, 0
    for w, lose in beats:
        for o in (1, 1, 1, -1, 0):
            n += 1
            a, b = f"q{n}-{w}", f"q{n}-{lose}"
            sources.update({a: w, b: lose})
            judgments.append((f"q{n}", a, b, o))
    ds = _dataset(judgments, sources)
    findings = _run(ds)
    assert [f.title for f in findings] == ["Intransitive preferences: across models"]
    f = findings[0]
    assert f.metrics["models"] == 4
    assert f.metrics["cyclic_triads"] == 1 and f.metrics["complete_triads"] == 4
    assert f.metrics["kendall_zeta_mean"] == pytest.approx(0.5)
    assert f.metrics["nodes_on_cycles"] == 3
    cycle, votes, margin = f.tables[0].rows[0]
    assert cycle == "paper → rock → scissors → paper"
    assert votes == "3–1 (+1 ties), 3–1 (+1 ties), 3–1 (+1 ties)"
    assert margin == pytest.approx(0.5)
    assert len(f.ids["judgment_id"]) == 15  # 3 model pairs x 5 battles
    plot = f.plots[0]
    assert dict(zip(plot.x, plot.series["cyclic triads through the model"], strict=True)) == {
        "dud": 0, "paper": 1, "rock": 1, "scissors": 1,
    }  # fmt: skip


def test_model_four_cycle_without_triad() -> None:
    """a > b > c > d > a with no other match-ups: no cyclic triad, one component of 4, and
    the example is the 4-cycle itself."""
    judgments, sources = [], {}
    for n, (w, lose) in enumerate([("a", "b"), ("b", "c"), ("c", "d"), ("d", "a")]):
        x, y = f"q{n}-{w}", f"q{n}-{lose}"
        sources.update({x: w, y: lose})
        judgments.append((f"q{n}", x, y, 1))
    f = _one(_run(_dataset(judgments, sources)), "across models")
    assert f.metrics["cyclic_triads"] == 0 and f.metrics["cyclic_components"] == 1
    assert f.metrics["nodes_on_cycles"] == 4
    assert f.tables[0].rows[0][0] == "a → b → c → d → a"
    assert f.severity == "info"


def test_synth_battles_transitive_skills() -> None:
    """Bradley–Terry skills are transitive: with enough battles the pooled majority graph has
    no cycle, and every majority edge between models more than 50 Elo apart points from
    the stronger to the weaker (closer ones may tie or flip by chance)."""
    ds = simulate(kind="battles", n_prompts=4000, n_models=6, seed=0)
    f = _one(_run(ds), "across models")
    assert f.metrics["cyclic_triads"] == 0 and f.severity == "ok"
    skills = ds.manifest.planted["models"]["skills"]
    graph = cycles.model_graph(Context(ds))
    assert graph is not None
    v, an = graph
    names = v.node_labels.to_pylist()
    edges = [(names[s], names[t]) for s, t in zip(an.src, an.dst, strict=True)]
    assert len(edges) >= 14
    assert all(skills[w] > skills[lose] for w, lose in edges if abs(skills[w] - skills[lose]) > 50)


# --- not applicable -----------------------------------------------------------------------
@pytest.mark.parametrize(
    "ds",
    [
        pytest.param(lambda: simulate(kind="pairwise", n_prompts=50, seed=0), id="two-responses"),
        pytest.param(lambda: simulate(kind="ratings", n_prompts=20, seed=0), id="ratings-only"),
        pytest.param(lambda: Dataset({}), id="empty"),
    ],
)
def test_skipped_without_graphs(ds: Callable[[], Dataset]) -> None:
    findings = _run(ds())
    assert len(findings) == 1 and findings[0].severity == "skipped"
    assert "3+" in findings[0].verdict


def test_bad_parameter() -> None:
    from prefkit.errors import PrefkitError

    with pytest.raises(PrefkitError, match="rankings"):
        _run(_dataset([("p", "a", "b", 1)]), rankings="some")


# --- real data ----------------------------------------------------------------------------
@pytest.mark.shared_data
@pytest.mark.parametrize("name", sorted(REAL))
def test_real_datasets_match_brute_force(name: str, real_dataset: Callable[[str], Dataset]) -> None:
    ds = real_dataset(name)
    findings = _run(ds)
    ref = brute_force(votes_of(ds))
    models = brute_force(votes_of(ds, by_model=True))
    if not ref and not models:
        assert len(findings) == 1 and findings[0].severity == "skipped"
    if ref:
        _check_against_brute_force(_one(findings, "per prompt"), ref)
    if models:
        _check_against_brute_force(_one(findings, "across models"), models)
    m = {f.title.split(": ")[-1]: f.metrics for f in findings}
    if name == "ukp_convarg1":
        # 32 topic/stance pairs of ~30 arguments, 5 crowd labels per pair: every topic
        # holds cycles, but only ~4 % of complete triads are cyclic (random: 25 %).
        assert m["per prompt"]["prompts_analysed"] == 32
        assert m["per prompt"]["prompts_with_cycle"] == 32
        assert 0.02 < m["per prompt"]["cyclic_triad_share"] < 0.08
    if name == "vicuna80_human_battles":
        # 9 models, 32 model pairs: one cyclic triad among the three Guanaco sizes.
        assert m["across models"]["models"] == 9
        assert m["across models"]["cyclic_triads"] == 1
        f = _one(findings, "across models")
        assert set(f.tables[0].rows[0][0].split(" → ")) == {
            "guanaco-7b",
            "guanaco-33b",
            "guanaco-65b",
        }
        assert 0.05 < m["per prompt"]["cyclic_triad_share"] < 0.2
        # Per-prompt examples name the models along each cycle.
        example = _one(findings, "per prompt").tables[0]
        assert example.columns[-1] == "models" and "guanaco" in example.rows[0][-1]
    if name == "oasst_en100_trees":
        # One ranking per prompt: transitive by construction, nothing to analyse.
        assert findings[0].severity == "skipped"
    if name in ("hh_rlhf_harmless_test", "imagereward_test"):
        assert m["per prompt"]["cyclic_triads"] == 0
