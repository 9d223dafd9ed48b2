"""Intransitive preferences: directed cycles in the majority-preference graph.

What it detects
    Preferences that cannot all hold at once: response A beats B, B beats C and C beats A
    by majority vote. Two graphs are checked.

    * **Per prompt** (every prompt with at least ``min_responses`` judged responses): the
      nodes are the prompt's responses, and there is an edge u → v when most non-tie
      votes on the pair {u, v} prefer u. A pair whose votes split evenly (ties included,
      or only tie votes) has *no* edge.
    * **Across models** (battles: responses carry a ``source``): the nodes are the models
      and the votes of every prompt are pooled, so u → v when model u wins most non-tie
      head-to-head judgments against model v.

Method
    Kendall and Babington Smith (1940), "On the method of paired comparisons"
    (Biometrika 31, 324–345): a *circular triad* is a set of three items whose three
    preferences form a cycle; ``d`` counts them, and for a complete tournament of ``n``
    items the coefficient of consistency is ``ζ = 1 − d / d_max`` with
    ``d_max = (n³ − n) / 24`` (n odd) or ``(n³ − 4n) / 24`` (n even), and Kendall's
    closed form ``d = C(n, 3) − Σ_i C(s_i, 2)`` (``s_i`` = out-degree). A random
    orientation makes 1/4 of the triads cyclic.

    The majority graphs of all prompts form one block-diagonal sparse matrix ``A`` (one
    block per prompt), so everything is counted at once with sparse products: the cyclic
    triads through edge u → v are the paths v → w → u, ``(A @ A)[v, u]``; the complete
    triads (all three pairs have an edge, i.e. transitive or cyclic) through an edge are
    ``(U @ U)[u, v]`` with ``U = A + Aᵀ``. Dividing the per-prompt sums over edges by 3
    gives the counts per prompt. Longer cycles (a 4-cycle with no chord holds no cyclic
    triad) are found with strongly connected components (Tarjan 1972, via
    ``scipy.sparse.csgraph``): an edge lies on a directed cycle exactly when both ends are
    in the same component. Because the majority graph has at most one edge per pair, a
    component with more than one node has at least three. Example cycles are the
    shortest ones (breadth-first search inside a component).

Deviations
    Kendall's ζ needs a complete tournament; it is reported only over prompts (or the
    model pool) whose majority graph has an edge on every pair. The *share* of cyclic
    triads (cyclic / complete triads) is defined for incomplete graphs as well and is the
    headline number. Vote counts ignore ``strength``.

Rankings
    A single ranking is transitive by construction, so it cannot create a cycle but would
    dilute the share. Rankings are expanded to pairwise votes (a response beats every
    response in a later tier; two responses in one tier are a tie) and pooled with the
    judgments, by default only for prompts with at least two rankings or with judgments
    as well (``rankings="multi"``).

Parameters (``ctx.param("cycles", key, default)``)
    ``min_responses`` (3): judged responses a prompt needs to be analysed.
    ``rankings`` ("multi"): ``"multi"``, ``"all"`` or ``"none"`` (see above).
    ``warn_share`` (0.05), ``error_share`` (0.15): severity thresholds on the share of
    cyclic triads (any cycle at all is ``info``; none is ``ok``).
    ``min_triads`` (30): below this many complete triads a cycle is only ``info``.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from prefkit.diagnostics.checks.agreement import ranking_pairs_sql
from prefkit.diagnostics.context import Context
from prefkit.diagnostics.findings import Finding, Plot, Table, skipped
from prefkit.diagnostics.registry import Check, register
from prefkit.engine import scalar
from prefkit.errors import PrefkitError

NAME = "cycles"
TITLE = "Intransitive preferences"
#: Share of cyclic triads when every pair is oriented by a fair coin (2 of 8 orientations).
RANDOM_SHARE = 0.25
RANKING_MODES = ("multi", "all", "none")
#: Prompt-size buckets of the per-size plot: (label, lowest n, highest n).
SIZE_BUCKETS = [(str(n), n, n) for n in range(3, 11)] + [
    ("11-20", 11, 20),
    ("21-50", 21, 50),
    ("51-100", 51, 100),
    (">100", 101, 1 << 62),
]
#: Nodes tried as start of the shortest-cycle search in one component.
MAX_CYCLE_STARTS = 64
#: Model-level cyclic triads listed (then sorted by strength) at most.
MAX_TRIADS_LISTED = 10_000


# --- helpers ------------------------------------------------------------------------------
@dataclass
class PairVotes:
    """Vote counts per unordered pair {x, y} (x < y as strings), with integer node ids.

    ``group`` indexes ``group_labels`` (a prompt, or the single pool of models); ``xi``,
    ``yi`` index ``node_labels``; ``node_group`` gives each node's group.
    """

    group: np.ndarray  # (P,)
    xi: np.ndarray  # (P,)
    yi: np.ndarray  # (P,)
    wx: np.ndarray  # (P,) non-tie votes for x
    wy: np.ndarray  # (P,) non-tie votes for y
    ties: np.ndarray  # (P,)
    x: pa.Array  # (P,) labels, for ids and examples
    y: pa.Array
    group_labels: pa.Array  # (G,)
    node_labels: pa.Array  # (N,)
    node_group: np.ndarray  # (N,)


@dataclass
class Analysis:
    """The majority graph of :class:`PairVotes` and what was counted on it."""

    pair: np.ndarray  # (E,) pair row of each directed edge
    src: np.ndarray  # (E,) winner node
    dst: np.ndarray  # (E,) loser node
    triads_through: np.ndarray  # (E,) cyclic triads through the edge
    on_cycle: np.ndarray  # (E,) edge lies on a directed cycle
    node_on_cycle: np.ndarray  # (N,)
    n_nodes: np.ndarray  # (G,) judged nodes per group
    n_pairs: np.ndarray  # (G,) judged pairs per group
    n_edges: np.ndarray  # (G,) pairs with a majority
    cyclic: np.ndarray  # (G,) cyclic triads
    complete: np.ndarray  # (G,) complete (transitive or cyclic) triads
    components: np.ndarray  # (G,) strongly connected components with > 1 node
    out_degree: np.ndarray  # (N,)
    zeta: np.ndarray  # (G,) Kendall's ζ, NaN unless the group is a complete tournament


def _votes_sql(pairs_sql: str) -> str:
    """Per unordered pair of one group: votes for the smaller id, for the larger, ties.

    ``pairs_sql`` yields ``g, a, b, o`` (group, first item, second item, outcome sign)."""
    return f"""
        SELECT g, least(a, b) AS x, greatest(a, b) AS y,
               count(*) FILTER (o <> 0 AND (o > 0) = (a < b)) AS wx,
               count(*) FILTER (o <> 0 AND (o > 0) <> (a < b)) AS wy,
               count(*) FILTER (o = 0) AS ties
        FROM ({pairs_sql}) WHERE a <> b GROUP BY ALL"""


def _ranking_pairs_sql(mode: str) -> str:
    """Rankings as votes ``g, a, b, o, ranking_id`` (``a < b``; ``o`` +1 when ``a`` is in
    the better tier, -1 when ``b`` is, 0 in the same tier), as the agreement check reads
    them."""
    where = ""
    if mode == "multi":
        where = """WHERE prompt_id IN (
                     SELECT prompt_id FROM _rankings GROUP BY prompt_id HAVING count(*) >= 2
                     UNION SELECT DISTINCT prompt_id FROM _judgments)"""
    return f"""SELECT prompt_id AS g, lo AS a, hi AS b, value AS o, ranking_id
               FROM ({ranking_pairs_sql(where)})"""


def _load_votes(ctx: Context, votes_sql: str, min_nodes: int) -> PairVotes | None:
    """Run ``votes_sql`` (see :func:`_votes_sql`), keep groups with ``min_nodes`` nodes,
    number groups and nodes; None when no group is left."""
    con = ctx.con
    con.sql(f"CREATE OR REPLACE TEMP TABLE _cycles_votes AS {votes_sql}")
    con.sql(
        f"""CREATE OR REPLACE TEMP TABLE _cycles_nodes AS
            WITH n AS (SELECT g, x AS r FROM _cycles_votes UNION SELECT g, y FROM _cycles_votes),
                 keep AS (SELECT g FROM n GROUP BY g HAVING count(*) >= {min_nodes})
            SELECT n.g, n.r, (dense_rank() OVER (ORDER BY n.g) - 1)::BIGINT AS gi,
                   (row_number() OVER (ORDER BY n.g, n.r) - 1)::BIGINT AS i
            FROM n JOIN keep USING (g)"""
    )
    nodes = con.sql("SELECT g, r, gi FROM _cycles_nodes ORDER BY i").to_arrow_table()
    if not nodes.num_rows:
        _drop(ctx)
        return None
    pairs = con.sql(
        """SELECT nx.gi, nx.i AS xi, ny.i AS yi, v.wx, v.wy, v.ties, v.x, v.y
           FROM _cycles_votes v
           JOIN _cycles_nodes nx ON nx.g = v.g AND nx.r = v.x
           JOIN _cycles_nodes ny ON ny.g = v.g AND ny.r = v.y
           ORDER BY nx.gi, xi, yi"""
    ).to_arrow_table()
    groups = con.sql("SELECT DISTINCT g, gi FROM _cycles_nodes ORDER BY gi").to_arrow_table()
    _drop(ctx)

    def col(t: pa.Table, name: str) -> np.ndarray:
        return np.asarray(t.column(name).to_numpy(), dtype=np.int64)

    return PairVotes(
        group=col(pairs, "gi"),
        xi=col(pairs, "xi"),
        yi=col(pairs, "yi"),
        wx=col(pairs, "wx"),
        wy=col(pairs, "wy"),
        ties=col(pairs, "ties"),
        x=pairs.column("x").combine_chunks(),
        y=pairs.column("y").combine_chunks(),
        group_labels=groups.column("g").combine_chunks(),
        node_labels=nodes.column("r").combine_chunks(),
        node_group=col(nodes, "gi"),
    )


def _drop(ctx: Context) -> None:
    ctx.con.sql("DROP TABLE IF EXISTS _cycles_votes")
    ctx.con.sql("DROP TABLE IF EXISTS _cycles_nodes")


def kendall_d_max(n: np.ndarray) -> np.ndarray:
    """Most circular triads a tournament of ``n`` items can hold (Kendall & B. Smith 1940)."""
    n = np.asarray(n, dtype=np.float64)
    return np.where(n % 2 == 1, (n**3 - n) / 24, (n**3 - 4 * n) / 24)


def _analyse(v: PairVotes) -> Analysis:
    """Majority edges, cyclic/complete triads per group, SCCs and Kendall's ζ."""
    n_nodes_total = len(v.node_labels)
    n_groups = len(v.group_labels)
    fwd, bwd = v.wx > v.wy, v.wy > v.wx
    pair = np.flatnonzero(fwd | bwd)
    src = np.where(fwd, v.xi, v.yi)[pair]
    dst = np.where(fwd, v.yi, v.xi)[pair]
    shape = (n_nodes_total, n_nodes_total)
    a = sp.csr_matrix((np.ones(len(pair)), (src, dst)), shape=shape)  # (N, N) block-diagonal
    # Cyclic triads through u -> v: paths v -> w -> u, i.e. (A @ A)[v, u].
    triads_through = np.asarray((a @ a)[dst, src]).ravel() if len(pair) else np.zeros(0)
    u = a + a.T
    complete_through = np.asarray((u @ u)[src, dst]).ravel() if len(pair) else np.zeros(0)
    egroup = v.group[pair]
    cyclic = np.rint(np.bincount(egroup, triads_through, n_groups) / 3).astype(np.int64)
    complete = np.rint(np.bincount(egroup, complete_through, n_groups) / 3).astype(np.int64)
    _, labels = connected_components(a, directed=True, connection="strong")
    size = np.bincount(labels)
    node_on_cycle = size[labels] > 1
    on_cycle = (labels[src] == labels[dst]) & node_on_cycle[src]
    _, first_node = np.unique(labels, return_index=True)  # (C,) a node of each component
    cyclic_components = np.flatnonzero(size > 1)
    components = np.bincount(v.node_group[first_node[cyclic_components]], minlength=n_groups)
    n_nodes = np.bincount(v.node_group, minlength=n_groups)
    n_pairs = np.bincount(v.group, minlength=n_groups)
    n_edges = np.bincount(egroup, minlength=n_groups)
    out_degree = np.bincount(src, minlength=n_nodes_total)
    # Kendall's closed form d = C(n, 3) - sum_i C(s_i, 2), for complete tournaments only.
    sum_c2 = np.bincount(v.node_group, out_degree * (out_degree - 1) / 2, n_groups)
    n = n_nodes.astype(np.float64)
    d = n * (n - 1) * (n - 2) / 6 - sum_c2
    tournament = n_edges == n_nodes * (n_nodes - 1) // 2
    with np.errstate(invalid="ignore", divide="ignore"):
        zeta = np.where(tournament, 1 - d / kendall_d_max(n_nodes), np.nan)
    return Analysis(
        pair,
        src,
        dst,
        triads_through,
        on_cycle,
        node_on_cycle,
        n_nodes,
        n_pairs,
        n_edges,
        cyclic,
        complete,
        components,
        out_degree,
        zeta,
    )


