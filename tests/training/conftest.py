"""Shared fixtures for the DPO trainer tests: tiny models, toy groups, naive log-probs."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from prefkit.training.dpo_config import DPOConfig
from prefkit.training.groups import Groups
from prefkit.training.tiny import tiny_checkpoint
from tinylm import tiny_lm

VOCAB = 64
LOG2 = math.log(2.0)


def toy_pairs(
    n: int,
    *,
    seed: int = 0,
    k: int = 2,
    stage: Sequence[int] | None = None,
    scores: bool = False,
) -> Groups:
    """``n`` random groups of ``k`` completions over token ids 3..63 (ids < 3 stay special)."""
    rng = np.random.default_rng(seed)
    prompts = [rng.integers(3, VOCAB, size=rng.integers(2, 6)).tolist() for _ in range(n)]
    comps = [
        [rng.integers(3, VOCAB, size=rng.integers(2, 7)).tolist() for _ in range(k)]
        for _ in range(n)
    ]
    return Groups(
        ids=[f"g{i}" for i in range(n)],
        prompt_ids=prompts,
        completion_ids=comps,
        stage=np.zeros(0, dtype=np.int64) if stage is None else np.asarray(stage, dtype=np.int64),
        scores=[[float(k - j) for j in range(k)] for _ in range(n)] if scores else None,
    )


def config(tmp_path: Path, name: str = "run", **kw: Any) -> DPOConfig:
    """A CPU fp32 config writing only under ``tmp_path`` (never the home cache)."""
    base: dict[str, Any] = dict(
        output_dir=str(tmp_path / name),
        ref_cache_dir=str(tmp_path / "refcache"),
        precision="no",
        scheduler="constant",
        lr=1e-2,
        batch_size=4,
        shuffle=True,
        seed=0,
    )
    base.update(kw)
    return DPOConfig(**base)


@torch.no_grad()
def naive_logps(model: nn.Module, groups: Groups) -> np.ndarray:
    """``(N, K)`` summed completion log-probs, one unpadded full forward per sequence."""
    was = model.training
    model.eval()
    out = np.zeros((len(groups), max(len(c) for c in groups.completion_ids)))
    for i, (p, cs) in enumerate(zip(groups.prompt_ids, groups.completion_ids, strict=True)):
        for j, c in enumerate(cs):
            ids = torch.tensor([list(p) + list(c)])
            logp = torch.log_softmax(model(ids).logits[0].double(), -1)
            pos = torch.arange(len(p) - 1, len(p) + len(c) - 1)
            out[i, j] = float(logp[pos, torch.tensor(c)].sum())
    model.train(was)
    return out


def weights(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.fixture(scope="session")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Llama checkpoint directory (tokenizer + weights), loadable offline."""
    return tiny_checkpoint(
        tmp_path_factory.mktemp("tiny") / "llama", hidden_size=32, layers=2, heads=4, kv_heads=2
    )


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No network, and no default cache outside the test's own tmp dir."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.setenv("PREFKIT_CACHE", str(tmp_path / "prefkit-cache"))


# Test modules reach the helpers through fixtures ("conftest" is not importable by name:
# tests/ has a conftest of its own).
@pytest.fixture
def make_lm() -> Any:
    return tiny_lm


@pytest.fixture
def make_groups() -> Any:
    return toy_pairs


@pytest.fixture
def make_config() -> Any:
    return config


@pytest.fixture
def logps_of() -> Any:
    return naive_logps


@pytest.fixture
def snapshot() -> Any:
    return weights
