"""Sequence log-probabilities of completions given their prompt: the one shared function.

Every DPO-family loss reads ``log π(y | x) = Σ_t log π(y_t | x, y_<t)`` for each
completion ``y`` of a prompt ``x``. :func:`sequence_logps` computes it for a batch of
*groups* (one prompt, ``K`` completions: ``K = 2`` for a pair) with two savings, both
exact (the tests compare each sequence with an unbatched, unpadded forward within 1e-5):

* **Prefix sharing.** A group is laid out as one row, ``[prompt | completion 1 | ... |
  completion K]`` (:class:`SharedLayout`): every completion attends to the prompt and to
  its own earlier tokens only, and its positions restart after the prompt, so each sees
  exactly what it would see alone. A pair costs ``P + 2C`` token positions instead of
  ``2(P + C)``. The mask is not plain causal: SDPA reads it as a dense boolean mask,
  eager attention as an additive one, FlexAttention as a block-sparse ``BlockMask``.
* **Vocabulary-chunked log-probs.** Only completion positions are projected through the
  LM head, a slice of tokens at a time (:class:`ChunkedTokenLogps`): full-vocabulary
  logits are never held for the whole batch, in the forward or the backward pass
  (Liger-Kernel's fused linear cross-entropy does the same, Hsu et al. 2024,
  arXiv:2410.10989; this is a plain-PyTorch version).

Models whose LM head is not a plain linear layer, or that scale or soft-cap their logits,
go through the head in one piece with the model's scaling applied (still prefix-shared).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from prefkit.errors import PrefkitError

LOGITS_BUDGET = 1 << 30  # bytes of fp32 logits held at once by the chunked LM head


@dataclass
class GroupBatch:
    """Padded token ids for ``B`` groups of one prompt and ``K`` completions.

    Prompts are left-padded (``prompt_ids`` ``(B, P)``), completions right-padded
    (``completion_ids`` ``(B, K, C)``); the masks are 1 on real tokens.
    """

    prompt_ids: Tensor
    prompt_mask: Tensor
    completion_ids: Tensor
    completion_mask: Tensor

    def to(self, device: torch.device | str) -> GroupBatch:
        return GroupBatch(*(t.to(device, non_blocking=True) for t in self.tensors()))

    def tensors(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        return (self.prompt_ids, self.prompt_mask, self.completion_ids, self.completion_mask)

    @property
    def lengths(self) -> Tensor:
        """Completion token counts, ``(B, K)``."""
        return self.completion_mask.sum(-1)

    def tokens(self, *, shared: bool = True) -> int:
        """Real token positions: the prompt once per group when ``shared``, else once per
        (non-empty) completion, as TRL counts them; plus every completion token."""
        present = (self.completion_mask.sum(-1) > 0).sum(-1)
        prompts = self.prompt_mask.sum(-1) * (1 if shared else present)
        return int(prompts.sum()) + int(self.completion_mask.sum())


def collate(
    prompts: Sequence[Sequence[int]],
    completions: Sequence[Sequence[Sequence[int]]],
    pad_id: int,
    *,
    pad_to_multiple_of: int = 1,
) -> GroupBatch:
    """Pad a list of groups into a :class:`GroupBatch` (groups with fewer completions
    than the largest get empty, fully masked ones)."""
    b = len(prompts)
    k = max(len(c) for c in completions)

    def up(n: int) -> int:
        return -(-max(n, 1) // pad_to_multiple_of) * pad_to_multiple_of

    p = up(max(len(x) for x in prompts))
    c = up(max(len(y) for g in completions for y in g))
    pid = torch.full((b, p), pad_id, dtype=torch.long)
    pm = torch.zeros((b, p), dtype=torch.long)
    cid = torch.full((b, k, c), pad_id, dtype=torch.long)
    cm = torch.zeros((b, k, c), dtype=torch.long)
    for i, (x, g) in enumerate(zip(prompts, completions, strict=True)):
        if len(x):
            pid[i, p - len(x) :] = torch.as_tensor(x, dtype=torch.long)
            pm[i, p - len(x) :] = 1
        for j, y in enumerate(g):
            if len(y):
                cid[i, j, : len(y)] = torch.as_tensor(y, dtype=torch.long)
                cm[i, j, : len(y)] = 1
    return GroupBatch(pid, pm, cid, cm)


# --- the chunked LM head --------------------------------------------------------------------
def _compute_dtype(h: Tensor) -> torch.dtype:
    dev = h.device.type
    if torch.is_autocast_enabled(dev):
        return torch.get_autocast_dtype(dev)
    return h.dtype


def _lse_and_pick(logits: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """fp32 log-sum-exp of each row and the target's logit (one pass when compiled)."""
    x = logits.float()
    return torch.logsumexp(x, dim=-1), x.gather(1, target[:, None])[:, 0]