def shortest_cycle(edges: list[tuple[int, int]], max_starts: int = MAX_CYCLE_STARTS) -> list[int]:
    """A shortest directed cycle (as its nodes, first not repeated) among ``edges``;
    ``[]`` when there is none. Breadth-first search from up to ``max_starts`` nodes."""
    out: dict[int, list[int]] = {}
    for s, t in edges:
        out.setdefault(s, []).append(t)
    best: list[int] = []
    for start in sorted(out)[:max_starts]:
        parent = {start: start}
        queue = deque([start])
        found: list[int] = []
        while queue and not found:
            node = queue.popleft()
            for nxt in out.get(node, []):
                if nxt == start:
                    found = [node]
                    while found[-1] != start:
                        found.append(parent[found[-1]])
                    found.reverse()
                    break
                if nxt not in parent:
                    parent[nxt] = node
                    queue.append(nxt)
        if found and (not best or len(found) < len(best)):
            best = found
            if len(best) == 3:
                break
    return best


def _cycle_text(
    v: PairVotes, an: Analysis, cycle: list[int], edge_of: dict[tuple[int, int], int]
) -> tuple[str, str]:
    """``(a → b → c → a, "w–l, w–l, w–l")`` for a cycle of node indices."""
    names = [str(v.node_labels[i]) for i in cycle]
    votes = []
    for s, t in zip(cycle, cycle[1:] + cycle[:1], strict=True):
        p = an.pair[edge_of[(s, t)]]
        win, lose = max(v.wx[p], v.wy[p]), min(v.wx[p], v.wy[p])
        tie = f" (+{v.ties[p]} ties)" if v.ties[p] else ""
        votes.append(f"{win}–{lose}{tie}")
    return " → ".join(names + names[:1]), ", ".join(votes)


