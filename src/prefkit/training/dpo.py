"""The DPO-family trainer: one explicit loop over groups of completions.

Each optimizer step reads ``batch_size`` groups (a pair is a group of two completions),
split into micro-batches of ``micro_batch_size`` whose gradients are accumulated; the
loss of a step is the mean per-example loss over its groups whatever the split, so
``1 x 8`` and ``8 x 1`` take the same step. The policy's log-probs come from
:func:`prefkit.training.logprobs.sequence_logps` (prompt shared by its completions,
LM head chunked over the vocabulary); the reference's are computed once before training
(or read from :class:`~prefkit.training.refcache.RefCache`, in which case the reference
model is never loaded) — with no ``reference`` given, the policy's own starting weights
are the reference, so no second model is held in memory.

Curriculum (Curry-DPO, Pattnaik et al. 2024, arXiv:2403.07230): when the groups carry a
``stage`` (from ``prefkit curate ... curriculum``) the stages are trained one after the
other, ``epochs`` passes each; ``refresh_reference`` makes the policy at the start of a
stage the reference for that stage, as in the paper's iterative variant.

Checkpoints (``save_every``) hold the model, optimizer, scheduler, RNG states and the
position in the data plan (Accelerate's ``save_state``), so a resumed run takes exactly
the steps the uninterrupted run would have taken. Accelerate runs the same loop on
several GPUs (``accelerate launch``); each process reads its share of every batch.
"""

from __future__ import annotations

import json
import math
import shutil
import time
import warnings
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from prefkit.errors import PrefkitError
from prefkit.losses.base import ListInputs, Loss, PairInputs
from prefkit.losses.dpo import margin
from prefkit.models.finetune import quiet_transformers
from prefkit.training.dpo_config import DPOConfig
from prefkit.training.groups import Groups
from prefkit.training.logprobs import (
    LOGITS_BUDGET,
    GroupBatch,
    backbone,
    base_model,
    collate,
    eval_mode,
    sequence_logps,
)
from prefkit.training.refcache import RefCache, model_identity

# Settings a resumed run may change without leaving the checkpoint's trajectory.
RESUME_FREE = {"resume", "save_every", "eval_every", "output_dir", "ref_cache_dir", "kl_samples"}


# --- the model side --------------------------------------------------------------------------
class PolicyScorer(nn.Module):
    """Wraps a causal LM so that one ``forward`` returns summed completion log-probs.

    Going through one module keeps the prefix-shared, chunked computation inside the
    forward that Accelerate wraps (DDP gradient sync, autocast).
    """

    def __init__(self, lm: nn.Module, *, share_prompt: bool = True, budget: int = LOGITS_BUDGET):
        super().__init__()
        self.lm = lm
        self.share_prompt = share_prompt
        self.budget = budget

    def forward(self, pid: Tensor, pm: Tensor, cid: Tensor, cm: Tensor) -> Tensor:
        return sequence_logps(
            self.lm,
            GroupBatch(pid, pm, cid, cm),
            share_prompt=self.share_prompt,
            budget=self.budget,
        )


def load_tokenizer(config: DPOConfig) -> Any:
    from transformers import AutoTokenizer

    try:
        with quiet_transformers():
            return AutoTokenizer.from_pretrained(config.model)
    except OSError as e:
        raise PrefkitError(
            f"train dpo: cannot load the tokenizer of {config.model!r}: {e}"
        ) from None


def load_lm(name: str) -> Any:
    """A causal LM in fp32 (a local path or hub id); a clear error when it cannot load."""
    from transformers import AutoModelForCausalLM

    try:
        with quiet_transformers():
            return AutoModelForCausalLM.from_pretrained(name, dtype=torch.float32)
    except OSError as e:
        raise PrefkitError(f"train dpo: cannot load model {name!r}: {e}") from None