def _grad_logits(logits: Tensor, lse: Tensor, target: Tensor, g: Tensor) -> Tensor:
    """``g * (onehot(target) - softmax(logits))`` in the logits' dtype."""
    d = torch.exp(logits.float() - lse[:, None]) * -g[:, None]
    return d.scatter_add(1, target[:, None], g[:, None]).to(logits.dtype)


_COMPILED: dict[str, Any] = {}


def _kernels(device: torch.device) -> tuple[Any, Any]:
    """The two element-wise steps, fused by ``torch.compile`` on CUDA (each is otherwise
    several passes over a chunk of fp32 logits); eager elsewhere or with
    ``PREFKIT_COMPILE=0``."""
    if device.type != "cuda" or os.environ.get("PREFKIT_COMPILE", "1") == "0":
        return _lse_and_pick, _grad_logits
    if not _COMPILED:
        _COMPILED["pick"] = torch.compile(_lse_and_pick, dynamic=True)
        _COMPILED["grad"] = torch.compile(_grad_logits, dynamic=True)
    return _COMPILED["pick"], _COMPILED["grad"]


class ChunkedTokenLogps(torch.autograd.Function):
    """``log softmax(h W^T + b)[target]`` for ``N`` positions, ``chunk`` positions at a time.

    Forward keeps only the ``N`` log-sum-exps; backward recomputes each chunk's logits
    and forms ``dL/dlogits = g (onehot - softmax)``, so peak extra memory is one chunk of
    logits. Log-sum-exp and softmax are fp32; the matmuls run in the compute dtype (the
    autocast dtype when autocast is on).
    """

    @staticmethod
    def forward(
        ctx: Any, h: Tensor, weight: Tensor, bias: Tensor | None, target: Tensor, chunk: int
    ) -> Tensor:
        dtype = _compute_dtype(h)
        pick, _ = _kernels(h.device)
        w = weight.to(dtype)
        n = h.shape[0]
        out = torch.empty(n, dtype=torch.float32, device=h.device)
        lse = torch.empty(n, dtype=torch.float32, device=h.device)
        for s in range(0, n, chunk):
            logits = h[s : s + chunk].to(dtype) @ w.T
            if bias is not None:
                logits = logits + bias.to(dtype)
            lse[s : s + chunk], out[s : s + chunk] = pick(logits, target[s : s + chunk])
        out -= lse
        ctx.save_for_backward(h, weight, bias, target, lse)
        ctx.chunk, ctx.dtype = chunk, dtype
        return out

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> tuple[Tensor | None, ...]:
        h, weight, bias, target, lse = ctx.saved_tensors
        dtype, chunk = ctx.dtype, ctx.chunk
        _, grad_logits = _kernels(h.device)
        w = weight.to(dtype)
        need_h, need_w, need_b = ctx.needs_input_grad[:3]
        grad_h = torch.empty_like(h) if need_h else None
        grad_w = torch.zeros(weight.shape, dtype=torch.float32, device=h.device) if need_w else None
        grad_b = (
            torch.zeros(weight.shape[0], dtype=torch.float32, device=h.device) if need_b else None
        )
        g = g.float().contiguous()
        for s in range(0, h.shape[0], chunk):
            hc = h[s : s + chunk].to(dtype)
            logits = hc @ w.T
            if bias is not None:
                logits = logits + bias.to(dtype)
            d = grad_logits(logits, lse[s : s + chunk], target[s : s + chunk], g[s : s + chunk])
            if grad_b is not None:
                grad_b += d.float().sum(0)
            if grad_h is not None:
                grad_h[s : s + chunk] = (d @ w).to(h.dtype)
            if grad_w is not None:
                grad_w += (d.T @ hc).float()
        return (
            grad_h,
            None if grad_w is None else grad_w.to(weight.dtype),
            None if grad_b is None else grad_b.to(bias.dtype),
            None,
            None,
        )


def _text_config(model: Any) -> Any:
    cfg = model.config
    return cfg.get_text_config() if hasattr(cfg, "get_text_config") else cfg