def _group_cycle(v: PairVotes, an: Analysis, g: int) -> tuple[list[str], str, str]:
    """The shortest cycle of group ``g``: its node labels, as text, and the votes."""
    rows = np.flatnonzero(an.on_cycle & (v.group[an.pair] == g))
    edges = list(zip(an.src[rows].tolist(), an.dst[rows].tolist(), strict=True))
    edge_of = {e: int(r) for e, r in zip(edges, rows, strict=True)}
    cycle = shortest_cycle(edges)
    if not cycle:
        return [], "", ""
    return [str(v.node_labels[i]) for i in cycle], *_cycle_text(v, an, cycle, edge_of)


def _sources(ctx: Context, response_ids: list[str]) -> dict[str, str]:
    """``responses.source`` of some responses (those that have one)."""
    ctx.con.register("_cycles_rids", pa.table({"response_id": pa.array(response_ids, pa.string())}))
    found = ctx.con.sql(
        """SELECT r.response_id, r.source FROM _responses r
           JOIN _cycles_rids USING (response_id) WHERE r.source IS NOT NULL"""
    ).fetchall()
    ctx.con.unregister("_cycles_rids")
    return {str(rid): str(src) for rid, src in found}


def _severity(ctx: Context, share: float, n_cycles: int, n_complete: int) -> str:
    if n_cycles == 0:
        return "ok"
    if n_complete < ctx.param(NAME, "min_triads", 30):
        return "info"  # too few triads for the share to mean much
    if share >= ctx.param(NAME, "error_share", 0.15):
        return "error"
    if share >= ctx.param(NAME, "warn_share", 0.05):
        return "warning"
    return "info"