def load_policy(config: DPOConfig) -> Any:
    """The policy, with LoRA adapters when ``lora_r`` (seeded)."""
    torch.manual_seed(config.seed)
    model = load_lm(config.model)
    if config.lora_r:
        from peft import LoraConfig, get_peft_model

        t = config.lora_targets
        targets = t if t == "all-linear" else [x.strip() for x in t.split(",") if x.strip()]
        try:
            model = get_peft_model(
                model,
                LoraConfig(
                    r=config.lora_r,
                    lora_alpha=config.lora_alpha,
                    lora_dropout=config.lora_dropout,
                    target_modules=targets,
                    task_type="CAUSAL_LM",
                ),
            )
        except ValueError as e:
            raise PrefkitError(f"train dpo --lora-targets {t!r}: {e}") from None
    return model


def set_attention(model: Any, mode: str) -> str:
    """Switch the model's attention kernel (``model`` keeps its own); returns the one in use.

    With shared prompts the mask is not plain causal: ``sdpa`` reads it as a dense
    boolean mask, ``flex`` as a block-sparse FlexAttention mask (compiled on first use).
    """
    base = base_model(model)
    if mode != "model":
        base.set_attn_implementation({"flex": "flex_attention", "sdpa": "sdpa"}[mode])
    return str(base.config._attn_implementation)


def compile_layers(model: nn.Module) -> int:
    """``torch.compile`` every decoder layer in place (they share one compiled graph, as
    they are the same code); returns how many. The prompt-sharing layout and the
    vocabulary-chunked head stay outside the compiled region."""

    body = backbone(model)
    n = getattr(model.config, "num_hidden_layers", None)
    layers = next(
        (m for m in body.children() if isinstance(m, nn.ModuleList) and (n is None or len(m) == n)),
        None,
    )
    if layers is None:
        raise PrefkitError("train dpo --compile: cannot find the model's decoder layers")
    for layer in layers:
        layer.compile()
    return len(layers)


def pad_id(tokenizer: Any) -> int:
    for name in ("pad_token_id", "eos_token_id"):
        v = getattr(tokenizer, name, None)
        if v is not None:
            return int(v)
    return 0


@torch.no_grad()
def groups_logps(
    scorer: nn.Module,
    groups: Groups,
    *,
    batch_size: int,
    pad: int,
    device: torch.device,
    autocast: Callable[[], Any] | None = None,
) -> np.ndarray:
    """Summed log-probs ``(N, K)`` of every completion (NaN where a list has fewer)."""
    k = max(len(c) for c in groups.completion_ids) if len(groups) else 2
    out = np.full((len(groups), k), np.nan)
    with eval_mode(scorer):
        for s in range(0, len(groups), batch_size):
            sl = range(s, min(s + batch_size, len(groups)))
            b = collate(
                [groups.prompt_ids[i] for i in sl], [groups.completion_ids[i] for i in sl], pad
            )
            with autocast() if autocast else nullcontext():
                lp = scorer(*b.to(device).tensors()).double().cpu().numpy()
            kk = lp.shape[1]
            mask = b.completion_mask.sum(-1).numpy() > 0
            out[s : s + len(sl), :kk] = np.where(mask, lp, np.nan)
    return out


# --- the loss of a batch ---------------------------------------------------------------------
def batch_inputs(
    logps: Tensor,
    ref: Tensor | None,
    batch: GroupBatch,
    groups: Groups,
    rows: list[int],
    listwise: bool,
) -> PairInputs | ListInputs:
    lengths = batch.lengths.to(logps.dtype)
    if listwise:
        assert groups.scores is not None
        k = logps.shape[1]
        scores = torch.full((len(rows), k), -math.inf, dtype=logps.dtype, device=logps.device)
        for j, i in enumerate(rows):
            s = groups.scores[i]
            scores[j, : len(s)] = torch.as_tensor(s, dtype=logps.dtype)
        mask = batch.completion_mask.sum(-1) > 0
        return ListInputs(logps, ref, lengths.clamp(min=1), scores.masked_fill(~mask, 0.0), mask)
    strength = torch.as_tensor(groups.strength[rows], dtype=logps.dtype, device=logps.device)
    return PairInputs(
        logps[:, 0],
        logps[:, 1],
        None if ref is None else ref[:, 0],
        None if ref is None else ref[:, 1],
        lengths[:, 0],
        lengths[:, 1],
        strength,
    )