def _logit_transform(model: Any) -> Any:
    """The scaling some models apply to their LM head's output (None when plain), as
    transformers applies it: Cohere multiplies by ``logit_scale``, Granite divides by
    ``logits_scaling``, ``output_multiplier`` multiplies, Gemma 2 soft-caps."""
    cfg = _text_config(model)
    scale = 1.0
    if getattr(cfg, "logit_scale", None) is not None:
        scale *= float(cfg.logit_scale)
    if getattr(cfg, "output_multiplier", None) is not None:
        scale *= float(cfg.output_multiplier)
    if getattr(cfg, "logits_scaling", None) is not None:
        scale /= float(cfg.logits_scaling)
    cap = getattr(cfg, "final_logit_softcapping", None)
    if scale == 1.0 and not cap:
        return None

    def transform(logits: Tensor) -> Tensor:
        logits = logits * scale
        return torch.tanh(logits / cap) * cap if cap else logits

    return transform


def _plain_head(model: Any) -> nn.Linear | None:
    """The LM head when the chunked path computes exactly the model's logits, else None."""
    head = model.get_output_embeddings()
    if type(head) is nn.Linear and _logit_transform(model) is None:
        return head
    return None


def token_logps(
    model: Any, hidden: Tensor, target: Tensor, *, budget: int = LOGITS_BUDGET
) -> Tensor:
    """Log-probs of ``target`` (``(N,)``) at hidden states ``hidden`` (``(N, H)``)."""
    head = _plain_head(model)
    if head is None:
        logits = model.get_output_embeddings()(hidden).float()
        transform = _logit_transform(model)
        if transform is not None:
            logits = transform(logits)
        return torch.log_softmax(logits, -1).gather(1, target[:, None])[:, 0]
    chunk = max(1, budget // (4 * head.out_features))
    out: Tensor = ChunkedTokenLogps.apply(hidden, head.weight, head.bias, target, chunk)
    return out


# --- the transformer ------------------------------------------------------------------------
@contextmanager
def eval_mode(*models: nn.Module) -> Iterator[None]:
    """Put ``models`` in eval mode for the block, restoring each one's mode after."""
    modes = [m.training for m in models]
    try:
        for m in models:
            m.eval()
        yield
    finally:
        for m, mode in zip(models, modes, strict=True):
            m.train(mode)


def base_model(model: Any) -> Any:
    """The transformers model under any PEFT wrapper."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def backbone(model: Any) -> nn.Module:
    """The transformer body of a causal LM (under any PEFT wrapper), without the LM head."""
    base = base_model(model)
    body: nn.Module = getattr(base, base.base_model_prefix)
    return body


def _positions(mask: Tensor) -> Tensor:
    return (mask.cumsum(-1) - 1).clamp_(min=0)


@dataclass
class SharedLayout:
    """One row per group: ``[prompt | completion 1 | ... | completion K | pad]``.

    ``segment`` is 0 on prompt tokens, ``k + 1`` on completion ``k``, -1 on padding;
    ``position_ids`` restart after the prompt for every completion, and ``source``
    ``(B, K, C)`` is the row index whose state predicts completion token ``t`` (the last
    prompt token for ``t = 0``).
    """

    input_ids: Tensor
    position_ids: Tensor
    segment: Tensor
    source: Tensor

    def dense_mask(self) -> Tensor:
        """``(B, 1, L, L)`` bool: causal, prompt visible to all, completions to themselves."""
        seg = self.segment
        q, kv = seg[:, :, None], seg[:, None, :]
        n = seg.shape[1]
        idx = torch.arange(n, device=seg.device)
        causal = idx[:, None] >= idx[None, :]
        allowed = causal & (kv >= 0) & (q >= 0) & ((kv == 0) | (kv == q))
        return (allowed | torch.eye(n, dtype=torch.bool, device=seg.device))[:, None]

    def block_mask(self) -> Any:
        """The same mask as a FlexAttention ``BlockMask`` (block-sparse, for CUDA)."""
        from torch.nn.attention.flex_attention import create_block_mask

        seg = self.segment

        def mask_mod(b: Tensor, h: Tensor, q: Tensor, kv: Tensor) -> Tensor:
            sq, sk = seg[b, q], seg[b, kv]
            ok = (q >= kv) & (sk >= 0) & (sq >= 0) & ((sk == 0) | (sk == sq))
            return ok | (q == kv)

        b, n = seg.shape
        return create_block_mask(mask_mod, b, None, n, n, device=seg.device)


def shared_layout(batch: GroupBatch, multiple: int = 1) -> SharedLayout:
    """Lay each group out as one row (see :class:`SharedLayout`), vectorised; rows are
    padded to a multiple of ``multiple`` (fewer distinct shapes for compiled kernels)."""
    pid, pm, cid, cm = batch.tensors()
    b, k, c = cid.shape
    p = pid.shape[1]
    dev = cid.device
    plen = pm.sum(-1)  # (B,)
    clen = cm.sum(-1)  # (B, K)
    start = plen[:, None] + torch.cumsum(clen, -1) - clen  # row index of each completion's start
    n = -(-int((plen + clen.sum(-1)).max()) // multiple) * multiple
    ids = torch.zeros((b, n), dtype=cid.dtype, device=dev)
    pos = torch.zeros((b, n), dtype=torch.long, device=dev)
    seg = torch.full((b, n), -1, dtype=torch.long, device=dev)
    rows = torch.arange(b, device=dev)
    # prompt token i (left-padded) goes to index i - (P - plen)
    pcol = torch.arange(p, device=dev)[None, :] - (p - plen)[:, None]
    pr, pc = rows[:, None].expand(b, p)[pm.bool()], pcol[pm.bool()]
    ids[pr, pc] = pid[pm.bool()]
    pos[pr, pc] = pc
    seg[pr, pc] = 0
    t = torch.arange(c, device=dev)
    ccol = start[:, :, None] + t  # (B, K, C)
    real = cm.bool()
    cr = rows[:, None, None].expand(b, k, c)[real]
    cc = ccol[real]
    ids[cr, cc] = cid[real]
    pos[cr, cc] = (plen[:, None, None] + t).expand(b, k, c)[real]
    seg[cr, cc] = (torch.arange(k, device=dev)[None, :, None] + 1).expand(b, k, c)[real]
    source = torch.where(t == 0, (plen - 1)[:, None, None], ccol - 1)
    return SharedLayout(ids, pos, seg, source.clamp(0, n - 1))


def shared_mask(model: Any, lay: SharedLayout) -> Any:
    """The shared-prompt mask in the form the model's attention kernel reads."""
    impl = getattr(model.config, "_attn_implementation", None) or "eager"
    if impl == "flex_attention":
        return lay.block_mask()
    if impl == "sdpa":
        return lay.dense_mask()
    if impl == "eager":  # eager attention adds the mask to the scores
        return torch.zeros(lay.dense_mask().shape, device=lay.segment.device).masked_fill_(
            ~lay.dense_mask(), torch.finfo(torch.float32).min
        )
    raise PrefkitError(
        f"sharing the prompt needs sdpa, eager or flex attention; the model uses {impl!r}: "
        "pass --attention sdpa, or --no-share-prompt"
    )


def sequence_logps(
    model: nn.Module, batch: GroupBatch, *, share_prompt: bool = True, budget: int = LOGITS_BUDGET
) -> Tensor:
    """Summed completion log-probs, ``(B, K)`` float32 (0 for empty completions).

    ``share_prompt=False`` runs each prompt + completion as its own row (the naive
    path, for attention kernels that take no custom mask and for the tests).
    """
    body = backbone(model)
    pid, pm, cid, cm = batch.tensors()
    b, k, c = cid.shape
    p = pid.shape[1]
    if share_prompt:
        flex = getattr(model.config, "_attn_implementation", None) == "flex_attention"
        lay = shared_layout(batch, multiple=128 if flex else 1)
        mask = shared_mask(model, lay)
        hid = body(
            input_ids=lay.input_ids,
            attention_mask=mask,
            position_ids=lay.position_ids,
            use_cache=False,
        ).last_hidden_state
        src = lay.source.reshape(b, k * c)
        pred = hid.gather(1, src[:, :, None].expand(b, k * c, hid.shape[-1])).reshape(b * k, c, -1)
    else:
        ids = torch.cat([pid.repeat_interleave(k, 0), cid.reshape(b * k, c)], dim=1)
        mask = torch.cat([pm.repeat_interleave(k, 0), cm.reshape(b * k, c)], dim=1)
        hid = body(
            input_ids=ids, attention_mask=mask, position_ids=_positions(mask), use_cache=False
        )
        pred = hid.last_hidden_state[:, p - 1 : p + c - 1]
    flat = cm.reshape(b * k, c).bool()
    lp = token_logps(model, pred[flat], cid.reshape(b * k, c)[flat], budget=budget)
    sums = torch.zeros(b * k, dtype=torch.float32, device=lp.device)
    rows = torch.arange(b * k, device=lp.device)[:, None].expand(b * k, c)[flat]
    sums = sums.index_add(0, rows, lp)
    return sums.reshape(b, k)
