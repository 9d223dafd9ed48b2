"""The latent world: prompts, responses, their texts and their known rewards.

Each response ``i`` has S segments with latent attribute vectors
``z[i, s] = z_i + segment_noise · e_{i,s}`` (``z_i, e ~ N(0, I_K)``). Its *quality* is
``q_i = mean_s z[i, s] · w0`` with the population weights ``w0``, and its *true reward*
is ``r_i = q_i + length_bias · ℓ_i`` where ``ℓ_i`` is the response's word count
standardised over the dataset. Lengths are drawn independently of the latent
attributes, so with ``length_bias = 0`` length carries no information about outcomes.

An annotator of group g perceives ``r_ig = mean_s z[i, s] · w_g + length_bias · ℓ_i``
and, for the myopic choice, the same with segment weights ``gamma**(S-1-s)``.

In battles a response's reward is its model's skill in natural units,
``(elo − 1000) · ln 10 / 400``, plus the length term; groups and segments do not apply.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from prefkit.synth.config import SynthConfig
from prefkit.synth.teachers import Panel, base_weights, myopic_weights, weighted_distinct
from prefkit.synth.text import SentencePool, Texts, draw_texts, sentences_for

ELO_BASE = 1000.0
#: Natural-log reward units per Elo point: P(a beats b) = 1 / (1 + 10^(-(Ea - Eb)/400)).
ELO_TO_NAT = math.log(10.0) / 400.0


@dataclass
class Models:
    """Simulated models for battles: names, Elo skills and matchup popularity."""

    names: list[str]
    elo: np.ndarray
    popularity: np.ndarray


@dataclass
class World:
    """Prompts and responses before copies; response ``i`` belongs to ``prompt_of[i]``.

    Prompt ``p`` owns responses ``offsets[p]:offsets[p+1]``. ``perceived`` and
    ``myopic`` are ``(n_responses, G)`` rewards as each annotator group sees them.
    """

    prompts: Texts
    offsets: np.ndarray
    prompt_of: np.ndarray
    texts: Texts
    n_words: np.ndarray
    length_z: np.ndarray
    latent: np.ndarray | None
    quality: np.ndarray
    true_reward: np.ndarray
    perceived: np.ndarray
    myopic: np.ndarray
    model: np.ndarray | None
    models: Models | None
    length_mean: float
    length_std: float

    @property
    def n_prompts(self) -> int:
        return len(self.offsets) - 1


def make_models(config: SynthConfig, rng: np.random.Generator) -> Models:
    """Models with Elo skills ``1000 + skill_spread · N(0, 1)`` and Zipf popularity.

    Popularity ``∝ (rank + 1) ** -matchup_skew`` over a random order of the models, so a
    model's popularity is independent of its skill.
    """
    m = config.n_models
    width = max(2, len(str(m - 1)))
    names = [f"model-{i:0{width}d}" for i in range(m)]
    elo = ELO_BASE + config.skill_spread * rng.normal(size=m)
    rank = rng.permutation(m)
    popularity = (rank + 1.0) ** -config.matchup_skew
    return Models(names, elo, popularity / popularity.sum())


def _standardise(x: np.ndarray) -> tuple[np.ndarray, float, float]:
    mean = float(x.mean()) if len(x) else 0.0
    std = float(x.std()) if len(x) else 0.0
    return ((x - mean) / std if std > 0 else np.zeros(len(x))), mean, std


def _lengths(rng: np.random.Generator, n: int, mean_words: float, spread: float) -> np.ndarray:
    """Target word counts: log-normal with the given mean and log-sigma."""
    return (
        rng.lognormal(math.log(mean_words) - spread**2 / 2, spread, n)
        if spread
        else np.full(n, mean_words)
    )


def build_world(
    config: SynthConfig,
    rng: np.random.Generator,
    pool: SentencePool,
    panel: Panel,
    responses_per_prompt: np.ndarray,
) -> World:
    """Draw prompts and responses with their latent values, rewards and texts.

    Parameters
    ----------
    responses_per_prompt
        Responses to draw for each prompt (``responses_per_prompt`` for ordinary prompts,
        3 for cyclic triads).
    """
    n_prompts = len(responses_per_prompt)
    offsets = np.zeros(n_prompts + 1, np.int64)
    np.cumsum(responses_per_prompt, out=offsets[1:])
    n = int(offsets[-1])
    prompt_of = np.repeat(np.arange(n_prompts), responses_per_prompt)
    n_prompt_sentences = sentences_for(
        _lengths(rng, n_prompts, config.prompt_words, config.length_spread), pool
    )
    prompts = draw_texts(rng, pool, n_prompt_sentences, question_last=True)
    n_sentences = sentences_for(_lengths(rng, n, config.response_words, config.length_spread), pool)
    s = config.n_segments
    models = model = latent = None
    if config.kind == "battles":
        models = make_models(config, rng)
        model = _battle_models(rng, models, offsets, responses_per_prompt)
        quality = (models.elo[model] - ELO_BASE) * ELO_TO_NAT
        signal_quality = np.repeat(_standardise(quality)[0][:, None], s, axis=1)
    else:
        k = len(config.attributes)
        segments = rng.normal(size=(n, 1, k)) + config.segment_noise * rng.normal(size=(n, s, k))
        latent = segments.mean(axis=1)  # (n, K)
        quality = latent @ base_weights(config)
        signal_quality = segments @ base_weights(config)  # (n, S)
    texts = draw_texts(rng, pool, n_sentences, signal_quality, config.text_signal)
    n_words = texts.word_counts(pool)
    length_z, length_mean, length_std = _standardise(n_words.astype(float))
    true_reward = quality + config.length_bias * length_z
    if latent is None:
        perceived = np.broadcast_to(true_reward[:, None], (n, config.n_groups))
        myopic = perceived
    else:
        weighted = np.einsum("nsk,s->nk", segments, myopic_weights(config)) / s
        perceived = latent @ panel.weights.T + config.length_bias * length_z[:, None]
        myopic = weighted @ panel.weights.T + config.length_bias * length_z[:, None]
    return World(
        prompts=prompts,
        offsets=offsets,
        prompt_of=prompt_of,
        texts=texts,
        n_words=n_words,
        length_z=length_z,
        latent=latent,
        quality=quality,
        true_reward=true_reward,
        perceived=perceived,
        myopic=myopic,
        model=model,
        models=models,
        length_mean=length_mean,
        length_std=length_std,
    )


def _battle_models(
    rng: np.random.Generator, models: Models, offsets: np.ndarray, per_prompt: np.ndarray
) -> np.ndarray:
    """Distinct models for each prompt's responses, drawn by popularity."""
    out = np.empty(int(offsets[-1]), np.int64)
    for r in np.unique(per_prompt):
        prompts = np.flatnonzero(per_prompt == r)
        draws = weighted_distinct(rng, len(prompts), int(r), models.popularity)
        rows = offsets[prompts][:, None] + np.arange(r)
        out[rows.ravel()] = draws.ravel()
    return out


__all__ = ["ELO_BASE", "ELO_TO_NAT", "Models", "World", "build_world", "make_models"]
