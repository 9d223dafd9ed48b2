"""Agreement with TRL 1.16 for every loss both libraries have (tolerance 1e-6, float64).

TRL computes its losses inside trainer methods, so the tests run that exact code on a
minimal fake ``self`` and a fake model whose outputs are laid out so that TRL's
per-sequence log-prob sums (or averages) are our random values; nothing of TRL's
formulas is copied here. Per-example agreement is checked with batches of one, and the
batch mean with the whole (padded, mixed-length) batch.

* DPOTrainer._compute_loss: the fake model returns ``log_probs`` (B_2, T) holding
  ``logp / len`` on each completion position; reference log-probs are "precomputed".
* CPOTrainer / ORPOTrainer.get_batch_loss_metrics: the fake model returns 2-way logits
  whose log-softmax at token 0 (every label) is ``logp / len``, after a one-token prompt.
"""

from __future__ import annotations

import math
import types
from collections import defaultdict
from typing import Any

import pytest
import torch
from losscases import D, pairs

from prefkit.losses.base import PairInputs, all_losses, get

trl = pytest.importorskip("trl")
from trl import DPOTrainer  # noqa: E402
from trl.experimental.cpo import CPOTrainer  # noqa: E402
from trl.experimental.orpo import ORPOTrainer  # noqa: E402

TOL = 1e-6
CPU = types.SimpleNamespace(
    device=torch.device("cpu"), gather_for_metrics=lambda v: v, gather=lambda v: v
)


def take(x: PairInputs, i: int) -> PairInputs:
    return PairInputs(*(None if v is None else v[i : i + 1] for v in x.__dict__.values()))


# ---- DPOTrainer ------------------------------------------------------------------------


def trl_dpo(x: PairInputs, loss_type: str, beta: float, label_smoothing: float = 0.0) -> float:
    """TRL's batch loss for ``x`` (mean over the batch), computed by DPOTrainer itself."""
    logps = torch.cat([x.chosen_logps, x.rejected_logps]).detach()
    lens = torch.cat([x.chosen_len, x.rejected_len]).long()
    n, t = len(lens), int(lens.max())
    pos = torch.arange(t)[None, :]
    on = pos < lens[:, None]
    log_probs = torch.where(on, (logps / lens)[:, None], torch.zeros((), dtype=D))
    completion_mask = torch.cat([torch.zeros(n, 1, dtype=torch.long), on.long()], 1)

    def model(**_: Any) -> types.SimpleNamespace:
        zeros = torch.zeros(n, t, dtype=D)
        return types.SimpleNamespace(
            log_probs=log_probs, entropy=zeros, mean_logits=zeros, is_top1=on
        )

    fake = types.SimpleNamespace(
        model=types.SimpleNamespace(training=False),
        accelerator=CPU,
        loss_types=[loss_type],
        loss_weights=[1.0],
        beta=beta,
        label_smoothing=label_smoothing,
        f_divergence_type="reverse_kl",
        ld_alpha=None,
        precompute_ref_logps=True,
        use_weighting=False,
        aux_loss_enabled=False,
        args=types.SimpleNamespace(),
        _metrics={"train": defaultdict(list), "eval": defaultdict(list)},
        _total_train_tokens=0,
        _tp_size=1,
    )
    inputs = {
        "input_ids": torch.zeros_like(completion_mask),
        "attention_mask": torch.ones_like(completion_mask),
        "completion_mask": completion_mask,
        "ref_chosen_logps": x.ref_chosen_logps,
        "ref_rejected_logps": x.ref_rejected_logps,
    }
    return float(DPOTrainer._compute_loss(fake, model, inputs, return_outputs=False))


DPO_CASES = [
    ("dpo", {"beta": 0.3}, {}),
    ("rdpo", {"beta": 0.3, "eps": 0.2}, {"label_smoothing": 0.2}),
    ("ipo", {"beta": 0.4}, {}),
    ("hinge", {"beta": 0.5}, {}),
    ("dpo_norm", {"beta": 0.7}, {}),
]


def test_cases_cover_every_dpotrainer_equivalent() -> None:
    ours = {n for n, loss in all_losses().items() if loss.trl and ":" not in loss.trl}
    assert ours - {"orpo", "nll"} == {name for name, _, _ in DPO_CASES}
    assert {get(n).trl for n, _, _ in DPO_CASES} <= {
        "sigmoid",
        "robust",
        "ipo",
        "hinge",
        "sigmoid_norm",
    }


@pytest.mark.parametrize(("name", "params", "extra"), DPO_CASES)
def test_dpotrainer_losses(name: str, params: dict[str, float], extra: dict[str, float]) -> None:
    loss = get(name)
    x = pairs(6, seed=21)
    ours = loss.fn(x, **loss.resolve(params))
    assert loss.trl is not None
    for i in range(6):
        theirs = trl_dpo(take(x, i), loss.trl, params["beta"], **extra)
        assert abs(float(ours[i]) - theirs) < TOL
    assert abs(float(ours.mean()) - trl_dpo(x, loss.trl, params["beta"], **extra)) < TOL