def _cycle_pairs(v: PairVotes, an: Analysis) -> pa.Table:
    """``g, x, y`` of the pairs whose majority edge lies on a directed cycle."""
    p = an.pair[an.on_cycle]
    return pa.table(
        {
            "g": v.group_labels.take(pa.array(v.group[p])),
            "x": v.x.take(pa.array(p)),
            "y": v.y.take(pa.array(p)),
        }
    )


def _ids(ctx: Context, sql: str, pairs: pa.Table) -> list[str]:
    ctx.con.register("_cycles_pairs", pairs)
    out = ctx.con.sql(sql).to_arrow_table().column(0).to_pylist()
    ctx.con.unregister("_cycles_pairs")
    return [str(i) for i in out]


def _metrics(an: Analysis, head: dict[str, float | int]) -> dict[str, float | int | None]:
    """The share of cyclic triads, then ``head``, then the counts common to both graphs."""
    cyclic, complete = int(an.cyclic.sum()), int(an.complete.sum())
    tournament = ~np.isnan(an.zeta)
    return {
        "cyclic_triad_share": cyclic / complete if complete else None,
        **head,
        "cyclic_triads": cyclic,
        "complete_triads": complete,
        "cyclic_components": int(an.components.sum()),
        "nodes_on_cycles": int(an.node_on_cycle.sum()),
        "edges_on_cycles": int(an.on_cycle.sum()),
        "pairs": int(an.n_pairs.sum()),
        "majority_edges": int(an.n_edges.sum()),
        "tied_pairs": int(an.n_pairs.sum() - an.n_edges.sum()),
        "complete_tournaments": int(tournament.sum()),
        "kendall_zeta_mean": float(an.zeta[tournament].mean()) if tournament.any() else None,
        "kendall_zeta_min": float(an.zeta[tournament].min()) if tournament.any() else None,
        "random_share": RANDOM_SHARE,
    }


