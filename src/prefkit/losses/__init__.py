"""Preference-optimisation objectives (the DPO family), in one registry.

Every objective is a pure function of sequence log-probability sums (policy and, for
most, a frozen reference), completion lengths and per-example labels; it returns one
loss per example. Nothing here touches a model: :mod:`prefkit.training.dpo` computes
the log-probs and averages the losses.

The registry (:data:`prefkit.losses.base.LOSSES`, filled by the modules named in
:data:`LOSS_MODULES`) is the only list of loss names: the CLI's ``--loss`` choices, the
docs table and the test parametrisation are derived from it.
"""

from __future__ import annotations

# Modules that register losses when imported (torch is needed to import them).
LOSS_MODULES = ("dpo", "reference_free", "soft", "listwise", "mixins")