def per_example_loss(
    x: PairInputs | ListInputs,
    main: Loss,
    params: dict[str, float],
    mixes: list[tuple[Loss, float, dict[str, float]]],
) -> Tensor:
    """The main loss plus the weighted mix-ins (see :meth:`DPOConfig.objective`)."""
    out = main.fn(x, **params)
    for m, w, mp in mixes:
        out = out + w * m.fn(x, **mp)
    return out


# --- the plan: which rows each step reads ------------------------------------------------------
def stage_order(stages: np.ndarray, use: bool) -> list[int]:
    """Stages in training order (1, 2, ... then unstaged rows, stage 0, last)."""
    present = sorted(set(int(s) for s in stages))
    if not use or present == [0]:
        return [-1]  # one pass over everything
    return [s for s in present if s > 0] + ([0] if 0 in present else [])


def plan(groups: Groups, config: DPOConfig) -> list[tuple[int, int, list[int]]]:
    """Every optimizer step as (stage, epoch, rows), deterministic in the seed."""
    steps = []
    for stage in stage_order(groups.stage, config.stages):
        rows = np.arange(len(groups)) if stage == -1 else np.flatnonzero(groups.stage == stage)
        for epoch in range(config.epochs):
            rng = np.random.default_rng([config.seed, stage + 1, epoch])
            order = rows[rng.permutation(len(rows))] if config.shuffle else rows
            for s in range(0, len(order), config.batch_size):
                steps.append((stage, epoch, order[s : s + config.batch_size].tolist()))
    if config.max_steps:
        steps = steps[: config.max_steps]
    return steps


# --- the trainer -----------------------------------------------------------------------------
@dataclass
class StepLog:
    step: int
    stage: int
    epoch: int
    loss: float
    lr: float
    grad_norm: float
    reward_accuracy: float
    reward_margin: float
    tokens: int
    seconds: float


Progress = Callable[[int, int, dict[str, float]], None]


