"""A preference task whose true reward is known in closed form, for tests, demos and docs.

Real preference data never tells you whether a trained policy got *better*, only whether
it agrees with held-out labels. Here the reward is a function of the token ids,

    r(y) = (number of tokens of y in a fixed "good" set) / (number of non-special tokens of y),

so a DPO run can be scored by the true reward of its samples (:func:`mean_true_reward`)
next to its KL from the reference (:func:`prefkit.training.dpo_eval.sampled_kl`).
Pairs are labelled by a Bradley–Terry draw on the true rewards (Bradley & Terry 1952),
``P(a ≻ b) = σ((r_a − r_b)/τ)``, so the labels are noisy like human ones and the
preference probability of every pair is known exactly: it is stored as ``strength``, the
``α`` of the idealised ranking accuracy (Chen et al. 2024, arXiv:2405.19534).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from torch import nn

from prefkit.errors import PrefkitError
from prefkit.training.dpo_eval import sample_completions
from prefkit.training.groups import Groups


class KnownRewardTask:
    """The reward "share of good tokens" over a vocabulary.

    Parameters
    ----------
    vocab_size
        Token ids are ``0 .. vocab_size - 1``.
    good_fraction
        Share of the non-special ids that are "good" (rounded, at least one).
    seed
        Seeds the choice of the good set.
    special_ids
        Ids (BOS, EOS, PAD, chat markers) that are never good and are not counted in
        the reward's denominator.
    """

    def __init__(
        self,
        vocab_size: int,
        good_fraction: float = 0.5,
        seed: int = 0,
        special_ids: Iterable[int] = (),
    ) -> None:
        special = sorted({int(i) for i in special_ids})
        if any(not 0 <= i < vocab_size for i in special):
            raise PrefkitError(f"special_ids must lie in [0, {vocab_size}), got {special}")
        if not 0 < good_fraction <= 1:
            raise PrefkitError(f"good_fraction must be in (0, 1], got {good_fraction}")
        candidates = np.setdiff1d(np.arange(vocab_size), special)
        if len(candidates) < 2:
            raise PrefkitError("need at least two non-special token ids")
        k = max(1, round(good_fraction * len(candidates)))
        good = np.random.default_rng(seed).choice(candidates, size=k, replace=False)
        self.vocab_size = vocab_size
        self.good = frozenset(int(i) for i in good)
        self.special = frozenset(special)
        self._good = np.zeros(vocab_size, dtype=bool)
        self._good[good] = True
        self._counted = np.ones(vocab_size, dtype=bool)
        self._counted[special] = False

    def reward(self, ids: Sequence[int]) -> float:
        """Share of the non-special tokens of ``ids`` that are good (0.0 when none)."""
        a = np.asarray(ids, dtype=np.int64)
        if a.size and (a.min() < 0 or a.max() >= self.vocab_size):
            raise PrefkitError(f"token ids must lie in [0, {self.vocab_size})")
        counted = self._counted[a]
        n = int(counted.sum())
        return int(self._good[a].sum()) / n if n else 0.0


def bt_probability(diff: float, tau: float) -> float:
    """``σ(diff / τ)``: Bradley–Terry probability of the first item; ``τ = 0`` is a hard max."""
    if tau < 0:
        raise PrefkitError(f"tau must be >= 0, got {tau}")
    if tau == 0:
        return 1.0 if diff > 0 else (0.5 if diff == 0 else 0.0)
    return float(0.5 * (1.0 + np.tanh(diff / (2.0 * tau))))  # stable logistic


def make_pairs(
    task: KnownRewardTask,
    model: nn.Module,
    prompts: Sequence[Sequence[int]],
    *,
    per_prompt: int = 4,
    max_new_tokens: int = 12,
    tau: float = 0.1,
    seed: int = 0,
    eos_token_id: int | Sequence[int] | None = None,
    pad_token_id: int = 0,
) -> Groups:
    """Preference pairs labelled by a Bradley–Terry draw on the true reward.

    Samples ``per_prompt`` completions per prompt from ``model``
    (:func:`~prefkit.training.dpo_eval.sample_completions`), forms every pair ``(i, j)``,
    ``i < j``, of one prompt's completions, drops pairs with equal reward, and draws the
    winner: ``i`` with probability ``p = σ((r_i − r_j)/τ)``. ``strength`` is the
    probability of the drawn winner (``p`` or ``1 − p``; below ½ when the worse one won),
    ``τ → 0`` gives noiseless labels (``strength`` 1). Ids read ``"p{prompt}-{i}-{j}"``.
    """
    if per_prompt < 2:
        raise PrefkitError("per_prompt must be >= 2 to form pairs")
    comps = sample_completions(
        model,
        prompts,
        samples=per_prompt,
        max_new_tokens=max_new_tokens,
        seed=seed,
        eos_token_id=eos_token_id,
        pad_token_id=pad_token_id,
    )
    rng = np.random.default_rng(seed)
    ids: list[str] = []
    prompt_ids: list[list[int]] = []
    completion_ids: list[list[list[int]]] = []
    strength: list[float] = []
    for p, (prompt, cs) in enumerate(zip(prompts, comps, strict=True)):
        r = [task.reward(c) for c in cs]
        for i in range(len(cs)):
            for j in range(i + 1, len(cs)):
                if r[i] == r[j]:
                    continue
                pi = bt_probability(r[i] - r[j], tau)
                w, lo, pw = (i, j, pi) if rng.random() < pi else (j, i, 1.0 - pi)
                ids.append(f"p{p}-{i}-{j}")
                prompt_ids.append(list(prompt))
                completion_ids.append([cs[w], cs[lo]])
                strength.append(pw)
    if not ids:
        raise PrefkitError(
            "every sampled completion of a prompt had the same reward: no pairs; "
            "raise per_prompt or max_new_tokens"
        )
    return Groups(ids, prompt_ids, completion_ids, strength=np.asarray(strength))


def mean_true_reward(
    task: KnownRewardTask,
    model: nn.Module,
    prompts: Sequence[Sequence[int]],
    *,
    samples: int = 4,
    max_new_tokens: int = 12,
    seed: int = 0,
    eos_token_id: int | Sequence[int] | None = None,
    pad_token_id: int = 0,
) -> float:
    """Mean true reward of ``samples`` sampled completions per prompt."""
    comps = sample_completions(
        model,
        prompts,
        samples=samples,
        max_new_tokens=max_new_tokens,
        seed=seed,
        eos_token_id=eos_token_id,
        pad_token_id=pad_token_id,
    )
    return float(np.mean([task.reward(c) for g in comps for c in g]))


def known_reward_experiment(
    *,
    seed: int = 0,
    vocab_size: int = 32,
    n_prompts: int = 32,
    epochs: int = 4,
    lr: float = 5e-3,
    beta: float = 0.1,
    output_dir: str | None = None,
) -> dict[str, float]:
    """DPO on a tiny random Llama's own samples, labelled by the known reward.

    Samples completions from the starting model, pairs them by a Bradley–Terry draw on
    the true reward, trains DPO with :class:`~prefkit.training.dpo.DPOTrainer`, and
    returns the mean true reward of sampled completions before and after (same prompts,
    same sampling seed), with the first and last training loss.
    """
    import tempfile

    from prefkit.training.dpo import DPOTrainer
    from prefkit.training.dpo_config import DPOConfig
    from prefkit.training.tiny import tiny_model

    bos, eos, pad = 1, 2, 0
    model = tiny_model(
        vocab_size=vocab_size,
        hidden_size=32,
        seed=seed,
        bos_token_id=bos,
        eos_token_id=eos,
        pad_token_id=pad,
    )
    task = KnownRewardTask(vocab_size, good_fraction=0.5, seed=seed, special_ids=(pad, bos, eos))
    rng = np.random.default_rng(seed)
    prompts = [[bos, *rng.integers(3, vocab_size, 4).tolist()] for _ in range(n_prompts)]
    kw = {"max_new_tokens": 12, "eos_token_id": eos, "pad_token_id": pad}
    before = mean_true_reward(task, model, prompts, samples=8, seed=seed + 1, **kw)
    pairs = make_pairs(task, model, prompts, per_prompt=4, tau=0.1, seed=seed, **kw)
    config = DPOConfig(
        output_dir=output_dir or tempfile.mkdtemp(prefix="prefkit-known-reward-"),
        lr=lr,
        epochs=epochs,
        batch_size=16,
        scheduler="constant",
        loss_params={"beta": beta},
        seed=seed,
    )
    trainer = DPOTrainer(config, model=model).fit(pairs)
    after = mean_true_reward(task, trainer.model_, prompts, samples=8, seed=seed + 1, **kw)
    return {
        "pairs": float(len(pairs)),
        "steps": float(len(trainer.history_)),
        "reward_before": before,
        "reward_after": after,
        "loss_first": trainer.history_[0].loss,
        "loss_last": trainer.history_[-1].loss,
    }
