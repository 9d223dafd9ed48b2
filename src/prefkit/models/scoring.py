"""Write a reward model's scores into a dataset, for inspect and curate to use.

:func:`score_dataset` adds

* ``responses.<prefix>``: the response's reward (the population reward for
  per-annotator heads);
* ``judgments.<prefix>_margin``: ``r_a − r_b``;
* ``judgments.<prefix>_p_a``: the model's P(a ≻ b), annotator-specific where the head
  is (``pal``) and given that the pair is decisive for tie heads;
* ``judgments.<prefix>_agrees``: whether the model's preferred side is the judged
  winner (null for ties),

and records the step in the lineage. ``prefkit inspect`` reads ``responses.reward`` as
a feature of its label-noise model; ``prefkit curate select --margin-from
reward_margin`` and ``prefkit curate filter "reward_agrees"`` use the judgment columns.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from prefkit.dataset import Dataset
from prefkit.errors import PrefkitError
from prefkit.models.data import from_dataset


def _set(table: pa.Table, name: str, values: pa.Array) -> pa.Table:
    if name in table.column_names:
        return table.set_column(table.column_names.index(name), name, values)
    return table.append_column(name, values)


def score_dataset(
    ds: Dataset,
    model: Any,
    *,
    prefix: str = "reward",
    model_path: str | Path | None = None,
    progress: Any = None,
) -> Dataset:
    """``ds`` with reward columns (see the module docstring); ``model`` is a fitted
    :class:`~prefkit.models.reward_model.RewardModel`."""
    if not prefix.isidentifier():
        raise PrefkitError(
            f"column prefix {prefix!r} must be a plain identifier (letters, digits, _)"
        )
    data = from_dataset(ds, prompt_chars=model.prompt_chars)
    x = model.features(data, progress=progress)  # one backbone pass for rewards and pairs
    rewards = model.rewards(data, x=x)
    responses = _set(ds.responses, prefix, pa.array(rewards, pa.float64()))
    tables = {"responses": responses}
    if len(data.pairs):
        p = data.pairs
        prob, _ = model.pair_probs(data, x=x)
        margin = rewards[p.a] - rewards[p.b]
        agrees = pa.array(
            np.where(prob == 0.5, False, (prob > 0.5) == (p.outcome > 0)), mask=p.outcome == 0
        )
        j = ds.judgments
        j = _set(j, f"{prefix}_margin", pa.array(margin, pa.float64()))
        j = _set(j, f"{prefix}_p_a", pa.array(prob, pa.float64()))
        j = _set(j, f"{prefix}_agrees", agrees)
        tables["judgments"] = j
    step = {
        "step": "rm-score",
        "params": {
            "model": str(model_path) if model_path else None,
            "head": model.head_.name,
            "backbone": model.backbone_.config(),
            "prefix": prefix,
        },
    }
    return ds.with_tables(step=step, **tables)


__all__ = ["score_dataset"]