# --- per prompt ---------------------------------------------------------------------------
def prompt_graph(ctx: Context) -> tuple[PairVotes, Analysis] | None:
    """The per-prompt majority graphs (judgments, plus rankings as the ``rankings``
    parameter says) and what was counted on them; None when no prompt qualifies."""
    mode = ctx.param(NAME, "rankings", "multi")
    if mode not in RANKING_MODES:
        raise PrefkitError(f"cycles: rankings must be one of {', '.join(RANKING_MODES)}")
    parts = []
    if ctx.count("judgments"):
        parts.append("SELECT prompt_id AS g, a, b, outcome AS o FROM _judgments")
    if mode != "none" and ctx.count("rankings"):
        parts.append(f"SELECT g, a, b, o FROM ({_ranking_pairs_sql(mode)})")
    if not parts:
        return None
    v = _load_votes(ctx, _votes_sql(" UNION ALL ".join(parts)), ctx.param(NAME, "min_responses", 3))
    return None if v is None else (v, _analyse(v))


def model_graph(ctx: Context) -> tuple[PairVotes, Analysis] | None:
    """The majority graph between models (``responses.source``), every prompt pooled;
    None without judgments between three or more models."""
    if not ctx.count("judgments") or not scalar(ctx.con, "SELECT count(source) FROM _responses"):
        return None
    pairs = """SELECT 'all' AS g, ra.source AS a, rb.source AS b, j.outcome AS o
               FROM _judgments j
               JOIN _responses ra ON ra.response_id = j.a
               JOIN _responses rb ON rb.response_id = j.b
               WHERE ra.source IS NOT NULL AND rb.source IS NOT NULL"""
    v = _load_votes(ctx, _votes_sql(pairs), 3)
    return None if v is None else (v, _analyse(v))


