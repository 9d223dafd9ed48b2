"""Duplicates: copied prompts and responses, pairs with two identical sides, and the same
pair judged in contradictory ways.

Why it matters: a duplicated example counts several times in a reward-model or DPO loss
and leaks across a train/test split made by rows; a pair whose two sides are the same
text carries no preference, so its label is pure noise; the same content labelled both
ways teaches the model nothing but noise.

This module turns the computations of :mod:`prefkit.diagnostics.dupes` (exact keys,
MinHash/LSH near pairs, groups, judgment queries; the method and papers are described
there) into findings, all ``check="duplicates"``, each with the ids of every row
concerned:

* **Exact duplicates**: prompts and responses whose text is identical after lowercasing
  and collapsing whitespace (a prompt's key also holds its ``context``). In each group
  the first row (table order) is kept; ``ids`` lists the others (what a dedup drops). A
  response copy whose kept row answers a prompt of another group is a reused stock
  answer ("You're welcome.") rather than a duplicated example: it is listed and counted
  apart (``response_copies_other_prompts``) and weighs less in the severity. Empty texts
  (images, missing answers) are never grouped.
* **Near duplicates**: MinHash (Broder, 1997) with LSH banding (Indyk & Motwani, 1998;
  Leskovec, Rajaraman & Ullman, "Mining of Massive Datasets", ch. 3) on word sets,
  candidates verified by the signature estimate. Groups are the connected components of
  the exact and near pairs (a prompt's near pairs must share its context); ``ids`` lists
  the rows a near dedup drops beyond the exact copies (first occurrences of a text whose
  group has an earlier row).
* **Identical sides**: judgments comparing a response with itself (``a = b``), two
  responses with identical text, or texts that differ only in case/whitespace. Empty
  texts are left out (the shape check and ``validate`` report them).
* **Contradictory repeats**: the same content pair (same prompt key, same two response
  texts, in either order) appearing as *separate items* whose labels disagree: one item
  says the first text wins, another says the second wins. An item is a prompt id with an
  unordered pair of response ids; several judges on one item are disagreement, which the
  agreement check measures, so an item's label here is the sign of its summed votes
  (orientated to the content pair). Consistent repeats are counted as duplicated labels.

Severity
    copies (exact and near, separately): the larger share of prompt rows that are copies
    and of response rows that copy a response to the same prompt group: 0 → ok,
    < 1 % → info, < 10 % → warning, ≥ 10 % → error. Reused answers alone give info, or
    warning when they are ≥ 10 % of the responses.
    identical sides: none → ok; any → warning; ≥ 5 % of judgments → error.
    contradictory repeats: none → ok (info when there are consistent repeats); any →
    warning; ≥ 1 % of judgments → error.

Parameters (``ctx.param("duplicates", key, default)``)
    ``threshold`` 0.8 (Jaccard of the word-shingle sets), ``num_perm`` 128, ``ngram`` 1
    (word sets: prompts and responses are short, and with n-grams one edited word breaks
    n shingles, so 3-grams need ~27 words per edit to stay above 0.8), ``bands``/``rows``
    0 = optimal for the threshold (9 x 13), ``near`` True (False: exact only), ``seed``
    the inspect seed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from prefkit.diagnostics.context import ID_COLUMN, Context
from prefkit.diagnostics.dupes import (
    DupGroups,
    content_pair_repeats,
    empty_side_judgments,
    groups_with_copies,
    identical_sides,
    judgment_keys,
    largest_groups,
    near_identical_sides,
    reused_answers,
    scan_prompts,
    scan_responses,
)
from prefkit.diagnostics.findings import Finding, Plot, Table, skipped, snippet
from prefkit.diagnostics.minhash import MinHashParams
from prefkit.diagnostics.registry import Check, register

NAME = "duplicates"
TITLE = "Duplicates"
SNIPPET = 80
#: Share of rows that are copies from which copies are a warning / an error.
COPY_WARNING = 0.01
COPY_ERROR = 0.10
#: Share of judgments with identical sides from which it is an error.
IDENTICAL_ERROR = 0.05
#: Share of judgments in contradictory repeats from which it is an error.
CONTRADICTION_ERROR = 0.01
SIZE_BINS = (("2", 2, 2), ("3", 3, 3), ("4-5", 4, 5), ("6-10", 6, 10), (">10", 11, 1 << 62))


def _params(ctx: Context) -> MinHashParams:
    return MinHashParams(
        num_perm=ctx.param(NAME, "num_perm", 128),
        ngram=ctx.param(NAME, "ngram", 1),
        threshold=ctx.param(NAME, "threshold", 0.8),
        bands=ctx.param(NAME, "bands", 0),
        rows=ctx.param(NAME, "rows", 0),
        seed=ctx.param(NAME, "seed", ctx.options.seed),
    )


# --- helpers for findings ----------------------------------------------------------------------
def _snippet(text: str | None) -> str:
    return snippet(text, SNIPPET)


def _texts_for(ctx: Context, name: str, ids: set[str]) -> dict[str, str]:
    """Snippets of the texts of a few ids (a second, filtered pass over the table)."""
    from prefkit.views import messages_text, prompt_text

    if not ids:
        return {}
    render = prompt_text if name == "prompts" else messages_text
    wanted = pa.array(sorted(ids), pa.string())
    out: dict[str, str] = {}
    for batch in ctx.batches(name, [ID_COLUMN[name], "messages"]):
        mask = pc.is_in(batch.column(0), value_set=wanted)
        if not pc.any(mask).as_py():
            continue
        sub = batch.filter(mask)
        texts = render(sub.column(1))
        out.update(zip(sub.column(0).to_pylist(), map(_snippet, texts.to_pylist()), strict=True))
    return out


def _copy_severity(share: float) -> str:
    if share <= 0:
        return "ok"
    if share < COPY_WARNING:
        return "info"
    return "warning" if share < COPY_ERROR else "error"


def _n(count: int, noun: str, verb: tuple[str, str] | None = None) -> str:
    """``"1 prompt is"`` / ``"2 prompts are"``: a count with its noun (and verb) agreed."""
    one = count == 1
    text = f"{count:,} {noun}{'' if one else 's'}"
    return f"{text} {verb[0] if one else verb[1]}" if verb else text


def _copies(count: int) -> str:
    return "is a copy" if count == 1 else "are copies"


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%" if x >= 0.001 or x == 0 else f"{100 * x:.2g}%"


def _size_counts(sizes: np.ndarray) -> list[float]:
    return [float(((sizes >= lo) & (sizes <= hi)).sum()) for _, lo, hi in SIZE_BINS]


# --- exact and near copies ---------------------------------------------------------------------
def _copies_finding(
    ctx: Context, scans: list[DupGroups], kind: str, params: MinHashParams
) -> Finding:
    """Exact (``kind="exact"``) or near (``"near"``) copies of prompts and responses."""
    top = ctx.options.top
    title = "Exact duplicates" if kind == "exact" else "Near duplicates"
    metrics: dict[str, Any] = {}
    ids: dict[str, list[str]] = {}
    plots: list[Plot] = []
    examples: list[tuple[int, str, str, str]] = []  # (group size, table, kept, copy)
    sizes_by_table: dict[str, list[float]] = {}
    hist: dict[str, list[float]] = {}
    edges = np.linspace(params.threshold, 1.0, 11)
    worst = 0.0
    for scan in scans:
        noun = scan.name[:-1]  # prompt / response
        copy, labels = scan.copies(kind)
        share = float(copy.sum() / scan.n) if scan.n else 0.0
        groups, sizes = groups_with_copies(labels, copy)
        metrics[f"{noun}_copy_share"] = round(share, 6)
        metrics[f"{noun}_copies"] = int(copy.sum())
        metrics[f"{noun}_groups"] = len(groups)
        metrics[f"{noun}_largest_group"] = int(sizes.max()) if len(sizes) else 0
        if scan.prompt_group is not None:
            other = int(scan.other_prompt(copy, labels).sum())
            metrics[f"{noun}_copies_same_prompt"] = int(copy.sum()) - other
            metrics[f"{noun}_copies_other_prompts"] = other
            # a stock answer reused for other prompts is milder than a duplicated example:
            # info, or warning from COPY_ERROR of the responses
            worst = max(worst, (int(copy.sum()) - other) / scan.n)
            if other:
                worst = max(worst, COPY_WARNING if other / scan.n >= COPY_ERROR else 1e-9)
        else:
            worst = max(worst, share)
        sizes_by_table[scan.name] = _size_counts(sizes)
        if copy.any():
            ids[ID_COLUMN[scan.name]] = scan.ids.filter(pa.array(copy)).to_pylist()
        if kind == "near" and scan.near is not None:
            near = scan.near
            distinct = scan.key[near.left] != scan.key[near.right]
            metrics[f"{noun}_near_pairs"] = int(distinct.sum())
            hist[scan.name] = np.histogram(near.jaccard[distinct], bins=edges)[0].tolist()
        # the largest groups: their kept (first) row and their first copy
        for size, kept, c in largest_groups(labels, copy, groups, sizes, top):
            examples.append((size, scan.name, scan.ids[kept].as_py(), scan.ids[c].as_py()))
    examples.sort(key=lambda e: -e[0])
    examples = examples[:top]
    tables = []
    if examples:
        snippets = {
            name: _texts_for(ctx, name, {i for e in examples if e[1] == name for i in e[2:]})
            for name in {e[1] for e in examples}
        }
        tables.append(
            Table(
                f"Largest {kind}-duplicate groups",
                ["table", "kept id", "a copy", "rows in group", "kept text", "copy text"],
                [
                    [t, k, c, size, snippets[t].get(k, ""), snippets[t].get(c, "")]
                    for size, t, k, c in examples
                ],
                note="The first row of a group (table order) is kept; ids lists the others.",
            )
        )
    if any(sum(v) for v in sizes_by_table.values()):
        plots.append(
            Plot(
                "bar",
                f"{title}: groups by size",
                [label for label, _, _ in SIZE_BINS],
                sizes_by_table,
                xlabel="rows in group",
                ylabel="groups",
            )
        )
    if kind == "near":
        if any(sum(v) for v in hist.values()):
            plots.append(
                Plot(
                    "hist",
                    "Near-duplicate pairs by estimated Jaccard",
                    [round(float(e), 4) for e in edges],
                    {k: [float(x) for x in v] for k, v in hist.items()},
                    xlabel="estimated Jaccard of word sets",
                    ylabel="pairs",
                )
            )
        metrics.update({f"minhash_{k}": v for k, v in params.to_dict().items()})
    else:
        for scan in scans:
            metrics[f"empty_{scan.name}"] = int(scan.empty.sum())
        for scan in scans:
            if scan.name == "responses":
                _, reused = reused_answers(scan, top)
                reuse_rows = [[scan.ids[row].as_py(), spread, size] for row, spread, size in reused]
                if reuse_rows:
                    snip = _texts_for(ctx, "responses", {r[0] for r in reuse_rows})
                    tables.append(
                        Table(
                            "Response texts reused for different prompts (not flagged)",
                            ["response id", "prompt groups", "rows", "text"],
                            [[*r, snip.get(r[0], "")] for r in reuse_rows],
                        )
                    )
    severity = _copy_severity(worst)
    # headline first: the shares and counts of both tables side by side
    headline = [
        f"{noun}_{m}"
        for m in ("copy_share", "copies", "groups", "largest_group")
        for noun in ("prompt", "response")
    ]
    metrics = {k: metrics[k] for k in headline if k in metrics} | metrics
    return Finding(
        NAME, title, severity, _copies_verdict(kind, metrics, severity), metrics, tables, plots, ids
    )


def _copies_verdict(kind: str, m: dict[str, Any], severity: str) -> str:
    what = "(identical up to case and whitespace)" if kind == "exact" else "(near-identical)"
    parts = []
    if m.get("prompt_copies"):
        parts.append(
            f"{_n(m['prompt_copies'], 'prompt')} ({_pct(m['prompt_copy_share'])}) "
            f"{_copies(m['prompt_copies'])} {what} of an earlier prompt"
        )
    same = m.get("response_copies_same_prompt", m.get("response_copies", 0))
    other = m.get("response_copies_other_prompts", 0)
    if same:
        parts.append(
            f"{_n(same, 'response')} {_copies(same)} {what} of a response to the same prompt"
        )
    if other:
        parts.append(
            f"{_n(other, 'response', ('repeats', 'repeat'))} a text given to a different prompt "
            "(reused answers)"
        )
    if not parts:
        return f"No {kind}-duplicate prompts or responses."
    if not (m.get("prompt_copies") or same):
        advice = (
            "Reused answers are not duplicated examples, but many of them teach a reward "
            "model to prefer or avoid a stock reply regardless of the prompt."
        )
    elif severity == "info":
        advice = "A small share; still dedup before splitting train/test to avoid leakage."
    else:
        advice = (
            "Copies count several times in the loss and leak across a train/test split by "
            "rows; keep one per group (ids lists the others)."
        )
    return "; ".join(parts) + ". " + advice


# --- judgments: identical sides and contradictory repeats --------------------------------------
def _identical_finding(ctx: Context, responses: DupGroups) -> Finding:
    n_judgments = ctx.count("judgments")
    frame = identical_sides(ctx.con)
    kinds = frame.column("kind").to_pylist()
    outcomes = np.asarray(frame.column("outcome").to_numpy(), np.int64)
    n = frame.num_rows
    share = n / n_judgments if n_judgments else 0.0
    metrics: dict[str, Any] = {
        "identical_sides": n,
        "identical_sides_share": round(share, 6),
        "same_response": kinds.count("same response"),
        "identical_text": kinds.count("identical text"),
        "case_whitespace_only": kinds.count("case/whitespace only"),
        "decisive": int((outcomes != 0).sum()),
        "judgments_with_empty_side": empty_side_judgments(ctx.con),
        "near_identical_sides": near_identical_sides(ctx.con, responses),
    }
    severity = "ok" if n == 0 else ("error" if share >= IDENTICAL_ERROR else "warning")
    if n == 0:
        verdict = "No judgment compares a response with an identical one."
    else:
        same_text = n - metrics["case_whitespace_only"]
        verdict = (
            f"{_n(n, 'judgment', ('compares', 'compare'))} two sides with the same text "
            f"({_pct(share)}; {metrics['decisive']:,} still "
            f"{'names' if metrics['decisive'] == 1 else 'name'} a winner). "
        )
        if same_text:
            verdict += (
                "Identical sides carry no preference: drop them"
                if same_text == n
                else f"The {same_text:,} with identical text carry no preference: drop them"
            )
            verdict += (
                "; those differing only in case/whitespace are about formatting alone."
                if metrics["case_whitespace_only"]
                else "."
            )
        else:
            verdict += (
                "They differ only in case/whitespace: the label is about formatting alone; "
                "keep them only if the prompt asks for it."
            )
    tables = []
    if n:
        shown = frame.slice(0, ctx.options.top)
        snip = _texts_for(ctx, "responses", set(shown.column("a").to_pylist()))
        tables.append(
            Table(
                "Judgments with identical sides",
                ["judgment id", "a", "b", "kind", "outcome", "text"],
                [
                    [
                        r["judgment_id"],
                        r["a"],
                        r["b"],
                        r["kind"],
                        r["outcome"],
                        snip.get(r["a"], ""),
                    ]
                    for r in shown.to_pylist()
                ],
            )
        )
    ids = {"judgment_id": frame.column("judgment_id").to_pylist()} if n else {}
    return Finding(NAME, "Identical sides", severity, verdict, metrics, tables, [], ids)


def _contradiction_finding(ctx: Context) -> Finding:
    n_judgments = ctx.count("judgments")
    repeats = content_pair_repeats(ctx.con)
    groups, contra = repeats.pairs, repeats.contradictory
    contra_judgments, bad = repeats.contradictory_judgments, repeats.items
    judgment_ids = sorted({j for js in bad.column("judgments").to_pylist() for j in js})
    prompt_ids = sorted(set(bad.column("prompt_id").to_pylist()))
    share = contra_judgments / n_judgments if n_judgments else 0.0
    metrics = {
        "contradictory_judgments": contra_judgments,
        "contradictory_share": round(share, 6),
        "contradictory_pairs": contra,
        "repeated_pairs": groups,
        "repeated_pair_judgments": repeats.judgments,
        "tie_vs_win_pairs": repeats.tie_vs_win,
    }
    if contra:
        severity = "error" if share >= CONTRADICTION_ERROR else "warning"
        verdict = (
            f"{_n(contra, 'content pair', ('appears', 'appear'))} as separate items "
            "labelled both ways "
            f"({contra_judgments:,} judgments, {_pct(share)}): a model cannot fit both; "
            "merge the items (majority or drop) before training."
        )
    elif groups:
        severity = "info"
        verdict = (
            f"{_n(groups, 'content pair', ('appears', 'appear'))} as several items, all "
            "labelled consistently: "
            "duplicated labels that over-weight those pairs, but no contradiction."
        )
    else:
        severity = "ok"
        verdict = "No content pair appears as more than one item."
    tables = []
    if bad.num_rows:
        rows = bad.slice(0, ctx.options.top).to_pylist()
        tables.append(
            Table(
                "Items of contradictory repeats",
                ["prompt id", "response 1", "response 2", "label", "judgments", "items in pair"],
                [
                    [
                        r["prompt_id"],
                        r["i1"],
                        r["i2"],
                        {1: "first text wins", -1: "second text wins", 0: "tie"}[int(r["label"])],
                        ", ".join(r["judgments"][:3]) + (" …" if len(r["judgments"]) > 3 else ""),
                        r["items"],
                    ]
                    for r in rows
                ],
                note="Texts are ordered by content hash, so 'first text' is the same text in "
                "every item of a pair.",
            )
        )
    ids = {"judgment_id": judgment_ids, "prompt_id": prompt_ids} if judgment_ids else {}
    return Finding(NAME, "Contradictory repeats", severity, verdict, metrics, tables, [], ids)


# --- entry point -------------------------------------------------------------------------------
def run(ctx: Context) -> list[Finding]:
    has_prompts, has_responses = ctx.count("prompts") > 0, ctx.count("responses") > 0
    if not has_prompts and not has_responses:
        return [skipped(NAME, TITLE, "no prompts or responses")]
    params = _params(ctx)
    near = bool(ctx.param(NAME, "near", True))
    prompts = scan_prompts(ctx, params, near) if has_prompts else None
    responses = scan_responses(ctx, params, near, prompts) if has_responses else None
    scans = [s for s in (prompts, responses) if s is not None]
    findings = [_copies_finding(ctx, scans, "exact", params)]
    if near:
        findings.append(_copies_finding(ctx, scans, "near", params))
    if ctx.count("judgments") == 0 or responses is None:
        why = "no judgments" if ctx.count("judgments") == 0 else "no responses"
        findings.append(skipped(NAME, "Identical sides", why))
        findings.append(skipped(NAME, "Contradictory repeats", why))
        return findings
    with judgment_keys(ctx, prompts, responses):
        findings.append(_identical_finding(ctx, responses))
        findings.append(_contradiction_finding(ctx))
    return findings


register(
    Check(
        name=NAME,
        title=TITLE,
        summary="exact and near-duplicate prompts and responses (MinHash/LSH), pairs with "
        "identical sides, the same pair labelled both ways",
        run=run,
    )
)
