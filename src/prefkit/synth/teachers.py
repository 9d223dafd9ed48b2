"""Scripted teachers: the annotator panel and the B-Pref judging pipeline, vectorised.

Implements the scripted teachers of B-Pref (Lee, Smith, Dragan and Abbeel, 2021,
"B-Pref: Benchmarking Preference-Based Reinforcement Learning", and the
``reward_model.get_label`` of its reference code), extended with annotator groups, a
position bias and the Davidson (1970) tie model. For a pair (a, b) with rewards perceived by the annotator:

1. *Skip*: both rewards below ``skip_threshold`` → no judgment.
2. *Equal*: ``|r_a − r_b| < tie_threshold`` → tie (final; never flipped).
3. *Myopic*: the choice uses segment rewards weighted ``gamma**(S-1-s)`` (later favoured).
4. *Stoc*: ``P(a) = 1 / (1 + e^{-d} + ν e^{-d/2})``, ``P(b)`` symmetric, tie the rest,
   with ``d = beta · Δr_myopic`` (ν = 0 is Bradley–Terry; ``beta = inf`` is rational).
5. *Position bias*: with probability ``position_bias`` the answer becomes "a".
6. *Mistake*: with the annotator's flip rate a non-tie answer is reversed.

Deviations from B-Pref: thresholds are absolute reward values, not fractions of the
average segment return; the rational teacher breaks an exact tie of rewards by a coin
flip instead of always answering "a" (B-Pref labels ``1 * (r_1 < r_2)``); position bias
and groups are not in B-Pref.
Rankings are drawn from Plackett–Luce by the Gumbel-max trick (Yellott 1977).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from prefkit.schema import A_WINS, B_WINS, TIE
from prefkit.synth.config import SynthConfig

#: Rows per block when drawing distinct items with a dense random matrix.
BLOCK = 1 << 16
#: Bound on |beta · Δr| before exponentiation; choice probabilities are saturated there.
MAX_LOGIT = 60.0


@dataclass
class Panel:
    """The simulated annotators.

    Attributes
    ----------
    group
        ``(n,)`` group index of each annotator.
    flip_rate
        ``(n,)`` ε-mistake probability of each annotator.
    bad
        ``(n,)`` whether the annotator was planted as a bad one.
    weights
        ``(G, K)`` reward weights over the K latent attributes, one row per group.
    """

    group: np.ndarray
    flip_rate: np.ndarray
    bad: np.ndarray
    weights: np.ndarray

    def __len__(self) -> int:
        return len(self.group)


def base_weights(config: SynthConfig) -> np.ndarray:
    """``(K,)`` population reward weights over the latent attributes, unit norm."""
    k = len(config.attributes)
    w = np.asarray(config.attribute_weights or [1.0] * k, float)
    return w / np.linalg.norm(w)


def group_weights(config: SynthConfig, rng: np.random.Generator) -> np.ndarray:
    """``(G, K)`` unit reward weights of the annotator groups.

    Group g turns from the shared weights ``w0`` towards its own direction ``u_g``:
    ``w_g ∝ (1 − divergence) · w0 + divergence · u_g``. For ``g < K``, ``u_g`` is the
    one-hot vector of attribute g with ``w0`` projected out (the group cares for that
    attribute more and for the others less than the population); further groups get a
    random unit direction orthogonal to ``w0``. One group uses ``w0`` itself.
    """
    w0 = base_weights(config)
    k = len(w0)
    if config.n_groups == 1:
        return w0[None, :]
    rows = []
    for g in range(config.n_groups):
        u = np.eye(k)[g] if g < k else rng.normal(size=k)
        u = u - w0 * (w0 @ u)
        norm = np.linalg.norm(u)
        u = u / norm if norm > 1e-12 else np.zeros(k)
        w = (1.0 - config.group_divergence) * w0 + config.group_divergence * u
        rows.append(w / max(np.linalg.norm(w), 1e-12))
    return np.array(rows)


def make_panel(config: SynthConfig, rng: np.random.Generator) -> Panel:
    """Draw the annotators: balanced random groups, flip rates and the bad ones."""
    n = config.n_annotators
    group = rng.permutation(np.arange(n) % config.n_groups)
    flip = (
        np.asarray(config.annotator_flip_rates, float)
        if config.annotator_flip_rates
        else np.full(n, config.flip_rate)
    )
    bad = np.zeros(n, bool)
    n_bad = round(config.bad_annotator_fraction * n)
    if n_bad:
        bad[rng.choice(n, n_bad, replace=False)] = True
        flip = np.where(bad, config.bad_flip_rate, flip)
    return Panel(group=group, flip_rate=flip, bad=bad, weights=group_weights(config, rng))


def myopic_weights(config: SynthConfig) -> np.ndarray:
    """``(S,)`` segment weights ``gamma**(S-1-s)`` scaled to mean 1 (all 1 when gamma = 1)."""
    s = config.n_segments
    w = config.gamma ** (s - 1 - np.arange(s, dtype=float))
    return w / w.mean()


def sample_distinct(rng: np.random.Generator, rows: int, k: int, n: int) -> np.ndarray:
    """``(rows, k)`` integers from ``range(n)``, distinct within each row, uniform subsets."""
    if k == 1:
        return rng.integers(0, n, (rows, 1))
    if 2 * k <= n:
        out = rng.integers(0, n, (rows, k))
        while True:
            srt = np.sort(out, axis=1)
            dup = np.flatnonzero((srt[:, 1:] == srt[:, :-1]).any(axis=1))
            if not len(dup):
                return out
            out[dup] = rng.integers(0, n, (len(dup), k))
    return weighted_distinct(rng, rows, k, np.full(n, 1.0 / n))


def weighted_distinct(rng: np.random.Generator, rows: int, k: int, p: np.ndarray) -> np.ndarray:
    """``(rows, k)`` draws without replacement with probabilities ``p`` (Gumbel top-k)."""
    logp = np.log(np.maximum(p, 1e-300))
    out = np.empty((rows, k), np.int64)
    for lo in range(0, rows, BLOCK):
        hi = min(lo + BLOCK, rows)
        keys = logp + rng.gumbel(size=(hi - lo, len(p)))
        top = np.argpartition(-keys, k - 1, axis=1)[:, :k]
        # Order inside the top k is the Plackett–Luce draw order.
        order = np.argsort(-np.take_along_axis(keys, top, axis=1), axis=1)
        out[lo:hi] = np.take_along_axis(top, order, axis=1)
    return out


@dataclass
class Verdicts:
    """Result of :func:`judge` for n candidate judgments (all arrays ``(n,)``)."""

    outcome: np.ndarray
    kept: np.ndarray
    flipped: np.ndarray
    position_biased: np.ndarray


def choice_probabilities(d: np.ndarray, nu: float) -> tuple[np.ndarray, np.ndarray]:
    """Davidson ``P(a)`` and ``P(b)`` for scaled reward differences ``d`` (ν = 0: BT)."""
    d = np.clip(d, -MAX_LOGIT, MAX_LOGIT)
    p_a = 1.0 / (1.0 + np.exp(-d) + nu * np.exp(-d / 2))
    p_b = 1.0 / (1.0 + np.exp(d) + nu * np.exp(d / 2))
    return p_a, p_b


def judge(
    rng: np.random.Generator,
    config: SynthConfig,
    reward_a: np.ndarray,
    reward_b: np.ndarray,
    myopic_margin: np.ndarray,
    flip_rate: np.ndarray,
) -> Verdicts:
    """Run the B-Pref teacher pipeline (module docstring) on n pairs at once.

    Parameters
    ----------
    reward_a, reward_b
        Undiscounted rewards as the judging annotator perceives them.
    myopic_margin
        ``r_a − r_b`` with the myopic segment weights.
    flip_rate
        Flip probability of the judging annotator, per judgment.
    """
    n = len(reward_a)
    u_choice, u_position, u_flip = rng.random(n), rng.random(n), rng.random(n)
    kept = ~((reward_a < config.skip_threshold) & (reward_b < config.skip_threshold))
    equal = np.abs(reward_a - reward_b) < config.tie_threshold
    if math.isinf(config.beta):
        p_a = (myopic_margin > 0) + 0.5 * (myopic_margin == 0)
        p_b = 1.0 - p_a
    else:
        p_a, p_b = choice_probabilities(config.beta * myopic_margin, config.tie_nu)
    outcome = np.where(u_choice < p_a, A_WINS, np.where(u_choice < p_a + p_b, B_WINS, TIE))
    position = (u_position < config.position_bias) & ~equal
    outcome = np.where(position, A_WINS, outcome)
    flipped = (u_flip < flip_rate) & (outcome != TIE) & ~equal
    outcome = np.where(flipped, -outcome, outcome)
    outcome = np.where(equal, TIE, outcome)
    return Verdicts(outcome.astype(np.int8), kept, flipped, position)


@dataclass
class Orders:
    """Result of :func:`rank` for n rankings over R items each."""

    order: np.ndarray
    tier_break: np.ndarray
    kept: np.ndarray
    flipped: np.ndarray


def rank(
    rng: np.random.Generator,
    config: SynthConfig,
    rewards: np.ndarray,
    myopic: np.ndarray,
    flip_rate: np.ndarray,
) -> Orders:
    """Plackett–Luce rankings with the B-Pref skip, equal and mistake teachers.

    Parameters
    ----------
    rewards, myopic
        ``(n, R)`` undiscounted and myopic rewards as each ranking's annotator sees them.
    flip_rate
        ``(n,)`` probability that the annotator swaps one random adjacent pair.

    Returns
    -------
    Orders
        ``order`` ``(n, R)`` item indices best first; ``tier_break`` ``(n, R-1)`` is
        False where items k and k+1 of the order are tied (undiscounted rewards closer
        than ``tie_threshold``; a run of such neighbours forms one tier).
    """
    n, r = rewards.shape
    gumbel = rng.gumbel(size=(n, r))
    u_flip, where = rng.random(n), rng.integers(0, r - 1, n)
    keys = myopic if math.isinf(config.beta) else config.beta * myopic + gumbel
    order = np.argsort(-keys, axis=1, kind="stable")
    flipped = u_flip < flip_rate
    rows = np.flatnonzero(flipped)
    first, second = order[rows, where[rows]], order[rows, where[rows] + 1]
    order[rows, where[rows]], order[rows, where[rows] + 1] = second, first
    ordered = np.take_along_axis(rewards, order, axis=1)
    tier_break = np.abs(np.diff(ordered, axis=1)) >= config.tie_threshold
    kept = np.asarray(~(rewards < config.skip_threshold).all(axis=1))
    return Orders(order, tier_break, kept, flipped)


__all__ = [
    "Orders",
    "Panel",
    "Verdicts",
    "base_weights",
    "choice_probabilities",
    "group_weights",
    "judge",
    "make_panel",
    "myopic_weights",
    "rank",
    "sample_distinct",
    "weighted_distinct",
]
