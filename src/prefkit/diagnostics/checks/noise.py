"""Label noise and strength: which judgments look flipped, and how many labels are.

What it detects
    Judgments whose recorded winner disagrees with what the pair's cheap features and
    the other judges of the same pair say, and the share of flipped labels in the data.
    A reward model or DPO policy trained on flipped labels learns the wrong direction
    from them; past a few percent they cap the achievable accuracy and make robust
    losses (cDPO, rDPO) worth using.

Method
    A Bradley–Terry model with covariates (Bradley and Terry 1952, "Rank analysis of
    incomplete block designs"; Springall 1973, "Response surface fitting using a
    generalization of the Bradley–Terry paired comparison model") on the difference
    features of :mod:`prefkit.diagnostics.features` (``MODEL_FEATURES``: log words, a
    linear length term, Jaccard overlap and prompt recall with the prompt, the response
    ``score`` and the ``reward`` that ``prefkit rm score`` writes when present, the
    embedding similarity to the prompt when computed; each scaled to unit root mean
    square), wrapped in the
    symmetric label-flip model of learning with noisy labels (Natarajan, Dhillon,
    Ravikumar and Tewari 2013, "Learning with Noisy Labels"; for preferences the flip
    model of Chowdhury, Kini and Natarajan 2024, "Provably Robust DPO"). An *item* is a
    prompt with an unordered pair of responses; every non-tie judgment j of item i says
    the first response of the canonical order (smaller id first) won (``y = 1``) or not:

        η_j = wᵀx_i + γ·s_j + u_i,    u_i ~ N(0, τ²)         (x_i: canonical a − b)
        P(clean label says first) = σ(η_j)                      (Bradley–Terry)
        P(y_j = 1 | u_i) = ε + (1 − 2ε)·σ(η_j)                  (symmetric ε-flip)

    ``s_j`` = +1 when the judgment showed the canonical first response as ``a``: γ is
    the position ("home") effect, fitted only when both a and b win sometimes. ``u_i``
    is what the features do not see about the pair, shared by all its judges, so several
    judges who agree make a pair "easy" even when the features are silent; the judges
    of an item are independent given ``u_i`` (a random-effects BT model; the integral
    over u uses 30-node adaptive Gauss–Hermite quadrature, see :class:`NoisyBT`). τ is
    fitted only when at least ``MIN_MULTI_ITEMS`` items have several non-tie judgments;
    with one judge per item it is not separable from |w| (logistic-normal ≈ rescaled
    logistic) and is fixed at 0. That makes ε̂ run low by about 0.015 on synth data
    (docs/inspect/noise.md); freeing τ did not help (the likelihood is flat in it).
    All parameters (w, γ, τ, ε) are fitted jointly by maximum likelihood (the likelihood
    that EM maximises in the papers above) with SciPy's bounded truncated Newton,
    ε ∈ [0, 0.5], τ ∈ [0.01, 10], plus a weakly informative ridge on w (``RIDGE``: a
    N(0, 2.5²) prior per standard deviation of a feature). Two starts (ε = 0.05, 0.25)
    guard against a local optimum.

    *Flip share.* The estimate is ε̂: the share of non-tie labels reversed on top of the
    Bradley–Terry choice noise. This is exactly what ``prefkit.synth`` plants
    (``judgments.flipped``: B-Pref's mistake teacher flips a Bradley–Terry draw with
    probability ε). Its 95% interval is the profile-likelihood interval
    ``{ε : 2(ℓ̂ − ℓ_p(ε)) ≤ χ²₁(0.95) = 3.84}`` (w, γ, τ refitted at each ε, found by a
    coarse scan and bisection). ε is identifiable only when the features or the votes
    carry signal: a weak feature model cannot tell a flipped label from a hard pair,
    and then the profile is flat and the interval wide; past ``max_width`` the verdict
    says "cannot tell".

    *Suspicion.* For each non-tie judgment, the posterior probability that its label
    was flipped given the features and all votes of its item, under the model fitted
    out of fold (``folds`` folds split by prompt, where prompts with the same set of
    words share a fold, so duplicated prompts do not leak; seeded):

        P(flip_j | data) = ∫ ε·(1 − σ_j(u)) Π_{k≠j} p_k(u) dN(u) / ∫ Π_k p_k(u) dN(u)

    with σ_j(u) the probability that the clean label agrees with the recorded one and
    p_k(u) = ε + (1 − 2ε)σ_k(u). This is the Bayesian combination of the model's
    probability with the vote margin. Judgments above ``threshold`` are flagged. Ties
    are not scored (a tie cannot be flipped). The full score is shared with other
    checks and curation as ``ctx.cached("noise:suspicion", ...)`` — call
    :func:`suspicion` — a table ``judgment_id, suspicion`` (null for ties).

    *Strength.* When judgments carry ``strength`` (a Likert magnitude, vote share or
    probability), a second finding reports the mean suspicion and the flagged share per
    strength bucket: low-strength labels are expected to be noisier.

Deviations
    The item random effect u is an addition to the flip models cited (they have one
    label per item). ε is one global rate, not per annotator (the agreement check
    covers annotators).
    Fits run on at most ``max_fit`` non-tie judgments (whole items, sampled at random;
    the folds' training sets likewise); every judgment is scored. Embedding features
    only when prompts + responses ≤ ``embed_max_texts``.

Parameters (``ctx.param("noise", key, default)``)
    ``threshold`` (0.5): posterior flip probability above which a judgment is flagged.
    ``folds`` (5): out-of-fold splits (by prompt).
    ``max_fit`` (50000): non-tie judgments used per fit.
    ``max_width`` (0.2): interval width past which the share is "cannot tell".
    ``embed_max_texts`` (5000): largest prompts + responses count that gets embeddings.

Severity
    ``cannot tell`` (interval wider than ``max_width``): info. Otherwise error when
    ε̂ ≥ 0.25 and the interval's low end ≥ 0.15; warning when ε̂ ≥ 0.10 and the low end
    ≥ 0.05; info when ε̂ ≥ 0.03 or the high end ≥ 0.10; ok below (ε̂ < 0.03 and the
    interval below 0.10).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from scipy.stats import spearmanr

from prefkit.diagnostics.context import Context
from prefkit.diagnostics.features import EMBED_MAX_TEXTS, judgment_features, prompt_words
from prefkit.diagnostics.findings import Finding, Plot, Table, skipped
from prefkit.diagnostics.noisy_bt import CHI2_95, NoisyBT, PairData
from prefkit.diagnostics.registry import Check, register

NAME = "noise"
TITLE = "Label noise"

THRESHOLD = 0.5
#: Features of the BT model (see :mod:`prefkit.diagnostics.features`); ``log_chars`` is left
#: out: it is nearly collinear with ``log_words``.
MODEL_FEATURES = ("log_words", "words", "jaccard", "prompt_recall", "score", "reward", "cos")
FOLDS = 5
MAX_FIT = 50_000
MAX_WIDTH = 0.2
#: Items with several non-tie judgments needed to fit τ.
MIN_MULTI_ITEMS = 50
#: Fewest non-tie judgments worth fitting.
MIN_SCORED = 10
#: Severity cut-offs on ε̂ (and on the interval's low end).
ERROR_EPS, ERROR_LOW = 0.25, 0.15
WARN_EPS, WARN_LOW = 0.10, 0.05
INFO_EPS = 0.03
#: Strength values become buckets as they are when there are at most this many.
MAX_STRENGTH_LEVELS = 8
HIST_BINS = 20
#: Smallest suspicion listed in the worst-offenders table.
MIN_SHOWN = 0.01


# --- scoring a dataset ---------------------------------------------------------------------------
@dataclass
class NoiseResult:
    """Everything the check computed; ``ctx.cached("noise:result", ...)``."""

    judgment_id: pa.Array  # (N,) all judgments, table order
    outcome: np.ndarray  # (N,)
    suspicion: np.ndarray  # (N,) NaN for ties
    p_model: np.ndarray  # (N,) NaN for ties
    agree: np.ndarray  # (N,) other non-tie judges of the item agreeing
    others: np.ndarray  # (N,) other non-tie judges of the item
    frame: pa.Table  # the feature table (ids, strength, annotator)
    features: list[str]
    model: NoisyBT
    low: float
    high: float
    profile: list[tuple[float, float]]
    n_items: int
    multi_items: int
    folds: int
    embedded: bool
    fit_rows: int


def _standardise(
    frame: pa.Table, names: list[str], rows: np.ndarray
) -> tuple[np.ndarray, list[str]]:
    """``(n, d)`` feature differences of ``rows``, each divided by its root mean square (no
    centring: BT differences are antisymmetric); constant-zero features are dropped."""
    cols, kept = [], []
    for name in names:
        x = np.asarray(frame.column(name).to_numpy(zero_copy_only=False), float)[rows]
        x = np.nan_to_num(x)
        rms = float(np.sqrt(np.mean(x**2))) if len(x) else 0.0
        if rms > 1e-9:
            cols.append(x / rms)
            kept.append(name)
    return (np.column_stack(cols) if cols else np.zeros((len(rows), 0))), kept


def _items(ctx: Context, frame: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """Item index (prompt + unordered pair) of every judgment and whether ``a`` is the
    canonical first response (the smaller id)."""
    con = ctx.con
    con.register("_noise_frame", frame.select(["prompt_id", "a", "b"]))
    out = con.sql(
        """SELECT dense_rank() OVER (ORDER BY prompt_id, least(a, b), greatest(a, b)) - 1 AS item,
                  a <= b AS first
           FROM (SELECT *, row_number() OVER () AS __ord FROM _noise_frame) ORDER BY __ord"""
    ).to_arrow_table()
    con.unregister("_noise_frame")
    return np.asarray(out.column("item"), np.int64), np.asarray(out.column("first"), bool)


def _prompt_folds(ctx: Context, prompt_ids: pa.ChunkedArray, k: int) -> np.ndarray:
    """Fold of each given prompt id; prompts with the same set of words share a fold."""
    pw = prompt_words(ctx)
    _, group = np.unique(pw.set_hash, return_inverse=True)
    n_groups = int(group.max()) + 1 if len(group) else 0
    rng = ctx.rng("noise:folds")
    fold_of_group = rng.permutation(n_groups) % k
    pidx = np.asarray(pc.fill_null(pc.index_in(prompt_ids, value_set=pw.ids), -1), np.int64)
    fold = np.full(len(pidx), -1, np.int64)
    known = pidx >= 0
    fold[known] = fold_of_group[group[pidx[known]]]
    # Judgments whose prompt is missing from the prompts table: folds at random.
    fold[~known] = rng.integers(0, k, int((~known).sum()))
    return fold


def _sample_items(
    rng: np.random.Generator, counts: np.ndarray, items: np.ndarray, cap: int
) -> np.ndarray:
    """Random whole items among ``items`` holding at most ``cap`` judgments (sorted)."""
    if counts[items].sum() <= cap:
        return items
    perm = rng.permutation(items)
    take = perm[np.cumsum(counts[perm]) <= cap]
    return np.sort(take if len(take) else perm[:1])


def compute(ctx: Context) -> NoiseResult | str:
    """Fit and score (cached as ``noise:result``); a string says why nothing was scored."""

    def make() -> NoiseResult | str:
        if ctx.count("judgments") == 0:
            return "no judgments"
        max_fit = ctx.param(NAME, "max_fit", MAX_FIT)
        k = ctx.param(NAME, "folds", FOLDS)
        frame = judgment_features(ctx, ctx.param(NAME, "embed_max_texts", EMBED_MAX_TEXTS))
        outcome = np.asarray(frame.column("outcome"), np.int64)
        decisive = np.flatnonzero(outcome != 0)
        if len(decisive) < MIN_SCORED:
            return f"only {len(decisive)} non-tie judgments (need {MIN_SCORED})"
        item_all, first_all = _items(ctx, frame)
        names = [c for c in MODEL_FEATURES if c in frame.column_names]
        # Non-tie judgments sorted by item, then label and display order.
        item_id = item_all[decisive]
        pos = np.where(first_all[decisive], 1.0, -1.0)
        sign = np.where(outcome[decisive] > 0, 1.0, -1.0) * pos
        order = np.lexsort((pos, sign, item_id))
        rows, item_id, pos, sign = decisive[order], item_id[order], pos[order], sign[order]
        _, item = np.unique(item_id, return_inverse=True)
        X_rows, features = _standardise(frame, names, rows)
        first = np.flatnonzero(np.r_[True, item[1:] != item[:-1]])
        X = X_rows[first] * pos[first, None]  # canonical orientation per item
        # One model row per (item, label, order) with its count of judgments.
        new_group = np.r_[
            True, (item[1:] != item[:-1]) | (sign[1:] != sign[:-1]) | (pos[1:] != pos[:-1])
        ]
        group_start = np.flatnonzero(new_group)
        group = np.cumsum(new_group) - 1  # (n_rows,) model row of each judgment
        data = PairData(
            X,
            item[group_start],
            sign[group_start],
            pos[group_start],
            np.diff(np.r_[group_start, len(rows)]).astype(float),
        )
        counts = data.judgments_per_item()
        m = len(counts)
        multi = int((counts > 1).sum())
        a_share = float((outcome[rows] > 0).mean())
        model = NoisyBT(
            free_position=min(a_share, 1.0 - a_share) >= 0.01,
            free_tau=multi >= MIN_MULTI_ITEMS,
        )
        rng = ctx.rng("noise:fit-sample")
        fit_data, _ = data.subset(_sample_items(rng, counts, np.arange(m), max_fit))
        model.fit(fit_data)
        low, high, profile = model.profile_interval(fit_data)
        # Out-of-fold scores: folds by prompt.
        fold = _prompt_folds(ctx, frame.column("prompt_id").take(pa.array(rows[first])), k)
        folds = np.unique(fold)
        post, p_model = np.full(len(data.item), np.nan), np.full(len(data.item), np.nan)
        if len(folds) < 2:
            post, p_model = model.score(data)
        else:
            for f in ctx.track(folds, "noise: out-of-fold", len(folds)):
                train = _sample_items(rng, counts, np.flatnonzero(fold != f), max_fit)
                fold_model = NoisyBT(model.free_position, model.free_tau)
                fold_model.fit(data.subset(train)[0], start=model.theta_)
                test_data, test_rows = data.subset(np.flatnonzero(fold == f))
                post[test_rows], p_model[test_rows] = fold_model.score(test_data)
        # Votes of the other judges of the same item.
        same = np.add.reduceat(sign, first)[item] * sign  # Σ_k sign_k·sign_j
        others = counts[item] - 1
        agree = (same - 1 + others) / 2
        post, p_model = post[group], p_model[group]
        n = frame.num_rows
        full = {key: np.full(n, np.nan) for key in ("suspicion", "p_model", "agree", "others")}
        for key, values in (
            ("suspicion", post),
            ("p_model", p_model),
            ("agree", agree),
            ("others", others),
        ):
            full[key][rows] = values
        return NoiseResult(
            judgment_id=frame.column("judgment_id").combine_chunks(),
            outcome=outcome,
            suspicion=full["suspicion"],
            p_model=full["p_model"],
            agree=full["agree"],
            others=full["others"],
            frame=frame.select(["judgment_id", "prompt_id", "strength", "annotator_id"]),
            features=features,
            model=model,
            low=low,
            high=high,
            profile=profile,
            n_items=m,
            multi_items=multi,
            folds=max(len(folds), 1),
            embedded="cos" in features,
            fit_rows=fit_data.n_judgments,
        )

    return ctx.cached("noise:result", make)


def suspicion(ctx: Context) -> pa.Table:
    """``judgment_id, suspicion``: the posterior flip probability of every judgment (null for
    ties and when nothing could be scored), cached as ``noise:suspicion``."""

    def make() -> pa.Table:
        res = compute(ctx)
        if isinstance(res, str):
            ids = ctx.con.sql("SELECT judgment_id FROM _judgments").to_arrow_table().column(0)
            return pa.table({"judgment_id": ids, "suspicion": pa.nulls(len(ids), pa.float64())})
        values = pa.array(res.suspicion, pa.float64(), from_pandas=True)
        return pa.table({"judgment_id": res.judgment_id, "suspicion": values})

    return ctx.cached("noise:suspicion", make)


# --- findings ------------------------------------------------------------------------------------
def _severity(eps: float, low: float, high: float, max_width: float) -> str:
    if high - low > max_width:
        return "info"
    if eps >= ERROR_EPS and low >= ERROR_LOW:
        return "error"
    if eps >= WARN_EPS and low >= WARN_LOW:
        return "warning"
    return "info" if eps >= INFO_EPS or high >= WARN_EPS else "ok"


def _noise_finding(ctx: Context, res: NoiseResult) -> Finding:
    threshold = ctx.param(NAME, "threshold", THRESHOLD)
    max_width = ctx.param(NAME, "max_width", MAX_WIDTH)
    scored = np.flatnonzero(~np.isnan(res.suspicion))
    s = res.suspicion[scored]
    flagged = scored[s > threshold]
    eps, low, high = res.model.eps_, res.low, res.high
    width = high - low
    severity = _severity(eps, low, high, max_width)
    multi = res.others[scored] > 0
    vote_agree = (
        float(res.agree[scored][multi].sum() / res.others[scored][multi].sum())
        if multi.any()
        else None
    )
    if width > max_width:
        verdict = (
            f"Cannot tell how many labels are flipped: the estimate {eps:.0%} could be anywhere "
            f"in {low:.0%}–{high:.0%}, because the cheap features"
            + (" and the votes" if res.model.free_tau else "")
            + " barely predict the labels, so a flipped label looks like a hard pair. "
            f"{len(flagged)} judgments are still flagged as likely flips."
        )
    else:
        verdict = (
            f"About {eps:.0%} of the non-tie labels look flipped (95% interval {low:.0%}–"
            f"{high:.0%}); {len(flagged)} judgments ({len(flagged) / max(len(scored), 1):.1%}) "
            f"are more likely flipped than not. "
            + (
                "A reward model trained on them learns the reverse preference from these; "
                "drop or relabel the flagged ones, or use a noise-robust loss (cDPO/rDPO)."
                if eps >= WARN_EPS
                else "That is a low noise level for preference data."
                if high < WARN_EPS
                else f"Low, but the data cannot rule out up to {high:.0%}."
            )
        )
    metrics: dict[str, Any] = {
        "flip_share": eps,
        "flip_share_low": low,
        "flip_share_high": high,
        "identifiable": width <= max_width,
        "flagged": len(flagged),
        "flagged_share": len(flagged) / max(len(scored), 1),
        "mean_suspicion": float(s.mean()) if len(s) else None,
        "scored_judgments": len(scored),
        "ties_not_scored": int((res.outcome == 0).sum()),
        "items": res.n_items,
        "items_with_several_judges": res.multi_items,
        "model_accuracy_oof": float((res.p_model[scored] > 0.5).mean()) if len(s) else None,
        "vote_agreement": vote_agree,
        "random_effect_sd": res.model.tau_,
        "position_effect": res.model.gamma_,
        "folds": res.folds,
        "fit_judgments": res.fit_rows,
        "threshold": threshold,
        "embeddings_used": res.embedded,
    }
    top = ctx.options.top
    # Worst first; judgments with practically no suspicion are not offenders.
    order = scored[np.argsort(-s, kind="stable")][:top]
    order = order[res.suspicion[order] >= MIN_SHOWN]
    ids, frame = res.judgment_id, res.frame
    rows = [
        [
            ids[int(i)].as_py(),
            frame.column("prompt_id")[int(i)].as_py(),
            frame.column("annotator_id")[int(i)].as_py(),
            int(res.outcome[i]),
            round(float(res.p_model[i]), 3),
            f"{int(res.agree[i])}/{int(res.others[i])}" if res.others[i] > 0 else "",
            round(float(res.suspicion[i]), 3),
        ]
        for i in order
    ]
    tables = [
        Table(
            "Most suspicious judgments",
            [
                "judgment_id",
                "prompt_id",
                "annotator_id",
                "outcome",
                "p_model",
                "votes agree",
                "suspicion",
            ],
            rows,
            note="p_model: out-of-fold probability from the features alone that the recorded "
            "winner is right; votes agree: other judges of the same pair agreeing / other "
            "non-tie judges; suspicion: posterior probability that the label was flipped.",
        ),
        Table(
            "Feature weights (per standard deviation)",
            ["feature", "weight"],
            [[f, round(float(w), 4)] for f, w in zip(res.features, res.model.w_, strict=True)][
                :top
            ],
            note="Bradley–Terry weights on standardised a − b differences, fitted with the flip "
            "rate; positive = the side with more of it tends to win.",
        ),
    ]
    edges = np.linspace(0.0, 1.0, HIST_BINS + 1)
    plots = [
        Plot(
            "hist",
            "Suspicion: posterior probability that a label is flipped",
            edges.round(3).tolist(),
            {"judgments": np.histogram(s, edges)[0].astype(float).tolist()},
            xlabel="P(flipped)",
            ylabel="judgments",
        ),
        Plot(
            "line",
            "Profile likelihood of the flip share",
            [round(e, 4) for e, _ in res.profile],
            {"deviance": [round(d, 4) for _, d in res.profile]},
            xlabel="flip share ε",
            ylabel="2·(ℓ̂ − ℓ(ε))",
            reference=CHI2_95,
        ),
    ]
    return Finding(
        NAME,
        TITLE,
        severity,
        verdict,
        metrics,
        tables,
        plots,
        ids={"judgment_id": ids.take(pa.array(flagged, pa.int64())).to_pylist()},
    )


def _strength_finding(ctx: Context, res: NoiseResult) -> Finding | None:
    """Suspicion by strength bucket, or None when no scored judgment has a strength."""
    strength = np.asarray(res.frame.column("strength").to_numpy(zero_copy_only=False), float)
    ok = ~np.isnan(res.suspicion) & ~np.isnan(strength)
    if not ok.any():
        return None
    threshold = ctx.param(NAME, "threshold", THRESHOLD)
    st, su = strength[ok], res.suspicion[ok]
    levels = np.unique(st)
    if len(levels) <= MAX_STRENGTH_LEVELS:
        bucket, labels = np.searchsorted(levels, st), [f"{v:g}" for v in levels]
    else:
        edges = np.unique(np.quantile(st, np.linspace(0, 1, 6)))
        bucket = np.clip(np.searchsorted(edges, st, side="right") - 1, 0, len(edges) - 2)
        labels = [f"{edges[i]:.3g}–{edges[i + 1]:.3g}" for i in range(len(edges) - 1)]
    rows, mean_s, flag_s = [], [], []
    for b, label in enumerate(labels):
        sel = bucket == b
        if not sel.any():
            continue
        mean_s.append(float(su[sel].mean()))
        flag_s.append(float((su[sel] > threshold).mean()))
        rows.append([label, int(sel.sum()), round(mean_s[-1], 4), round(flag_s[-1], 4)])
    rho = float(spearmanr(st, su).statistic) if len(levels) > 1 else float("nan")
    weaker_noisier = flag_s[0] >= flag_s[-1]
    severity = "info" if weaker_noisier or len(rows) < 2 else "warning"
    verdict = (
        f"Labels with low strength are flagged {flag_s[0]:.1%} of the time, high-strength "
        f"ones {flag_s[-1]:.1%}"
        + (
            "; as expected, weak labels are the noisier ones: weight losses by strength or drop "
            "the weakest."
            if weaker_noisier
            else "; strong labels are flagged more than weak ones, so strength does not track "
            "confidence here: check how it was recorded."
        )
    )
    return Finding(
        NAME,
        "Label strength",
        severity,
        verdict,
        {
            "spearman_strength_suspicion": rho,
            "judgments_with_strength": int(ok.sum()),
            "flagged_share_weakest": flag_s[0],
            "flagged_share_strongest": flag_s[-1],
        },
        [
            Table(
                "Suspicion by strength",
                ["strength", "judgments", "mean suspicion", "flagged share"],
                rows[: ctx.options.top],
            )
        ],
        [
            Plot(
                "bar",
                "Flagged share by strength",
                [r[0] for r in rows],
                {"flagged share": flag_s},
                xlabel="strength",
                ylabel="share flagged",
            )
        ],
    )


def run(ctx: Context) -> list[Finding]:
    res = compute(ctx)
    if isinstance(res, str):
        return [skipped(NAME, TITLE, f"nothing to score: {res}")]
    suspicion(ctx)
    findings = [_noise_finding(ctx, res)]
    strength = _strength_finding(ctx, res)
    if strength is not None:
        findings.append(strength)
    return findings


register(
    Check(
        name=NAME,
        title=TITLE,
        summary="per-judgment flip suspicion (out-of-fold noisy Bradley–Terry on cheap "
        "features + votes) and the estimated share of flipped labels",
        run=run,
    )
)

__all__ = ["NoiseResult", "NoisyBT", "PairData", "compute", "run", "suspicion"]