class DPOTrainer:
    """Train a causal LM on preference groups with one DPO-family objective.

    Follows the scikit-learn contract: settings in ``config``; :meth:`fit` returns
    ``self``; learned state in ``model_``, ``history_`` (one :class:`StepLog` per step)
    and ``evals_`` (one metrics dict per evaluation).
    """

    def __init__(
        self,
        config: DPOConfig,
        *,
        model: nn.Module | None = None,
        tokenizer: Any = None,
        progress: Progress | None = None,
    ):
        self.config = config
        self.model = model
        self.tokenizer = tokenizer
        self.progress = progress

    # -- set-up -------------------------------------------------------------------------------
    def _setup(self) -> None:
        from accelerate import Accelerator

        cfg = self.config
        precision = cfg.precision
        if precision == "auto":
            precision = (
                "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"
            )
        self.precision = precision
        # Every process runs every global step, so the scheduler steps once per step (not
        # once per process, Accelerate's default for per-process batches).
        self.accelerator = Accelerator(
            mixed_precision=precision,
            cpu=not torch.cuda.is_available(),
            step_scheduler_with_optimizer=False,
        )
        if self.model is None:
            self.model = load_policy(cfg)
            if self.tokenizer is None:
                self.tokenizer = load_tokenizer(cfg)
        self.pad = pad_id(self.tokenizer) if self.tokenizer is not None else 0
        self.attention_ = set_attention(self.model, cfg.attention)
        if cfg.compile:
            compile_layers(self.model)
        self.main, self.params, self.mixes = cfg.objective()

    def _autocast(self) -> Any:
        return self.accelerator.autocast()

    # -- reference log-probs ------------------------------------------------------------------
    def reference_logps(self, groups: Groups, scorer: nn.Module) -> tuple[np.ndarray | None, str]:
        """Reference log-probs of ``groups`` from the cache, the starting policy or the
        ``reference`` model, and where they came from ("cache", "policy", "reference")."""
        cfg = self.config
        if not self.main.reference or not len(groups):
            return None, "none"
        ident = model_identity(cfg.reference or cfg.model) if (cfg.reference or cfg.model) else ""
        cache = RefCache(cfg.ref_cache_dir) if ident else None
        key = RefCache.key(groups, ident, self.precision) if cache else ""
        if cache is not None:
            hit = cache.get(key, len(groups))
            if hit is not None:
                return hit, "cache"
        if cfg.reference:
            ref = load_lm(cfg.reference)
            set_attention(ref, cfg.attention)
            ref_scorer: nn.Module = PolicyScorer(ref, share_prompt=cfg.share_prompt).to(
                self.accelerator.device
            )
            source = "reference"
        else:
            if getattr(self, "_resumed", False):
                # the policy has trained: it is no longer the reference
                raise PrefkitError(
                    "train dpo --resume: the checkpoint lacks reference log-probs and the cache "
                    "misses; start again or pass --reference"
                )
            ref_scorer, source = scorer, "policy"
        vals = self._logps(groups, ref_scorer)
        if cache is not None and self.accelerator.is_main_process:
            cache.put(key, vals)
        return vals, source

    # -- the loop -----------------------------------------------------------------------------
    def fit(self, train: Groups, eval_groups: Groups | None = None) -> DPOTrainer:
        cfg = self.config
        self._setup()
        if not len(train):
            raise PrefkitError("train dpo: no training examples left")
        if self.main.kind == "lists" and not train.listwise:
            raise PrefkitError(f"loss {cfg.loss!r} reads ranked lists; the data gives pairs")
        if self.main.kind == "pairs" and train.listwise:
            raise PrefkitError(f"loss {cfg.loss!r} reads pairs; the data gives ranked lists")
        if any(lo.reads_strength for lo in (self.main, *(m for m, _, _ in self.mixes))):
            s = train.strength
            if np.any((s < 0) | (s > 1) | np.isnan(s)):
                raise PrefkitError(
                    f"loss {cfg.loss!r} reads strength as a preference probability, but the "
                    f"data's strength runs from {np.nanmin(s):g} to {np.nanmax(s):g} (tier gaps "
                    "or rating margins?): use a loss that does not read it"
                )
        acc = self.accelerator
        out = Path(cfg.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        assert self.model is not None
        scorer = PolicyScorer(self.model, share_prompt=cfg.share_prompt)
        scorer.to(acc.device)
        steps = plan(train, cfg)
        params = [p for p in scorer.parameters() if p.requires_grad]
        optim = torch.optim.AdamW(
            params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=acc.device.type == "cuda"
        )
        from transformers import get_scheduler

        sched = get_scheduler(
            cfg.scheduler, optim, num_warmup_steps=cfg.warmup_steps, num_training_steps=len(steps)
        )
        scorer, optim, sched = acc.prepare(scorer, optim, sched)
        self._scorer = scorer
        ckpt = out / "checkpoint"
        start = 0
        self.history_: list[StepLog] = []
        self.evals_: list[dict[str, Any]] = []
        refs: dict[int, np.ndarray | None] = {}  # refresh_reference: per stage
        self.ref_source_: dict[str, str] = {}
        old = ckpt.with_name(ckpt.name + ".old")
        if cfg.resume and not ckpt.exists() and old.exists():
            old.rename(ckpt)  # a save was interrupted between its two renames
        self._resumed = False
        if cfg.resume and (ckpt / "state.json").exists():
            state = json.loads((ckpt / "state.json").read_text())
            changed = sorted(
                k
                for k, v in state["config"].items()
                if k not in RESUME_FREE and getattr(cfg, k, v) != v
            )
            if changed:
                warnings.warn(
                    f"train dpo --resume: {', '.join(changed)} differ from the checkpoint's run; "
                    "the resumed run will not match an uninterrupted one",
                    stacklevel=2,
                )
            acc.load_state(str(ckpt))
            start = int(state["step"])
            self._resumed = True
            self.history_ = [StepLog(**h) for h in state["history"]]
            self.evals_ = state["evals"]
            for f in ckpt.glob("ref-stage*.npy"):
                refs[int(f.stem.removeprefix("ref-stage"))] = np.load(f)
            self._write_metrics(out / "metrics.jsonl")
        elif cfg.resume:
            raise PrefkitError(f"train dpo --resume: no checkpoint in {ckpt}")
        shared = None
        t_ref = time.perf_counter()
        if not cfg.refresh_reference:
            if start and (ckpt / "ref-shared.npy").exists():
                shared, self.ref_source_["train"] = np.load(ckpt / "ref-shared.npy"), "checkpoint"
            else:
                shared, self.ref_source_["train"] = self.reference_logps(train, scorer)
        self._shared_ref = shared
        eval_ref = None
        if eval_groups is not None and len(eval_groups):
            if start and (ckpt / "ref-eval.npy").exists():
                eval_ref, self.ref_source_["eval"] = np.load(ckpt / "ref-eval.npy"), "checkpoint"
            else:
                eval_ref, self.ref_source_["eval"] = self.reference_logps(eval_groups, scorer)
        self._eval_ref = eval_ref
        self.reference_seconds_ = time.perf_counter() - t_ref
        metrics_path = out / "metrics.jsonl"
        if start == 0 and metrics_path.exists():
            metrics_path.unlink()
        world, rank = acc.num_processes, acc.process_index
        t_start = time.perf_counter()
        prev_stage = steps[start - 1][0] if start else None
        for i in range(start, len(steps)):
            stage, epoch, rows = steps[i]
            if prev_stage is not None and stage != prev_stage and (cfg.eval_every == 0):
                self._evaluate(eval_groups, eval_ref, i, prev_stage)
            if cfg.refresh_reference and stage not in refs:
                refs[stage] = self._stage_reference(train, stage, scorer, first=i == 0)
            ref = refs[stage] if cfg.refresh_reference else shared
            prev_stage = stage
            t0 = time.perf_counter()
            log = self._step(scorer, optim, sched, train, ref, rows, rank, world)
            log.update(step=i + 1, stage=stage, epoch=epoch, seconds=time.perf_counter() - t0)
            entry = StepLog(**log)
            self.history_.append(entry)
            if acc.is_main_process:
                with metrics_path.open("a") as fh:
                    fh.write(json.dumps(asdict(entry)) + "\n")
            if self.progress:
                self.progress(i + 1, len(steps), {"loss": entry.loss, "acc": entry.reward_accuracy})
            if cfg.eval_every and (i + 1) % cfg.eval_every == 0:
                self._evaluate(eval_groups, eval_ref, i + 1, stage)
            if cfg.save_every and (i + 1) % cfg.save_every == 0 and i + 1 < len(steps):
                self._save_checkpoint(ckpt, i + 1, refs)
        if not (cfg.eval_every and len(steps) % cfg.eval_every == 0):  # else just evaluated
            self._evaluate(eval_groups, eval_ref, len(steps), steps[-1][0] if steps else -1)
        self.train_seconds_ = time.perf_counter() - t_start
        self.model_ = acc.unwrap_model(scorer).lm
        return self

    def _stage_reference(
        self, train: Groups, stage: int, scorer: nn.Module, *, first: bool
    ) -> np.ndarray | None:
        """The reference for one stage when refreshing: the configured reference for the
        first stage, the current policy for later ones (rows of other stages are NaN)."""
        rows = np.arange(len(train)) if stage == -1 else np.flatnonzero(train.stage == stage)
        sub = train.select(rows)
        if first:
            vals, self.ref_source_["train"] = self.reference_logps(sub, scorer)
        else:
            vals = self._logps(sub, scorer)
        if vals is None:
            return None
        full = np.full((len(train), vals.shape[1]), np.nan)
        full[rows] = vals
        return full

    def _logps(self, groups: Groups, scorer: nn.Module) -> np.ndarray:
        """Summed log-probs of ``groups`` under ``scorer`` (eval mode, no gradient)."""
        return groups_logps(
            scorer,
            groups,
            batch_size=self.config.micro,
            pad=self.pad,
            device=self.accelerator.device,
            autocast=self._autocast,
        )

    def _step(
        self,
        scorer: nn.Module,
        optim: Any,
        sched: Any,
        groups: Groups,
        ref: np.ndarray | None,
        rows: list[int],
        rank: int,
        world: int,
    ) -> dict[str, Any]:
        cfg, acc = self.config, self.accelerator
        n_global = len(rows)
        mine = rows[rank::world]
        # A process with no rows in a short last batch still runs one forward/backward,
        # weighted 0, so that DDP's gradient all-reduce sees every process.
        weight = 1.0 if mine else 0.0
        mine = mine or rows[:1]
        micro = cfg.micro
        chunks = [mine[s : s + micro] for s in range(0, len(mine), micro)]
        # Running sums stay on the device: one host sync per step, at the end.
        stats = torch.zeros(3, dtype=torch.float64, device=acc.device)  # loss, correct, margin
        tokens = 0
        beta = self.params.get("beta", 1.0)
        for j, part in enumerate(chunks):
            b = collate(
                [groups.prompt_ids[i] for i in part],
                [groups.completion_ids[i] for i in part],
                self.pad,
            )
            tokens += int(weight) * b.tokens(shared=False)
            bt = b.to(acc.device)
            last = j == len(chunks) - 1
            ctx = acc.no_sync(scorer) if (world > 1 and not last) else nullcontext()
            with ctx, self._autocast():
                logps = scorer(*bt.tensors()).float()
                r = None
                if ref is not None:
                    r = torch.as_tensor(
                        np.nan_to_num(ref[part][:, : logps.shape[1]]), dtype=logps.dtype
                    ).to(logps.device, non_blocking=True)
                x = batch_inputs(logps, r, bt, groups, part, groups.listwise)
                per = per_example_loss(x, self.main, self.params, self.mixes)
                loss = per.sum() * (weight * world / n_global)
            acc.backward(loss)
            stats[0] += weight * per.detach().sum()
            if isinstance(x, PairInputs) and r is not None:
                h = margin(x).detach()
                stats[1] += weight * ((h > 0).sum() + 0.5 * (h == 0).sum())
                stats[2] += weight * h.sum() * beta
        gn = None
        if cfg.max_grad_norm > 0:
            gn = acc.clip_grad_norm_(scorer.parameters(), cfg.max_grad_norm)
        optim.step()
        sched.step()
        optim.zero_grad(set_to_none=True)
        if world > 1:
            stats = acc.reduce(stats, reduction="sum")
            tokens = int(acc.reduce(torch.tensor(tokens, device=acc.device), reduction="sum"))
        grad_norm = float(gn) if gn is not None else math.nan
        s = stats.tolist()
        return {
            "loss": s[0] / n_global,
            "lr": float(sched.get_last_lr()[0]),
            "grad_norm": grad_norm,
            "reward_accuracy": s[1] / n_global if ref is not None else math.nan,
            "reward_margin": s[2] / n_global if ref is not None else math.nan,
            "tokens": tokens,
        }

    def _evaluate(
        self, groups: Groups | None, ref: np.ndarray | None, step: int, stage: int
    ) -> None:
        if groups is None or not len(groups):
            return
        from prefkit.training.dpo_eval import list_metrics, pair_metrics

        pol = self._logps(groups, self._scorer)
        beta = self.params.get("beta", 1.0)
        if groups.listwise:
            assert groups.scores is not None
            k = pol.shape[1]
            scores = np.full((len(groups), k), np.nan)
            for i, s in enumerate(groups.scores):
                scores[i, : len(s)] = s
            mask = ~np.isnan(pol)
            m = list_metrics(
                np.nan_to_num(pol),
                None if ref is None else np.nan_to_num(ref),
                np.nan_to_num(scores),
                mask,
                beta=beta,
            )
        else:
            # strength from tier gaps or Likert margins is not a probability: read as 1
            st = groups.strength
            alpha = np.where((st >= 0) & (st <= 1), st, 1.0)
            m = pair_metrics(pol, ref, alpha, beta=beta)
        m = {"step": step, "stage": stage, **m}
        if self.config.kl_samples and self.main.reference:
            m.update(self._kl(groups))
        self.evals_.append(m)

    def _kl(self, groups: Groups) -> dict[str, float]:
        from prefkit.training.dpo_eval import sampled_kl

        cfg = self.config
        if getattr(self, "_kl_ref", None) is None:
            self._kl_ref = load_lm(cfg.reference or cfg.model)
            self._kl_ref.to(self.accelerator.device).eval()
        ref = self._kl_ref
        lm = self.accelerator.unwrap_model(self._scorer).lm
        prompts = list({tuple(p): None for p in groups.prompt_ids})[:64]
        res = sampled_kl(
            lm,
            ref,
            [list(p) for p in prompts],
            samples=cfg.kl_samples,
            max_new_tokens=min(cfg.max_completion_length, 64),
            seed=cfg.seed,
            eos_token_id=getattr(self.tokenizer, "eos_token_id", None),
            pad_token_id=self.pad,
        )
        return {f"kl_{k}" if not k.startswith("kl") else k: v for k, v in res.items()}

    def _save_checkpoint(self, ckpt: Path, step: int, refs: dict[int, np.ndarray | None]) -> None:
        acc = self.accelerator
        tmp = ckpt.with_name(ckpt.name + ".tmp")
        if acc.is_main_process and tmp.exists():
            shutil.rmtree(tmp)
        acc.wait_for_everyone()
        acc.save_state(str(tmp))
        if acc.is_main_process:
            for st, arr in refs.items():
                if arr is not None:
                    np.save(tmp / f"ref-stage{st}.npy", arr)
            for name, arr in (("shared", self._shared_ref), ("eval", self._eval_ref)):
                if arr is not None:
                    np.save(tmp / f"ref-{name}.npy", arr)
            state = {
                "step": step,
                "history": [asdict(h) for h in self.history_],
                "evals": self.evals_,
                "config": asdict(self.config),
            }
            (tmp / "state.json").write_text(json.dumps(state))
            old = ckpt.with_name(ckpt.name + ".old")
            if ckpt.exists():
                ckpt.rename(old)  # a crash from here on leaves one complete checkpoint
            tmp.rename(ckpt)
            shutil.rmtree(old, ignore_errors=True)
        acc.wait_for_everyone()

    def _write_metrics(self, path: Path) -> None:
        if self.accelerator.is_main_process:
            path.write_text("".join(json.dumps(asdict(h)) + "\n" for h in self.history_))

    def save(self, directory: str | Path | None = None) -> Path:
        """Write the trained model (or LoRA adapter) and tokenizer with ``save_pretrained``."""
        path = Path(directory or Path(self.config.output_dir) / "model")
        if self.accelerator.is_main_process:
            with quiet_transformers():
                self.model_.save_pretrained(path)
            if self.tokenizer is not None:
                self.tokenizer.save_pretrained(path)
        return path