def test_nll_matches_trl_sft_per_example_and_for_equal_lengths() -> None:
    loss = get("nll")
    x = pairs(6, seed=22)
    ours = loss.fn(x)
    for i in range(6):
        assert abs(float(ours[i]) - trl_dpo(take(x, i), "sft", 0.1)) < TOL
    equal = PairInputs(
        x.chosen_logps,
        x.rejected_logps,
        x.ref_chosen_logps,
        x.ref_rejected_logps,
        torch.full((6,), 4.0, dtype=D),
        x.rejected_len,
        x.strength,
    )
    assert abs(float(loss.fn(equal).mean()) - trl_dpo(equal, "sft", 0.1)) < TOL
    # with unequal lengths TRL weights examples by their token counts (documented deviation)
    assert len(set(x.chosen_len.tolist())) > 1
    assert abs(float(ours.mean()) - trl_dpo(x, "sft", 0.1)) > 1e-3


# ---- CPOTrainer (SimPO) and ORPOTrainer ----------------------------------------------------


def tokens_batch(x: PairInputs) -> tuple[dict[str, torch.Tensor], Any]:
    """Token batch (one-token prompt + completion, all tokens id 0) and a fake model whose
    log-softmax at token 0 is ``logp / len`` on every completion position."""
    batch: dict[str, torch.Tensor] = {}
    rows = []
    for side, logps, lens in (
        ("chosen", x.chosen_logps, x.chosen_len),
        ("rejected", x.rejected_logps, x.rejected_len),
    ):
        lens_i = lens.long()
        width = int(lens_i.max()) + 1
        pos = torch.arange(width)[None, :]
        real = pos <= lens_i[:, None]
        batch[f"{side}_input_ids"] = torch.zeros(len(lens_i), width, dtype=torch.long)
        batch[f"{side}_attention_mask"] = real.long()
        batch[f"{side}_labels"] = torch.where(real & (pos > 0), 0, -100)
        rows += [(float(v) / int(n), int(n)) for v, n in zip(logps.detach(), lens_i, strict=True)]

    def model(input_ids: torch.Tensor, **_: Any) -> types.SimpleNamespace:
        logits = torch.zeros(*input_ids.shape, 2, dtype=D)
        for r, (per_token, n) in enumerate(rows):
            # log softmax([0, z])[0] = -softplus(z) = per_token  =>  z = log(expm1(-per_token))
            logits[r, :n, 1] = math.log(math.expm1(-per_token))
        return types.SimpleNamespace(logits=logits)

    return batch, model


def trl_cpo(x: PairInputs, beta: float, gamma: float, cpo_alpha: float) -> float:
    fake = types.SimpleNamespace(
        accelerator=CPU,
        is_encoder_decoder=False,
        pad_token_id=0,
        aux_loss_enabled=False,
        loss_type="simpo",
        beta=beta,
        simpo_gamma=gamma,
        label_smoothing=0.0,
        alpha=0.0,
        cpo_alpha=cpo_alpha,
        concatenated_inputs=CPOTrainer.concatenated_inputs,
        get_batch_logps=CPOTrainer.get_batch_logps,
    )
    fake.concatenated_forward = types.MethodType(CPOTrainer.concatenated_forward, fake)
    fake.cpo_loss = types.MethodType(CPOTrainer.cpo_loss, fake)
    batch, model = tokens_batch(x)
    loss, _ = CPOTrainer.get_batch_loss_metrics(fake, model, batch)
    return float(loss)


def trl_orpo(x: PairInputs, beta: float) -> float:
    fake = types.SimpleNamespace(
        accelerator=CPU,
        is_encoder_decoder=False,
        padding_value=0,
        aux_loss_enabled=False,
        beta=beta,
        concatenated_inputs=ORPOTrainer.concatenated_inputs,
        get_batch_logps=ORPOTrainer.get_batch_logps,
    )
    fake.concatenated_forward = types.MethodType(ORPOTrainer.concatenated_forward, fake)
    fake.odds_ratio_loss = types.MethodType(ORPOTrainer.odds_ratio_loss, fake)
    batch, model = tokens_batch(x)
    loss, _ = ORPOTrainer.get_batch_loss_metrics(fake, model, batch)
    return float(loss)


def test_simpo_matches_cpotrainer() -> None:
    loss = get("simpo")
    x = pairs(6, seed=23, reference=False)
    ours = loss.fn(x, beta=2.5, gamma=1.2)
    for i in range(6):
        assert abs(float(ours[i]) - trl_cpo(take(x, i), 2.5, 1.2, 0.0)) < TOL
    assert abs(float(ours.mean()) - trl_cpo(x, 2.5, 1.2, 0.0)) < TOL


def test_simpo_plus_nll_matches_cpo_simpo_with_nll() -> None:
    x = pairs(6, seed=24, reference=False)
    ours = get("simpo").fn(x, beta=2.0, gamma=0.5) + 0.7 * get("nll").fn(x)
    for i in range(6):
        assert abs(float(ours[i]) - trl_cpo(take(x, i), 2.0, 0.5, 0.7)) < TOL


def test_orpo_matches_orpotrainer() -> None:
    loss = get("orpo")
    x = pairs(6, seed=25, reference=False)
    ours = loss.fn(x, lam=0.25)
    for i in range(6):
        assert abs(float(ours[i]) - trl_orpo(take(x, i), 0.25)) < TOL
