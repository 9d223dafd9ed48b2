"""Bootstrap Bradley–Terry arena ratings: prefkit side by side with the Chatbot Arena recipes.

1,000,000 battles over 100 models (Zipf matchups, Davidson ties ~27%), 1,000 bootstrap
rounds, ties as half a win (the Chatbot Arena convention). In one process:

(a) the classic recipe, fschat ``elo_analysis``: ``battles.sample(frac=1, replace=True)``
    per round, the battles duplicated into a dense ``(2n, m)`` design (a tie = one win
    each way) and a scikit-learn ``LogisticRegression(fit_intercept=False, no penalty,
    tol=1e-8)`` fit. A few rounds are timed and the per-round cost reported.
(b) the current recipe, fschat ``rating_systems.compute_bootstrap_bt``: battles
    aggregated to unique (model_a, model_b, outcome) rows, ``rng.multinomial`` over those
    rows for every round, and a scipy L-BFGS-B fit per round (``bt_loss_and_grad``,
    ``gtol=1e-6``). ``--rounds-b`` rounds are timed and extrapolated. (fschat spreads the
    rounds over a process pool; the "ideal pool" line divides by the core count.)
(c) prefkit: ``BattleCounts`` + ``bootstrap(rounds=1000)`` (exact multinomial draws of the
    aggregated cells, all rounds solved together), the median of ``--repeats`` runs.

Correctness: prefkit's ratings are compared with a converged (a) (the same design and
LogisticRegression at ``tol=1e-10``); the difference must be below 0.01 rating points.

    python benchmarks/arena_bootstrap.py            # full size (needs ~4 GB for (a))
    python benchmarks/arena_bootstrap.py --quick    # smoke test: 50k battles, 20 models
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import time

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit
from sklearn.linear_model import LogisticRegression

from prefkit.ratings import BattleCounts, BradleyTerry, bootstrap

SCALE, BASE, INIT = 400.0, 10.0, 1000.0


# --- data -------------------------------------------------------------------------------------
def make_battles(n: int, m: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Arena-like battles: Zipf(0.5) popularity, Elo skills N(1000, 100), Davidson ν = 0.8."""
    rng = np.random.default_rng(seed)
    skill = rng.normal(0, 100, m) * math.log(10) / 400
    pop = (np.arange(m) + 1.0) ** -0.5
    pop /= pop.sum()
    a = rng.choice(m, n, p=pop)
    b = rng.choice(m, n, p=pop)
    while (same := a == b).any():
        b[same] = rng.choice(m, int(same.sum()), p=pop)
    d = skill[a] - skill[b]
    p_a = 1 / (1 + np.exp(-d) + 0.8 * np.exp(-d / 2))
    p_b = 1 / (1 + np.exp(d) + 0.8 * np.exp(d / 2))
    u = rng.random(n)
    winner = np.where(u < p_a, "model_a", np.where(u < p_a + p_b, "model_b", "tie"))
    names = np.array([f"model-{k:03d}" for k in range(m)])
    return names[a], names[b], winner


# --- (a) the classic recipe -------------------------------------------------------------------
def classic_fit(
    ai: np.ndarray,
    bi: np.ndarray,
    winner: np.ndarray,
    m: int,
    tol: float = 1e-8,
    max_iter: int = 100,
):
    """fschat ``compute_mle_elo``: duplicated rows, one tie = one A win + one B win."""
    n = len(ai)
    x = np.zeros((2 * n, m))
    rows = np.arange(2 * n)
    x[rows, np.r_[ai, ai]] = +math.log(BASE)
    x[rows, np.r_[bi, bi]] = -math.log(BASE)
    y = np.zeros(2 * n)
    y[np.r_[winner == "model_a", winner == "model_a"]] = 1.0
    tie = np.r_[np.char.startswith(winner.astype(str), "tie"), np.zeros(n, dtype=bool)]
    y[tie] = 1.0
    # penalty=None is spelled C=inf in scikit-learn >= 1.8.
    lr = LogisticRegression(fit_intercept=False, C=np.inf, tol=tol, max_iter=max_iter)
    lr.fit(x, y)
    return SCALE * lr.coef_[0] + INIT, int(lr.n_iter_[0])


def time_classic(ai, bi, winner, m, rounds, seed=0) -> list[float]:
    rng = np.random.default_rng(seed)
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        idx = rng.integers(0, len(ai), len(ai))  # battles.sample(frac=1.0, replace=True)
        classic_fit(ai[idx], bi[idx], winner[idx], m)
        times.append(time.perf_counter() - t0)
    return times


# --- (b) the current recipe -------------------------------------------------------------------
def preprocess_for_bt(ai, bi, winner):
    """fschat ``preprocess_for_bt``: unique (a, b, outcome) rows and their counts."""
    schedule = np.full((len(ai), 3), 1, dtype=np.int32)
    schedule[:, 0], schedule[:, 1] = ai, bi
    schedule[winner == "model_a", 2] = 2
    schedule[winner == "model_b", 2] = 0
    rows, weights = np.unique(schedule, return_counts=True, axis=0)
    return rows[:, :2], rows[:, 2].astype(np.float64) / 2.0, weights.astype(np.float64)


