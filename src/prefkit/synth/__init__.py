"""Simulated preference data with known ground truth (B-Pref-style scripted teachers).

>>> from prefkit.synth import simulate
>>> ds = simulate(kind="pairwise", n_prompts=100, flip_rate=0.1, seed=0)  # doctest: +SKIP
>>> ds.manifest.planted["counts"]["flipped"]  # doctest: +SKIP
"""

from prefkit.synth.bench import write_trl_jsonl
from prefkit.synth.config import KINDS, SynthConfig
from prefkit.synth.simulate import simulate

__all__ = ["KINDS", "SynthConfig", "simulate", "write_trl_jsonl"]