def _per_prompt(ctx: Context) -> Finding | None:
    graph = prompt_graph(ctx)
    if graph is None:
        return None
    v, an = graph
    mode = ctx.param(NAME, "rankings", "multi")
    use_rankings = mode != "none" and ctx.count("rankings") > 0
    min_nodes = ctx.param(NAME, "min_responses", 3)
    n_prompts = len(v.group_labels)
    cyclic_prompts = np.flatnonzero(an.components > 0)
    n_cyc = len(cyclic_prompts)
    metrics = _metrics(
        an,
        {
            "prompts_with_cycle": n_cyc,
            "prompt_cycle_share": n_cyc / n_prompts,
            "prompts_analysed": n_prompts,
        },
    )
    share = metrics["cyclic_triad_share"] or 0.0
    if use_rankings:
        metrics["ranking_votes_used"] = int(
            scalar(ctx.con, f"SELECT count(*) FROM ({_ranking_pairs_sql(mode)})")
        )
    cpairs = _cycle_pairs(v, an)
    ids: dict[str, list[str]] = {
        "prompt_id": v.group_labels.take(pa.array(cyclic_prompts)).to_pylist(),
        "judgment_id": [],
        "response_id": v.node_labels.filter(pa.array(an.node_on_cycle)).to_pylist(),
    }
    if cpairs.num_rows and ctx.count("judgments"):
        ids["judgment_id"] = _ids(
            ctx,
            """SELECT j.judgment_id FROM _judgments j JOIN _cycles_pairs c
               ON c.g = j.prompt_id AND c.x = least(j.a, j.b) AND c.y = greatest(j.a, j.b)
               ORDER BY j.judgment_id""",
            cpairs,
        )
    if cpairs.num_rows and use_rankings:
        ids["ranking_id"] = _ids(
            ctx,
            f"""SELECT DISTINCT r.ranking_id FROM ({_ranking_pairs_sql(mode)}) r
                JOIN _cycles_pairs c ON c.g = r.g AND c.x = least(r.a, r.b)
                     AND c.y = greatest(r.a, r.b) AND r.o <> 0
                ORDER BY r.ranking_id""",
            cpairs,
        )
    # Worst prompts: most cyclic triads, then largest cyclic part.
    cyc_nodes = np.bincount(v.node_group[an.node_on_cycle], minlength=n_prompts)
    order = cyclic_prompts[np.lexsort((-cyc_nodes[cyclic_prompts], -an.cyclic[cyclic_prompts]))]
    rows, shown = [], []
    for g in order[: ctx.options.top]:
        nodes, cycle, votes = _group_cycle(v, an, int(g))
        shown.append(nodes)
        tri_share = an.cyclic[g] / an.complete[g] if an.complete[g] else None
        rows.append(
            [
                str(v.group_labels[g]),
                int(an.n_nodes[g]),
                int(an.cyclic[g]),
                None if tri_share is None else round(float(tri_share), 4),
                cycle,
                votes,
            ]
        )
    columns = ["prompt_id", "responses", "cyclic triads", "cyclic share", "cycle", "votes"]
    source = _sources(ctx, [n for nodes in shown for n in nodes]) if rows else {}
    if source:  # battles: name the models along each cycle
        columns.append("models")
        for row, nodes in zip(rows, shown, strict=True):
            row.append(" → ".join(source.get(n, "?") for n in [*nodes, *nodes[:1]]))
    tables = []
    if rows:
        tables.append(
            Table(
                "Cycle examples (shortest cycle of the prompts with most cyclic triads)",
                columns,
                rows,
                note="Each response beats the next by majority; votes are winner–loser "
                "non-tie judgments on each edge, in cycle order.",
            )
        )
    if n_cyc == 0:
        verdict = (
            f"The majority preferences within all {n_prompts:,} prompts with "
            f"{min_nodes}+ judged responses are transitive: no cycle, so one reward "
            "ordering can agree with every majority."
        )
    else:
        verdict = (
            f"{n_cyc:,} of {n_prompts:,} prompts ({n_cyc / n_prompts:.1%}) hold a preference "
            f"cycle; {share:.1%} of complete response triads are cyclic (a coin-flip judge "
            f"gives {RANDOM_SHARE:.0%}). No reward model can satisfy every majority of a "
            "cycle: review these judgments (noise or real disagreement) before training."
        )
    return Finding(
        NAME,
        f"{TITLE}: per prompt",
        _severity(ctx, share, int(an.cyclic.sum()) + n_cyc, int(an.complete.sum())),
        verdict,
        metrics,
        tables,
        [_size_plot(an)],
        ids,
    )


