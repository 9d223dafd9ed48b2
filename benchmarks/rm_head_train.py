"""Reward-head training time on 100,000 pairs of frozen features, against scikit-learn.

Data (planted truth): ``--responses`` (20,000) feature rows like all-MiniLM-L6-v2's
(384 dimensions, unit norm: standard normal rows normalised), a planted linear reward
``r = X w`` scaled to standard deviation ``--scale`` (2.0), and ``--pairs`` (100,000)
judgments between random distinct responses, ``a`` preferred with probability
``sigmoid(r_a - r_b)`` (Bradley–Terry). A second, independent set of 20,000 judgments
(same responses) is held out. Bayes accuracy = the planted truth's accuracy on the
held-out judgments (predict ``r_a > r_b``); its expectation ``mean(sigmoid(|r_a - r_b|))``
is printed too.

Methods (``--threads`` (2) torch threads; NumPy's BLAS as installed):
    prefkit:<head>   ``RewardModel(head, ArrayBackbone(X)).fit(data)`` with default
                     settings, for every registered head that reads pairs (``bt`` first;
                     heads that fail to import or fit are reported and skipped)
    sklearn-logreg   ``LogisticRegression(fit_intercept=False)`` (lbfgs, C=1) on the
                     feature differences ``x_a - x_b`` with labels ``outcome > 0``: the
                     classical way to fit a linear Bradley–Terry model
Each method is timed ``--repeats`` (3) times (median seconds); pairs/s = training pairs /
seconds; held-out accuracy on decisive held-out pairs; ratio = seconds / sklearn seconds.

    python benchmarks/rm_head_train.py --pairs 100000 --repeats 3
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch

from prefkit.models.backbones import ArrayBackbone
from prefkit.models.data import from_arrays


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def planted(n: int, dim: int, pairs: int, held: int, scale: float, seed: int):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, dim))
    x /= np.linalg.norm(x, axis=1, keepdims=True)  # (n, D) unit rows
    r = x @ rng.normal(size=dim)
    r *= scale / r.std()  # (n,)

    def judgments(m: int):
        a = rng.integers(0, n, m)
        b = (a + rng.integers(1, n, m)) % n  # b != a
        y = np.where(rng.random(m) < 1 / (1 + np.exp(-(r[a] - r[b]))), 1, -1)
        return a, b, y

    return x.astype(np.float32), r, judgments(pairs), judgments(held)


def pair_heads() -> list[str]:
    from prefkit.models.heads.base import load_heads

    names = [name for name, cls in load_heads().items() if cls.kind == "pairs"]
    return sorted(names, key=lambda n: (n != "bt", n))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--responses", type=int, default=20_000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--pairs", type=int, default=100_000)
    ap.add_argument("--held-out", type=int, default=20_000)
    ap.add_argument("--scale", type=float, default=2.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--heads", default="", help="comma-separated heads (default: all pair heads)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from sklearn.linear_model import LogisticRegression

    from prefkit.models.reward_model import RewardModel

    x, r, (a, b, y), (ha, hb, hy) = planted(
        args.responses, args.dim, args.pairs, args.held_out, args.scale, seed=0
    )
    data = from_arrays(args.responses, a=a, b=b, outcome=y)
    held = from_arrays(args.responses, a=ha, b=hb, outcome=hy)
    bayes = float(np.mean((r[ha] > r[hb]) == (hy > 0)))
    expected = float(np.mean(1 / (1 + np.exp(-np.abs(r[ha] - r[hb])))))

    results: dict[str, tuple[list[float], float]] = {}

    heads = [h for h in args.heads.split(",") if h] or pair_heads()
    for head in heads:
        secs, acc = [], float("nan")
        try:
            for k in range(args.repeats):
                t0 = time.perf_counter()
                model = RewardModel(head, ArrayBackbone(x)).fit(data)
                secs.append(time.perf_counter() - t0)
                p, _ = model.pair_probs(held)
                acc = float(np.mean((p > 0.5) == (hy > 0)))
                log(f"prefkit:{head} repeat {k + 1}: {secs[-1]:.1f}s, held-out acc {acc:.4f}")
        except Exception as exc:
            log(f"skip head {head}: {type(exc).__name__}: {exc}")
            continue
        results[f"prefkit:{head}"] = (secs, acc)

    diff = x[a] - x[b]  # (pairs, D)
    secs = []
    for k in range(args.repeats):
        t0 = time.perf_counter()
        lr = LogisticRegression(fit_intercept=False, max_iter=1000).fit(diff, y > 0)
        secs.append(time.perf_counter() - t0)
        log(f"sklearn repeat {k + 1}: {secs[-1]:.1f}s")
    acc = float(np.mean((lr.decision_function(x[ha] - x[hb]) > 0) == (hy > 0)))
    results["sklearn-logreg"] = (secs, acc)

    base = float(np.median(results["sklearn-logreg"][0]))
    print(
        f"\n{args.pairs:,} training pairs, {args.responses:,} responses x {args.dim} dims, "
        f"{torch.get_num_threads()} threads, median of {args.repeats}"
    )
    print(
        f"held-out: {args.held_out:,} judgments; Bayes accuracy {bayes:.4f} (expected {expected:.4f})"
    )
    print(
        f"{'method':<18}{'seconds':>9}{'pairs/s':>11}{'held-out acc':>14}{'vs Bayes':>10}{'ratio':>7}"
    )
    for name, (s, acc) in results.items():
        med = float(np.median(s))
        print(
            f"{name:<18}{med:>9.2f}{args.pairs / med:>11,.0f}{acc:>14.4f}"
            f"{acc - bayes:>+10.4f}{med / base:>7.2f}"
        )


if __name__ == "__main__":
    main()
