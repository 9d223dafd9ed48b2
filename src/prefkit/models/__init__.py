"""Reward and preference models (needs the ``embed``/``train`` extras: torch).

* :mod:`prefkit.models.data`: ``from_dataset`` -> :class:`~prefkit.models.data.PrefData`
  (texts + index arrays of judgments, rankings, attributes), prompt folds;
* :mod:`prefkit.models.backbones`, :mod:`prefkit.models.features`,
  :mod:`prefkit.models.encoder`, :mod:`prefkit.models.finetune`: frozen (cached),
  fine-tuned encoder and causal-LM backbones;
* :mod:`prefkit.models.heads`: the head registry (bt, ties, robust, pl, gpm, pal, attr);
* :mod:`prefkit.models.reward_model`: :class:`RewardModel` (fit, rewards, save, load);
* :mod:`prefkit.models.evaluate`: held-out metrics beside length baselines;
* :mod:`prefkit.models.scoring`: reward columns for inspect and curate;
* :mod:`prefkit.models.synthetic`: planted-truth generators and experiments.

``from prefkit.models import RewardModel, from_dataset, evaluate`` imports lazily, so
``import prefkit.models`` alone does not load torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "RewardModel": "prefkit.models.reward_model",
    "PrefData": "prefkit.models.data",
    "from_dataset": "prefkit.models.data",
    "prompt_folds": "prefkit.models.data",
    "evaluate": "prefkit.models.evaluate",
    "cross_validate": "prefkit.models.evaluate",
    "score_dataset": "prefkit.models.scoring",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'prefkit.models' has no attribute {name!r}")


__all__ = sorted(_EXPORTS)