def bt_loss_and_grad(ratings, matchups, outcomes, weights, alpha=1.0):
    matchup_ratings = ratings[matchups]
    logits = alpha * (matchup_ratings[:, 0] - matchup_ratings[:, 1])
    probs = expit(logits)
    loss = -((np.log(probs) * outcomes + np.log(1.0 - probs) * (1.0 - outcomes)) * weights).sum()
    matchups_grads = -alpha * (outcomes - probs) * weights
    model_grad = np.zeros_like(ratings)
    np.add.at(model_grad, matchups[:, [0, 1]], matchups_grads[:, None] * np.array([1.0, -1.0]))
    return loss, model_grad


def fit_bt(matchups, outcomes, weights, n_models, alpha, tol=1e-6):
    res = minimize(
        fun=bt_loss_and_grad,
        x0=np.zeros(n_models),
        args=(matchups, outcomes, weights, alpha),
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": 100, "gtol": tol},
    )
    return res["x"]


def time_current(ai, bi, winner, m, rounds, seed=0) -> tuple[list[float], float]:
    """Per-round seconds (a multinomial draw + one fit) and the preprocessing time."""
    t0 = time.perf_counter()
    matchups, outcomes, weights = preprocess_for_bt(ai, bi, winner)
    prep = time.perf_counter() - t0
    rng = np.random.default_rng(seed)
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        counts = rng.multinomial(len(ai), weights / weights.sum())
        fit_bt(matchups, outcomes, counts / len(ai), m, math.log(BASE))
        times.append(time.perf_counter() - t0)
    return times, prep


# --- (c) prefkit ------------------------------------------------------------------------------
def time_prefkit(a, b, winner, rounds, repeats):
    t0 = time.perf_counter()
    counts = BattleCounts.from_arrays(a, b, winner)
    agg = time.perf_counter() - t0
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        model = BradleyTerry(ties="half").fit(counts)
        result = bootstrap(counts, model, rounds=rounds, seed=0)
        runs.append(time.perf_counter() - t0)
    return counts, model, result, agg, runs


# --- main -------------------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--n", type=int, default=1_000_000, help="battles")
    ap.add_argument("--models", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=1000, help="bootstrap rounds")
    ap.add_argument("--rounds-a", type=int, default=2, help="rounds of recipe (a) to time")
    ap.add_argument("--rounds-b", type=int, default=20, help="rounds of recipe (b) to time")
    ap.add_argument("--repeats", type=int, default=3, help="prefkit runs (median)")
    ap.add_argument("--quick", action="store_true", help="small sizes: a smoke test")
    args = ap.parse_args()
    if args.quick:
        quick = {
            "n": 50_000,
            "models": 20,
            "rounds": 100,
            "rounds_a": 1,
            "rounds_b": 5,
            "repeats": 1,
        }
        for key, value in quick.items():
            setattr(args, key, value)

    cores = os.cpu_count() or 1
    print(f"{args.n:,} battles, {args.models} models, {args.rounds} rounds, {cores} CPU cores")
    a, b, winner = make_battles(args.n, args.models)

    counts, model, result, agg, runs = time_prefkit(a, b, winner, args.rounds, args.repeats)
    c_total = statistics.median(runs)
    idx = {name: k for k, name in enumerate(counts.models)}
    ai = np.array([idx[x] for x in a.tolist()])
    bi = np.array([idx[x] for x in b.tolist()])
    print(f"ties: {counts.n_ties / counts.n_battles:.1%}; {len(counts.pairs()[0]):,} pairs met")

    b_times, b_prep = time_current(ai, bi, winner, args.models, args.rounds_b)
    b_round = statistics.median(b_times)
    a_times = time_classic(ai, bi, winner, args.models, args.rounds_a)
    a_round = statistics.median(a_times)

    t0 = time.perf_counter()
    converged, n_iter = classic_fit(ai, bi, winner, args.models, tol=1e-10, max_iter=10_000)
    t_conv = time.perf_counter() - t0
    converged = converged - converged.mean() + INIT  # the same (mean) gauge as prefkit
    diff = float(np.abs(model.ratings_ - converged).max())

    rows = [
        (
            "(a) classic: row resampling + sklearn LogisticRegression",
            a_round,
            a_round * args.rounds,
        ),
        ("(b) current: multinomial counts + scipy L-BFGS-B", b_round, b_round * args.rounds),
        (
            "(b) current, ideal process pool over all cores",
            b_round / cores,
            b_round * args.rounds / cores,
        ),
        ("(c) prefkit: BattleCounts + bootstrap", c_total / args.rounds, c_total),
    ]
    print(f"\n{'recipe':58s} {'per round':>12s} {f'{args.rounds} rounds':>13s} {'vs prefkit':>11s}")
    for name, per, total in rows:
        print(f"{name:58s} {per * 1e3:9.2f} ms {total:11.2f} s {total / c_total:10.1f}x")
    print(
        f"\nprefkit: aggregation {agg:.2f} s (once), bootstrap runs {', '.join(f'{t:.2f}' for t in runs)} s; "
        f"(b) preprocessing {b_prep:.2f} s (once); (a) timed over {args.rounds_a} round(s), "
        f"(b) over {args.rounds_b}"
    )
    print(
        f"degenerate rounds: {result.degenerate_rounds}, unconverged: {result.unconverged_rounds}"
    )
    verdict = "OK" if diff < 0.01 else "FAIL"
    print(
        f"ratings vs converged (a) (LogisticRegression tol=1e-10, {n_iter} iterations, {t_conv:.1f} s): "
        f"max |diff| = {diff:.2e} rating points [{verdict}]"
    )
    if diff >= 0.01:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
