"""Relabelling steps: reward-augmented relabelling and length-debiased resampling.

**reward-augment** implements the data relabelling of Zhang, Liu, Liu, Zhang, Yang, Liu,
Chen, Sun and Wang (2024/ICML 2025), "Reward-Augmented Data Enhances Direct Preference
Alignment of LLMs" (arXiv 2410.08067). Every decisive judgment ``y_w > y_l`` whose two
responses carry quality scores ``r_w`` and ``r_l`` yields two *goal-conditioned*
judgments: the prompt gains the goal "Generate a response that has a score of r_w" and
keeps ``y_w > y_l``; the prompt with the goal "... score of r_l" gets the reversed pair
``y_l > y_w`` (the rejected response is what best meets that goal). DPO on this twofold
data learns a reward-conditioned policy; at inference the goal is set to the best score.

Deviations and data-model mapping:

* The goal is a *system* message prepended to the prompt's turns (``template``, with
  ``{score}`` replaced by the score rounded to ``precision`` decimals). The wording is
  configurable; the paper's exact system prompt is not reproduced verbatim.
* A conditioned prompt is a new ``prompts`` row with a content id
  (:func:`prefkit.schema.ids.prompt_id` of its turns and context), so the same prompt with
  the same target score is one row however many judgments lead to it. Responses belong to
  a prompt, so the two responses are copied under the conditioned prompt with new content
  ids (:func:`prefkit.schema.ids.response_id`); meta column ``augmented_from`` holds the
  original response id, prompts get ``conditioned_on`` (original prompt id) and
  ``target_score``, judgments get ``augmented_from`` (original judgment id),
  ``target_score`` and ``goal`` (``chosen``/``rejected``).
* Conditioned judgment ids are ``<original id>:ra:chosen`` and ``<original id>:ra:rejected``.
* Judgments without a winner, without both scores, or whose two responses have the
  same (rounded) score are left as they are (the two goals would coincide with
  contradicting labels); their counts are in the lineage ``info``.
* ``keep_original`` (default true) keeps the unconditioned judgments beside the
  augmented ones; false reproduces the paper's dataset (only the 2N conditioned
  judgments of the augmented pairs).
* ``score_key="strength"`` uses the judgment's strength ``s`` (a vote share or a
  probability in [0, 1]) as the chosen score and ``1 - s`` as the rejected one.

**length-debias** balances how often the longer response wins, following the balanced
resampling of Singhal, Goyal, Xu and Durrett (2023), "A Long Way to Go: Investigating
Length Correlations in RLHF" (length-balanced data), for the length bias that Park, Rafailov,
Ermon and Finn (2024), "Disentangling Length from Quality in Direct Preference
Optimization" (R-DPO) counter in the loss. Among decisive judgments whose responses
differ in length (words or characters), let ``p`` be the share won by the longer one:

* ``mode=downsample`` drops a seeded random subset of the over-represented side (longer-
  or shorter-wins) so that ``p`` becomes ``target``; the dropped judgments go through
  :func:`~prefkit.curation.cascade.drop_rows` with a report.
* ``mode=reweight`` drops nothing and writes a ``weight`` meta column (inverse propensity):
  ``target / p`` for longer-wins, ``(1 - target) / (1 - p)`` for shorter-wins, 1 for ties
  and equal lengths; the weighted share is exactly ``target`` and the mean weight of the
  balanced judgments is 1.
* ``bucketed`` balances within each length-ratio bucket (longer/shorter:
  [1, 1.1), [1.1, 1.25), [1.25, 1.5), [1.5, 2), [2, 3), [3, ∞), the buckets of the bias
  check), so that length is balanced at every size of gap, not only on average. A bucket
  with only one side cannot be reweighted (weights stay 1, counted in ``info``); when
  downsampling, it is dropped whole.

Only judgments are resampled; rankings and scored responses are left as they are.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from prefkit.curation.cascade import drop_rows
from prefkit.curation.step import Outcome, Param, Step, register
from prefkit.dataset import Dataset
from prefkit.diagnostics.checks.bias import RATIO_EDGES
from prefkit.diagnostics.context import Context
from prefkit.errors import PrefkitError
from prefkit.schema import ids
from prefkit.schema.tables import concat

DEFAULT_TEMPLATE = "Generate a response that has a score of {score}."
REWARD_PAPER = (
    "Zhang, Liu, Liu, Zhang, Yang, Liu, Chen, Sun, Wang (2024/ICML 2025), "
    "Reward-Augmented Data Enhances Direct Preference Alignment of LLMs"
)
LENGTH_PAPER = (
    "Singhal, Goyal, Xu, Durrett (2023), A Long Way to Go: Investigating Length "
    "Correlations in RLHF; Park, Rafailov, Ermon, Finn (2024), Disentangling Length from "
    "Quality in Direct Preference Optimization"
)


# --- reward-augment ---------------------------------------------------------------------------
def _response_scores(ds: Dataset, score_key: str) -> tuple[pa.Array, np.ndarray]:
    """``(response ids, scores)`` with NaN where a response has no score."""
    r = ds.responses
    rid = r.column("response_id").combine_chunks()
    if score_key == "score":
        col = r.column("score").combine_chunks()
    else:
        attrs = r.column("attributes").combine_chunks()
        # map_lookup on a null map gives null, which becomes NaN below.
        col = pc.map_lookup(attrs, pa.scalar(score_key), "first")
    values = np.asarray(pc.fill_null(col.cast(pa.float64()), np.nan).to_numpy(zero_copy_only=False))
    return rid, values


def _format_scores(values: np.ndarray, precision: int) -> list[str]:
    # Arrow's float -> string cast writes 8.0 as "8" and 8.5 as "8.5".
    return pc.cast(pa.array(np.round(values, precision)), pa.string()).to_pylist()


def reward_augment(
    ds: Dataset,
    *,
    template: str,
    score_key: str,
    precision: int,
    keep_original: bool,
) -> Outcome:
    if "{score}" not in template:
        raise PrefkitError("curate reward-augment: parameter 'template' must contain '{score}'")
    if precision < 0:
        raise PrefkitError("curate reward-augment: parameter 'precision' must be >= 0")
    j = ds.judgments
    outcome = np.asarray(j.column("outcome").to_numpy(), np.int64)
    a = j.column("a").combine_chunks()
    b = j.column("b").combine_chunks()
    n = j.num_rows
    if score_key == "strength":
        s = np.asarray(
            pc.fill_null(j.column("strength").cast(pa.float64()), np.nan).to_numpy(
                zero_copy_only=False
            )
        )
        chosen_s, rejected_s = s, 1.0 - s
    else:
        rid, values = _response_scores(ds, score_key)
        ia = np.asarray(pc.index_in(a, value_set=rid).to_numpy(zero_copy_only=False))
        ib = np.asarray(pc.index_in(b, value_set=rid).to_numpy(zero_copy_only=False))

        def lookup(idx: np.ndarray) -> np.ndarray:
            ok = ~np.isnan(idx.astype(float))
            out = np.full(n, np.nan)
            out[ok] = values[idx[ok].astype(np.int64)]
            return out

        sa, sb = lookup(ia), lookup(ib)
        chosen_s = np.where(outcome == 1, sa, sb)
        rejected_s = np.where(outcome == 1, sb, sa)
    chosen_s = np.round(chosen_s, precision)
    rejected_s = np.round(rejected_s, precision)
    decisive = outcome != 0
    scored = decisive & ~np.isnan(chosen_s) & ~np.isnan(rejected_s)
    use = scored & (chosen_s != rejected_s)
    info = {
        "judgments": n,
        "augmented": int(use.sum()),
        "skipped_tie": int((~decisive).sum()),
        "skipped_unscored": int((decisive & ~scored).sum()),
        "skipped_equal_scores": int((scored & ~use).sum()),
    }
    rows = np.flatnonzero(use)
    if not len(rows):
        return Outcome({}, info=info)

    # Two conditioned copies per used judgment: goal = chosen score, then rejected score.
    both = np.concatenate([rows, rows])
    goal = np.repeat(np.array(["chosen", "rejected"]), len(rows))
    target = np.concatenate([chosen_s[rows], rejected_s[rows]])
    target_txt = _format_scores(target, precision)
    orig_pid = j.column("prompt_id").combine_chunks().take(pa.array(both)).to_pylist()

    # Conditioned prompts: one per (original prompt, target score).
    p = ds.prompts
    p_index = {pid: i for i, pid in enumerate(p.column("prompt_id").to_pylist())}
    keys = list(zip(orig_pid, target_txt, strict=True))
    unique_keys = list(dict.fromkeys(keys))
    missing = sorted({k[0] for k in unique_keys if k[0] not in p_index})
    if missing:
        raise PrefkitError(
            f"curate reward-augment: judgments refer to unknown prompt(s) {missing[:3]}"
        )
    src_rows = [p_index[k[0]] for k in unique_keys]
    src = p.take(pa.array(src_rows, pa.int64()))
    msgs = src.column("messages").to_pylist()
    ctxs = src.column("context").to_pylist()
    new_msgs = [
        [{"role": "system", "content": template.format(score=t)}, *(m or [])]
        for m, (_, t) in zip(msgs, unique_keys, strict=True)
    ]
    new_pid = [
        ids.prompt_id(m, dict(c) if c else None) for m, c in zip(new_msgs, ctxs, strict=True)
    ]
    key_to_pid = dict(zip(unique_keys, new_pid, strict=True))
    new_prompts = src.set_column(
        src.schema.get_field_index("messages"),
        "messages",
        pa.array(new_msgs, src.schema.field("messages").type),
    ).set_column(0, "prompt_id", pa.array(new_pid, pa.string()))
    new_prompts = new_prompts.append_column(
        "conditioned_on", src.column("prompt_id")
    ).append_column("target_score", pa.array([float(t) for _, t in unique_keys], pa.float64()))
    if "conditioned_on" in p.column_names or "target_score" in p.column_names:
        # Re-augmenting augmented data: the new columns replace the inherited ones.
        new_prompts = _dedupe_columns(new_prompts)
    fresh_p = pc.invert(pc.is_in(new_prompts.column("prompt_id"), value_set=p.column("prompt_id")))
    new_prompts = new_prompts.filter(fresh_p)

    # Copied responses: one per (conditioned prompt, original response).
    cond_pid = [key_to_pid[k] for k in keys]
    ja = a.take(pa.array(both)).to_pylist()
    jb = b.take(pa.array(both)).to_pylist()
    r = ds.responses
    r_index = {rid_: i for i, rid_ in enumerate(r.column("response_id").to_pylist())}
    pairs = list(dict.fromkeys(zip(cond_pid * 2, ja + jb, strict=True)))
    r_src = r.take(pa.array([r_index[x[1]] for x in pairs], pa.int64()))
    r_msgs = r_src.column("messages").to_pylist()
    r_source = r_src.column("source").to_pylist()
    r_media = r_src.column("media").to_pylist()
    new_rid = [
        ids.response_id(pid, m or [], s, md)
        for (pid, _), m, s, md in zip(pairs, r_msgs, r_source, r_media, strict=True)
    ]
    # Rebuild the id exactly as the loaders do: the message list as stored (None -> []).
    pair_to_rid = dict(zip(pairs, new_rid, strict=True))
    new_responses = r_src.set_column(0, "response_id", pa.array(new_rid, pa.string()))
    new_responses = new_responses.set_column(
        1, "prompt_id", pa.array([x[0] for x in pairs], pa.string())
    )
    new_responses = _dedupe_columns(
        new_responses.append_column("augmented_from", r_src.column("response_id"))
    )
    new_responses = new_responses.filter(
        pc.invert(pc.is_in(new_responses.column("response_id"), value_set=r.column("response_id")))
    )

    # Conditioned judgments: the rejected-score goal reverses the outcome.
    jt = j.take(pa.array(both))
    jid = jt.column("judgment_id").to_pylist()
    new_j = jt.set_column(
        0, "judgment_id", pa.array([f"{x}:ra:{g}" for x, g in zip(jid, goal, strict=True)])
    )
    new_j = new_j.set_column(1, "prompt_id", pa.array(cond_pid, pa.string()))
    new_j = new_j.set_column(
        2, "a", pa.array([pair_to_rid[(pid, x)] for pid, x in zip(cond_pid, ja, strict=True)])
    )
    new_j = new_j.set_column(
        3, "b", pa.array([pair_to_rid[(pid, x)] for pid, x in zip(cond_pid, jb, strict=True)])
    )
    flip = np.where(goal == "rejected", -1, 1)
    new_j = new_j.set_column(
        4, "outcome", pa.array((outcome[both] * flip).astype(np.int8), pa.int8())
    )
    new_j = _dedupe_columns(
        new_j.append_column("augmented_from", jt.column("judgment_id"))
        .append_column("target_score", pa.array(target, pa.float64()))
        .append_column("goal", pa.array(goal.tolist(), pa.string()))
    )

    tables: dict[str, pa.Table] = {}
    reasons: dict[str, dict[str, int]] = {}
    report = None
    old_j = j
    if not keep_original:
        dropped = drop_rows(
            ds,
            "reward-augment: replaced by conditioned pairs",
            judgments=j.column("judgment_id").take(pa.array(rows)),
        )
        old_j = dropped.tables.get("judgments", j)
        reasons, report = dropped.reasons, dropped.report
    tables["prompts"] = concat("prompts", [p, new_prompts])
    tables["responses"] = concat("responses", [r, new_responses])
    tables["judgments"] = concat("judgments", [old_j, new_j])
    n_chosen = len(rows)
    added = {
        "prompts": {"reward-augment: score-conditioned prompt": new_prompts.num_rows},
        "responses": {
            "reward-augment: response copied under a conditioned prompt": new_responses.num_rows
        },
        "judgments": {
            "reward-augment: goal = chosen score": n_chosen,
            "reward-augment: goal = rejected score (pair reversed)": n_chosen,
        },
    }
    return Outcome(tables, reasons=reasons, added=added, report=report, info=info)


def _dedupe_columns(table: pa.Table) -> pa.Table:
    """Keep the last of same-named columns (a new meta column replaces an inherited one)."""
    names = table.column_names
    keep = [i for i, name in enumerate(names) if name not in names[i + 1 :]]
    return table.select(keep)


# --- length-debias --------------------------------------------------------------------------
def _buckets(longer: np.ndarray, shorter: np.ndarray) -> np.ndarray:
    ratio = longer / np.maximum(shorter, 1)
    return np.searchsorted(np.asarray(RATIO_EDGES[1:-1]), ratio, side="right")


def length_debias(
    ds: Dataset, *, target: float, mode: str, by: str, bucketed: bool, seed: int
) -> Outcome:
    if not 0.0 < target < 1.0:
        raise PrefkitError(
            f"curate length-debias: parameter 'target' must be in (0, 1), got {target}"
        )
    frame = Context(ds).judgment_frame()
    unit = "words" if by == "words" else "chars"
    la = np.asarray(pc.fill_null(frame.column(f"a_{unit}"), -1).to_numpy(zero_copy_only=False))
    lb = np.asarray(pc.fill_null(frame.column(f"b_{unit}"), -1).to_numpy(zero_copy_only=False))
    outcome = np.asarray(frame.column("outcome").to_numpy(), np.int64)
    n = len(outcome)
    eligible = (outcome != 0) & (la >= 0) & (lb >= 0) & (la != lb)
    win_len = np.where(outcome == 1, la, lb)
    lose_len = np.where(outcome == 1, lb, la)
    longer_wins = eligible & (win_len > lose_len)
    shorter_wins = eligible & (win_len < lose_len)
    group = _buckets(np.maximum(la, lb), np.minimum(la, lb)) if bucketed else np.zeros(n, np.int64)
    n_groups = len(RATIO_EDGES) - 1 if bucketed else 1
    n_long = np.bincount(group[longer_wins], minlength=n_groups)
    n_short = np.bincount(group[shorter_wins], minlength=n_groups)
    before = float(n_long.sum() / max(n_long.sum() + n_short.sum(), 1))
    info: dict[str, Any] = {
        "unit": unit,
        "balanced_judgments": int(eligible.sum()),
        "longer_wins_before": before,
    }
    rng = np.random.default_rng(seed)
    jid = frame.column("judgment_id").combine_chunks()
    if mode == "reweight":
        weight = np.ones(n)
        one_sided = 0
        for g in range(n_groups):
            total = n_long[g] + n_short[g]
            if not n_long[g] or not n_short[g]:
                one_sided += int(total)
                continue
            p = n_long[g] / total
            weight[longer_wins & (group == g)] = target / p
            weight[shorter_wins & (group == g)] = (1 - target) / (1 - p)
        w_long = weight[longer_wins].sum()
        w_all = w_long + weight[shorter_wins].sum()
        info["longer_wins_after"] = float(w_long / w_all) if w_all else float("nan")
        info["one_sided_judgments"] = one_sided
        j = ds.judgments
        # The frame keeps table order (Context.judgment_frame), so weights align by row.
        if "weight" in j.column_names:
            j = j.drop_columns(["weight"])
        return Outcome({"judgments": j.append_column("weight", pa.array(weight))}, info=info)

    drop = np.zeros(n, bool)
    for g in range(n_groups):
        # Keep k_long / (k_long + k_short) = target, removing only from the larger side.
        long_rows = np.flatnonzero(longer_wins & (group == g))
        short_rows = np.flatnonzero(shorter_wins & (group == g))
        want_long = round(target * len(short_rows) / (1 - target))
        if want_long < len(long_rows):
            drop[rng.choice(long_rows, len(long_rows) - want_long, replace=False)] = True
        else:
            want_short = round((1 - target) * len(long_rows) / target)
            if want_short < len(short_rows):
                drop[rng.choice(short_rows, len(short_rows) - want_short, replace=False)] = True
    kept_long = int((longer_wins & ~drop).sum())
    kept = kept_long + int((shorter_wins & ~drop).sum())
    info["longer_wins_after"] = kept_long / kept if kept else float("nan")
    info["dropped"] = int(drop.sum())
    if not drop.any():
        return Outcome({}, info=info)
    side = "longer" if before > target else "shorter"
    out = drop_rows(
        ds,
        f"length-debias: {side} response won (downsampled)",
        judgments=jid.filter(pa.array(drop)),
    )
    out.info = info
    return out


# --- entry points -----------------------------------------------------------------------------
def run_reward_augment(ds: Dataset, **params: Any) -> Outcome:
    return reward_augment(ds, **params)


def run_length_debias(ds: Dataset, **params: Any) -> Outcome:
    return length_debias(ds, **params)


register(
    Step(
        "reward-augment",
        "condition prompts on the chosen and the rejected score and add the reversed pair",
        run_reward_augment,
        (
            Param("template", DEFAULT_TEMPLATE, "goal text (system message); {score} is replaced"),
            Param(
                "score_key",
                "score",
                "score of a response: 'score', an attribute name, or 'strength' (judgment)",
            ),
            Param("precision", 1, "decimals the target score is rounded to"),
            Param("keep_original", True, "keep the unconditioned judgments as well"),
        ),
        REWARD_PAPER,
    )
)
register(
    Step(
        "length-debias",
        "resample judgments so the longer response wins as often as it loses",
        run_length_debias,
        (
            Param("target", 0.5, "wanted share of decisive judgments won by the longer response"),
            Param(
                "mode",
                "downsample",
                "drop judgments or write a weight column",
                choices=("downsample", "reweight"),
            ),
            Param("by", "words", "length unit", choices=("words", "chars")),
            Param("bucketed", False, "balance within each length-ratio bucket"),
            Param("seed", 0, "seed of the random subset dropped"),
        ),
        LENGTH_PAPER,
    )
)
