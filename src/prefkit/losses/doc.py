"""The losses table of ``docs/dpo/losses.md``, generated from the registry.

The doc pastes :func:`losses_table_markdown`'s output; a test checks that it still
matches, so the table can never drift from the code.
"""

from __future__ import annotations

from prefkit.losses.base import Loss, all_losses

# The TRL column: ``sigmoid`` is a DPOTrainer ``loss_type``; ``cpo:simpo`` and ``orpo`` are
# the experimental CPOTrainer (``loss_type="simpo"``) and ORPOTrainer.
_TRL_NAMES = {"cpo:simpo": "CPOTrainer `simpo`", "orpo": "ORPOTrainer"}


def params_text(loss: Loss) -> str:
    if not loss.params:
        return "—"
    return ", ".join(
        f"{k}={p.default:g}" + (f" ∈ {p.domain}" if p.domain else "")
        for k, p in loss.params.items()
    )


def _trl(loss: Loss) -> str:
    if loss.trl is None:
        return "—"
    return _TRL_NAMES.get(loss.trl, f"DPOTrainer `{loss.trl}`")


def kind_text(loss: Loss) -> str:
    return loss.kind + (" (mixin)" if loss.mixin else "")


def losses_table_markdown() -> str:
    """One Markdown table row per registered loss, in registry order."""
    head = [
        "| name | kind | reference? | params (defaults) | paper | TRL 1.16 equivalent |",
        "|---|---|---|---|---|---|",
    ]
    rows = [
        f"| `{loss.name}` | {kind_text(loss)} | {'yes' if loss.reference else 'no'} "
        f"| {params_text(loss)} | {loss.paper.replace('|', '/')} | {_trl(loss)} |"
        for loss in all_losses().values()
    ]
    return "\n".join(head + rows) + "\n"