def _size_plot(an: Analysis) -> Plot:
    labels, share, prompts = [], [], []
    for label, lo, hi in SIZE_BUCKETS:
        m = (an.n_nodes >= lo) & (an.n_nodes <= hi)
        if m.any():
            labels.append(label)
            c = an.complete[m].sum()
            share.append(float(an.cyclic[m].sum() / c) if c else 0.0)
            prompts.append(float((an.components[m] > 0).mean()))
    return Plot(
        "bar",
        "Cycles by prompt size",
        labels,
        {
            "share of complete triads that are cyclic": share,
            "share of prompts with a cycle": prompts,
        },
        xlabel="judged responses per prompt",
        ylabel="share",
        reference=RANDOM_SHARE,
    )


# --- across models ------------------------------------------------------------------------
def _models(ctx: Context) -> Finding | None:
    graph = model_graph(ctx)
    if graph is None:
        return None
    v, an = graph
    n_models = len(v.node_labels)
    metrics = _metrics(an, {"models": n_models})
    share = metrics["cyclic_triad_share"] or 0.0
    # The cyclic triads of the model graph, each once (its smallest node first); a listing
    # only, so it stops after MAX_TRIADS_LISTED (the counts above are exact).
    edge_of = {(int(s), int(t)): i for i, (s, t) in enumerate(zip(an.src, an.dst, strict=True))}
    succ: dict[int, set[int]] = {}
    for s, t in edge_of:
        succ.setdefault(s, set()).add(t)
    triads: list[list[int]] = []
    for s, t in edge_of:
        if len(triads) >= MAX_TRIADS_LISTED:
            break
        triads += [[s, t, w] for w in succ.get(t, ()) if s < t and s < w and s in succ.get(w, ())]

    def weakest(cycle: list[int]) -> float:
        # The smallest majority margin (w - l) / (w + l) along the cycle.
        ps = [an.pair[edge_of[e]] for e in zip(cycle, cycle[1:] + cycle[:1], strict=True)]
        return min(abs(v.wx[p] - v.wy[p]) / (v.wx[p] + v.wy[p]) for p in ps)

    triads.sort(key=weakest, reverse=True)
    rows = [[*_cycle_text(v, an, c, edge_of), round(float(weakest(c)), 4)] for c in triads]
    if not rows and an.components.any():
        cycle = shortest_cycle(
            list(zip(an.src[an.on_cycle].tolist(), an.dst[an.on_cycle].tolist(), strict=True))
        )
        rows = [[*_cycle_text(v, an, cycle, edge_of), round(float(weakest(cycle)), 4)]]
    tables = []
    if rows:
        tables.append(
            Table(
                "Model cycles (strongest first)",
                ["cycle", "votes", "weakest margin"],
                rows[: ctx.options.top],
                note="Each model beats the next in pooled head-to-head majority; votes are "
                "winner–loser non-tie judgments; the margin is (w − l) / (w + l) of the "
                "weakest edge.",
            )
        )
    # Each cyclic triad through a model leaves it by exactly one of its edges.
    in_triads = np.bincount(an.src, an.triads_through, minlength=n_models)
    plot = Plot(
        "bar",
        "Models: majority wins and cyclic triads",
        v.node_labels.to_pylist(),
        {
            "models beaten by majority": an.out_degree.astype(float).tolist(),
            "cyclic triads through the model": in_triads.tolist(),
        },
        xlabel="model",
        ylabel="count",
    )
    ids: dict[str, list[str]] = {"judgment_id": []}
    cpairs = _cycle_pairs(v, an)
    if cpairs.num_rows:
        ids["judgment_id"] = _ids(
            ctx,
            """SELECT j.judgment_id FROM _judgments j
               JOIN _responses ra ON ra.response_id = j.a
               JOIN _responses rb ON rb.response_id = j.b
               JOIN _cycles_pairs c ON c.x = least(ra.source, rb.source)
                    AND c.y = greatest(ra.source, rb.source)
               ORDER BY j.judgment_id""",
            cpairs,
        )
    n_cyc = int(an.cyclic.sum())
    if not an.components.any():
        verdict = (
            f"The pooled head-to-head majorities of the {n_models} models are transitive: "
            "one ranking of the models agrees with every majority."
        )
    else:
        verdict = (
            f"The pooled head-to-head majorities of the {n_models} models hold "
            f"{n_cyc} cyclic triad(s) ({share:.1%} of complete triads; "
            f"{int(an.node_on_cycle.sum())} models on cycles): no single ranking (Elo, "
            "Bradley–Terry) agrees with every head-to-head result; close or cyclic models "
            "need more battles or per-category ratings."
        )
    return Finding(
        NAME,
        f"{TITLE}: across models",
        _severity(ctx, share, n_cyc + int(an.components.sum()), int(an.complete.sum())),
        verdict,
        metrics,
        tables,
        [plot],
        ids,
    )


# --- entry point --------------------------------------------------------------------------
def run(ctx: Context) -> list[Finding]:
    findings = []
    for part in ctx.track([_per_prompt, _models], "cycles", 2):
        found = part(ctx)
        if found is not None:
            findings.append(found)
    if not findings:
        return [
            skipped(
                NAME,
                TITLE,
                f"no prompt has {ctx.param(NAME, 'min_responses', 3)}+ judged responses "
                "(judgments, or rankings where a prompt has several) and no judgments compare "
                "3+ models (responses.source)",
            )
        ]
    return findings


register(
    Check(
        name=NAME,
        title=TITLE,
        summary="directed cycles in the majority-preference graph per prompt and across "
        "models: count, share of cyclic triads (Kendall's ζ), examples",
        run=run,
    )
)
