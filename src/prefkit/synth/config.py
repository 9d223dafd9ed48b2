"""`SynthConfig`: every knob of the preference simulator, with defaults and checks.

The simulator draws prompts and responses from a *known* latent reward and lets scripted
teachers judge them. The teacher knobs follow the scripted teachers of B-Pref (Lee, Smith,
Dragan and Abbeel, 2021, "B-Pref: Benchmarking Preference-Based Reinforcement Learning"):
``beta`` (Bradley–Terry rationality, "Stoc"), ``flip_rate`` (ε-mistake, "Mistake"),
``tie_threshold`` ("Equal"), ``skip_threshold`` ("Skip") and ``gamma`` ("Myopic").
Battles use the Davidson (1970) tie model, rankings Plackett–Luce (Plackett 1975,
Luce 1959) via the Gumbel-max trick.

Fields are plain scalars or tuples so that a command line can expose each one as a flag
(``dataclasses.fields`` plus ``metadata["help"]``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from prefkit.errors import PrefkitError
from prefkit.schema import ANNOTATOR_KINDS

KINDS = ("pairwise", "battles", "ratings", "rankings")
RATING_MAX = 4


def _knob(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


@dataclass
class SynthConfig:
    """All knobs of :func:`prefkit.synth.simulate`; see docs/synth.md for the full story.

    Every field's ``metadata["help"]`` holds a one-line description (used for CLI help).
    Infinite floats (``beta=inf``, ``skip_threshold=-inf``) are written as the strings
    ``"inf"``/``"-inf"`` by :meth:`to_dict` so the config stays JSON-serialisable.
    """

    # --- shape ---------------------------------------------------------------------------
    kind: str = _knob("pairwise", "what to simulate: pairwise, battles, ratings or rankings")
    n_prompts: int = _knob(1000, "number of prompts, duplicates and cyclic triads included")
    responses_per_prompt: int = _knob(2, "responses per prompt (>= 2); models per battle")
    pairs_per_prompt: int = _knob(0, "response pairs judged per prompt; 0 = all pairs")
    n_annotators: int = _knob(20, "number of simulated annotators (teachers)")
    judgments_per_pair: int = _knob(
        1, "distinct annotators judging each pair (rankings: each prompt's response list)"
    )
    seed: int = _knob(0, "random seed; the same seed gives identical tables")
    annotator_kind: str = _knob("rule", "annotator_kind written on judgments (scripted = rule)")
    # --- text and latent reward ----------------------------------------------------------
    prompt_words: float = _knob(20.0, "mean prompt length in words")
    response_words: float = _knob(60.0, "mean response length in words")
    length_spread: float = _knob(0.5, "log-normal sigma of prompt and response lengths")
    text_signal: float = _knob(
        0.3, "share of sentences carrying good/bad marker words that follow the quality"
    )
    attributes: tuple[str, ...] = _knob(
        ("helpfulness", "correctness", "coherence"), "names of the latent attributes (>= 2)"
    )
    attribute_weights: tuple[float, ...] = _knob(
        (), "population weight of each attribute in the reward; empty = equal"
    )
    n_segments: int = _knob(2, "segments per response (the myopic teacher weights later ones)")
    segment_noise: float = _knob(0.5, "std of a segment's attributes around the response's")
    length_bias: float = _knob(
        0.0, "reward added per std of response length (0 = length does not matter)"
    )
    # --- teachers (B-Pref) ---------------------------------------------------------------
    beta: float = _knob(
        1.0, "Bradley-Terry rationality: P(a>b) = sigmoid(beta*(r_a-r_b)); inf = exact"
    )
    flip_rate: float = _knob(0.0, "epsilon-mistake: probability a teacher flips its answer")
    tie_threshold: float = _knob(0.0, "equal teacher: |r_a - r_b| below this gives a tie")
    skip_threshold: float = _knob(
        -math.inf, "skip teacher: a pair whose rewards are both below this is not judged"
    )
    gamma: float = _knob(1.0, "myopic discount: segment s of S weighs gamma**(S-1-s)")
    position_bias: float = _knob(
        0.0, "probability a teacher picks the first-shown response a regardless"
    )
    tie_nu: float = _knob(0.0, "Davidson tie parameter nu (0 = no ties from the choice model)")
    annotator_flip_rates: tuple[float, ...] = _knob(
        (), "per-annotator flip rates (one per annotator); empty = flip_rate for all"
    )
    bad_annotator_fraction: float = _knob(0.0, "share of annotators that are bad (high flip rate)")
    bad_flip_rate: float = _knob(0.4, "flip rate of the bad annotators")
    n_groups: int = _knob(1, "annotator groups with their own reward weights")
    group_divergence: float = _knob(
        0.8, "how far group weights turn away from the shared weights (0 = not at all)"
    )
    # --- planted data problems -----------------------------------------------------------
    duplicate_rate: float = _knob(
        0.0, "share of prompts that are exact copies (with responses, judgments)"
    )
    near_duplicate_rate: float = _knob(
        0.0, "share of prompts that are copies with a few words edited"
    )
    near_duplicate_edits: int = _knob(3, "words edited in each text of a near-duplicate")
    n_cyclic_triads: int = _knob(
        0, "prompts with 3 responses judged in a rock-paper-scissors cycle"
    )
    # --- ratings -------------------------------------------------------------------------
    rating_scale: float = _knob(1.0, "rating points per unit of latent attribute (ratings are 0-4)")
    rating_noise: float = _knob(0.5, "std of the rater's noise in rating points")
    # --- battles -------------------------------------------------------------------------
    n_models: int = _knob(8, "simulated models (battles)")
    skill_spread: float = _knob(100.0, "std of the models' skills on the Elo scale")
    matchup_skew: float = _knob(
        0.0, "Zipf exponent of model popularity in battles (0 = uniform matchups)"
    )

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, list):
                setattr(self, f.name, tuple(value))
        self.attributes = tuple(str(a) for a in self.attributes)
        self.attribute_weights = tuple(float(w) for w in self.attribute_weights)
        self.annotator_flip_rates = tuple(float(r) for r in self.annotator_flip_rates)
        self.validate()

    # --- checks --------------------------------------------------------------------------
    def validate(self) -> None:
        """Raise :class:`~prefkit.errors.PrefkitError` naming the first bad knob."""
        if self.kind not in KINDS:
            _bad("kind", f"must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if self.annotator_kind not in ANNOTATOR_KINDS:
            _bad("annotator_kind", f"must be one of {', '.join(ANNOTATOR_KINDS)}")
        for name in ("n_prompts", "n_annotators", "judgments_per_pair", "n_segments", "n_groups"):
            _at_least(name, getattr(self, name), 1)
        for name in ("pairs_per_prompt", "near_duplicate_edits", "n_cyclic_triads", "seed"):
            _at_least(name, getattr(self, name), 0)
        _at_least("responses_per_prompt", self.responses_per_prompt, 2)
        _at_least("n_models", self.n_models, 2)
        n_pairs = self.responses_per_prompt * (self.responses_per_prompt - 1) // 2
        if self.pairs_per_prompt > n_pairs:
            _bad("pairs_per_prompt", f"{self.pairs_per_prompt} > {n_pairs} possible pairs")
        if self.judgments_per_pair > self.n_annotators:
            _bad("judgments_per_pair", f"needs at least as many annotators ({self.n_annotators})")
        if self.kind == "battles" and self.responses_per_prompt > self.n_models:
            _bad("responses_per_prompt", f"a battle draws distinct models; only {self.n_models}")
        if len(self.attributes) < 2 or len(set(self.attributes)) != len(self.attributes):
            _bad("attributes", "needs at least 2 distinct names")
        if self.attribute_weights and len(self.attribute_weights) != len(self.attributes):
            _bad("attribute_weights", f"needs one weight per attribute ({len(self.attributes)})")
        if self.attribute_weights and not any(self.attribute_weights):
            _bad("attribute_weights", "must not be all zero")
        if self.annotator_flip_rates and len(self.annotator_flip_rates) != self.n_annotators:
            _bad("annotator_flip_rates", f"needs one rate per annotator ({self.n_annotators})")
        for name in (
            "flip_rate", "position_bias", "bad_annotator_fraction", "bad_flip_rate",
            "duplicate_rate", "near_duplicate_rate", "text_signal", "group_divergence",
        ):  # fmt: skip
            _unit(name, getattr(self, name))
        for rate in self.annotator_flip_rates:
            _unit("annotator_flip_rates", rate)
        if not 0.0 < self.gamma <= 1.0:
            _bad("gamma", f"must be in (0, 1], got {self.gamma}")
        if not self.beta > 0:
            _bad("beta", f"must be > 0 (inf = deterministic), got {self.beta}")
        for name in (
            "tie_threshold", "tie_nu", "length_spread", "segment_noise", "rating_noise",
            "skill_spread", "matchup_skew", "rating_scale",
        ):  # fmt: skip
            value = getattr(self, name)
            if not (value >= 0 and math.isfinite(value)):
                _bad(name, f"must be a finite number >= 0, got {value}")
        if self.prompt_words < 1 or self.response_words < 1:
            _bad("response_words" if self.response_words < 1 else "prompt_words", "must be >= 1")
        if math.isnan(self.skip_threshold) or self.skip_threshold == math.inf:
            _bad("skip_threshold", "must be a number or -inf")
        if self.n_cyclic_triads and self.kind != "pairwise":
            _bad("n_cyclic_triads", "cyclic triads exist only for kind='pairwise'")
        if self.n_base_prompts < 1:
            _bad(
                "n_prompts",
                f"{self.n_prompts} leaves no original prompts after "
                f"{self.n_exact_copies} exact copies (duplicate_rate), {self.n_near_copies} "
                f"near copies (near_duplicate_rate) and {self.n_cyclic_triads} cyclic triads "
                "(n_cyclic_triads)",
            )

    # --- derived counts ------------------------------------------------------------------
    @property
    def n_exact_copies(self) -> int:
        """Prompts that are exact copies of an original prompt."""
        return round(self.duplicate_rate * self.n_prompts)

    @property
    def n_near_copies(self) -> int:
        """Prompts that are near copies (a few words edited) of an original prompt."""
        return round(self.near_duplicate_rate * self.n_prompts)

    @property
    def n_base_prompts(self) -> int:
        """Original, independently drawn prompts (not copies, not cyclic triads)."""
        return self.n_prompts - self.n_exact_copies - self.n_near_copies - self.n_cyclic_triads

    # --- (de)serialisation ---------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict (tuples become lists, infinities strings)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, float) and not math.isfinite(value):
                value = str(value)
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SynthConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise :class:`PrefkitError`."""
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise PrefkitError(f"unknown synth option(s): {', '.join(unknown)}")
        values: dict[str, Any] = {}
        for name, value in data.items():
            default = known[name].default
            if isinstance(default, float) and isinstance(value, str | int):
                value = float(value)
            values[name] = value
        return cls(**values)

    def replace(self, **overrides: Any) -> SynthConfig:
        """A copy with some knobs changed (checked like a new config)."""
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise PrefkitError(
                f"unknown synth option(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        return dataclasses.replace(self, **overrides)


def _bad(name: str, message: str) -> None:
    raise PrefkitError(f"synth option {name!r}: {message}")


def _at_least(name: str, value: int, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        _bad(name, f"must be an integer >= {low}, got {value!r}")


def _unit(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        _bad(name, f"must be in [0, 1], got {value}")


__all__ = ["KINDS", "RATING_MAX", "SynthConfig"]
