"""DPO training speed and memory: prefkit against TRL 1.16's DPOTrainer, in one run on one machine.

Every method trains the same randomly initialised causal LM, loaded from the same safetensors
folder, on the same synthetic pairs, in the same order, with the same settings:

- model (``--model-size``): ``qwen0.5b`` is a ``Qwen2ForCausalLM`` shaped like Qwen2-0.5B
  (hidden 896, 24 layers, 14 heads, 2 KV heads, MLP 4864, vocab 151,936, tied embeddings,
  rope theta 1e6); ``tiny`` is the same family at hidden 64, 2 layers, vocab 512 (CPU smoke).
  Weights are drawn once with ``--seed`` (fp32), saved to a temporary folder, and every method
  loads them from there (SDPA attention).
- data: ``--pairs`` pairs of random token ids (seeded), every prompt ``--prompt-len`` (256) and
  every completion ``--completion-len`` (384) tokens; ids avoid pad (0) and eos (1), and each
  completion ends with eos; chosen completions draw from the lower half of the vocabulary,
  rejected ones from the upper half (a planted preference, so the losses move). TRL 1.16 re-tokenises its text columns, so it gets text in a
  word-level vocabulary ``"<|pad|>", "<|eos|>", "t2" .. "t{V-1}"`` that maps back to exactly
  these ids; the runner checks TRL's tokenised columns against the ids before training.
- training: ``--batch`` (8) pairs a step, no gradient accumulation, AdamW at ``--lr`` (1e-6;
  weight decay 0, default betas, constant schedule, no warm-up), ``--max-grad-norm`` (1.0,
  TRL's default clipping), DPO sigmoid loss with ``--beta`` (0.1); ``--warmup`` unmeasured steps
  then ``--steps`` measured steps, pairs taken in order (no shuffling); bf16 autocast over
  fp32 weights on a GPU, fp32 on a CPU; no gradient checkpointing, evaluation, checkpoints or
  logging integrations.

Methods (``--methods``, comma-separated; each runs in its own fresh subprocess):
    prefkit          prefkit's DPO trainer (``run_prefkit``): prompt shared, SDPA
    prefkit_compile  the same with ``--compile`` (decoder layers compiled)
    prefkit_flex     the same with FlexAttention for the shared-prompt mask
    prefkit_noshare  prefkit without prompt sharing (each prompt + completion its own row)
    trl              TRL ``DPOTrainer``, default config but no gradient checkpointing
                     (reference model kept in memory)
    trl_precompute   the same with ``precompute_ref_log_probs=True`` (one reference pass over the
                     data before training, timed and reported apart from the training steps)

Reported per method (median over ``--repeats`` interleaved repeats): tokens/s and pairs/s over
the measured steps (tokens counted like TRL: per pair, the prompt twice plus both completions),
the one-off reference precompute seconds, peak memory (``torch.cuda.max_memory_allocated`` on a
GPU, peak RSS on a CPU) in GiB, prefkit's ratio to each method, and the largest absolute
difference between each method's per-step loss curve and prefkit's (or, without prefkit, the
first method's). ``--json PATH`` writes everything, per-step losses included.

    python benchmarks/dpo_vs_trl.py --model-size qwen0.5b --warmup 3 --steps 10 --json out.json
    python benchmarks/dpo_vs_trl.py --model-size tiny --pairs 32 --steps 3 --warmup 1 \\
        --prompt-len 16 --completion-len 24 --methods trl,trl_precompute
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

METHODS = ("prefkit", "prefkit_compile", "prefkit_flex", "prefkit_noshare", "trl", "trl_precompute")
PAD_ID, EOS_ID = 0, 1
PAD_TOKEN, EOS_TOKEN = "<|pad|>", "<|eos|>"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- model and data


def model_config(size: str) -> Any:
    """A ``Qwen2Config`` shaped like Qwen2-0.5B (``qwen0.5b``) or a tiny one (``tiny``)."""
    from transformers import Qwen2Config

    shape = {
        "qwen0.5b": dict(
            hidden_size=896,
            num_hidden_layers=24,
            num_attention_heads=14,
            num_key_value_heads=2,
            intermediate_size=4864,
            vocab_size=151936,
        ),
        "tiny": dict(
            hidden_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            intermediate_size=128,
            vocab_size=512,
        ),
    }[size]
    return Qwen2Config(
        **shape,
        tie_word_embeddings=True,
        rope_theta=1_000_000.0,
        max_position_embeddings=4096,
        rms_norm_eps=1e-6,
        attention_dropout=0.0,
        pad_token_id=PAD_ID,
        eos_token_id=EOS_ID,
        bos_token_id=None,
    )


def save_model(size: str, seed: int, path: Path) -> int:
    """Randomly initialise the model with ``seed``, save it (safetensors), return its vocab size."""
    import torch
    from transformers import Qwen2ForCausalLM

    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(model_config(size)).float()
    model.save_pretrained(path)
    n_params = sum(p.numel() for p in model.parameters())
    log(f"model {size}: {n_params / 1e6:.1f}M parameters, saved to {path}")
    return int(model.config.vocab_size)


def load_model(model_dir: str | Path) -> Any:
    """The saved model in fp32 with SDPA attention (what every method trains)."""
    import torch
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(
        model_dir, dtype=torch.float32, attn_implementation="sdpa"
    )


@dataclass(frozen=True)
class Pairs:
    """Synthetic preference pairs: token ids, one row a pair, fixed lengths.

    ``prompt`` is (N, P); ``chosen`` and ``rejected`` are (N, C) and end with ``eos_id``.
    """

    prompt: np.ndarray
    chosen: np.ndarray
    rejected: np.ndarray
    pad_id: int = PAD_ID
    eos_id: int = EOS_ID

    @property
    def tokens_per_pair(self) -> int:
        """Tokens one pair costs, counted like TRL: the prompt twice plus both completions."""
        return 2 * self.prompt.shape[1] + self.chosen.shape[1] + self.rejected.shape[1]


def make_pairs(n: int, prompt_len: int, completion_len: int, vocab: int, seed: int) -> Pairs:
    """Random ids (never pad 0 or eos 1); completions end with eos.

    A planted preference gives the loss something to learn, so that the loss curves of
    the methods can be compared while they move: chosen completions draw their tokens
    from the lower half of the vocabulary, rejected ones from the upper half (the token
    values do not change the cost of a step).
    """
    rng = np.random.default_rng(seed)
    mid = max(3, vocab // 2)

    def completions(lo: int, hi: int) -> np.ndarray:
        ids = rng.integers(lo, hi, size=(n, completion_len), dtype=np.int64)
        ids[:, -1] = EOS_ID
        return ids

    prompt = rng.integers(2, vocab, size=(n, prompt_len), dtype=np.int64)
    return Pairs(prompt, completions(2, mid), completions(mid, vocab))


def make_tokenizer(vocab: int) -> Any:
    """A word-level tokenizer whose vocabulary is the model's: pad 0, eos 1, ``t{i}`` for the rest."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = {PAD_TOKEN: PAD_ID, EOS_TOKEN: EOS_ID} | {f"t{i}": i for i in range(2, vocab)}
    core = Tokenizer(models.WordLevel(words, unk_token=PAD_TOKEN))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(tokenizer_object=core, pad_token=PAD_TOKEN, eos_token=EOS_TOKEN)
    assert len(tok) == vocab, (len(tok), vocab)
    return tok


def ids_to_text(ids: np.ndarray) -> str:
    return " ".join(EOS_TOKEN if i == EOS_ID else f"t{i}" for i in ids.tolist())


# ---------------------------------------------------------------- measuring


def sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def reset_peak() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()


def peak_memory() -> tuple[float, str]:
    """(GiB, kind): CUDA max allocated since ``reset_peak``, else this process's peak RSS."""
    import torch

    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**30, "cuda_max_allocated"
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, "cpu_peak_rss"


def result(
    method: str,
    args: argparse.Namespace,
    data: Pairs,
    step_ends: list[float],
    losses: list[float],
    precompute_s: float | None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The record every runner returns.

    ``step_ends`` holds ``warmup + steps + 1`` synchronised ``time.perf_counter()`` readings:
    the start of training and the end of every step; ``losses`` the loss of every step
    (warm-up steps included), each computed before that step's update.
    """
    import torch

    total = args.warmup + args.steps
    if len(step_ends) != total + 1 or len(losses) != total:
        raise RuntimeError(f"{method}: {len(step_ends)} clock readings, {len(losses)} losses")
    measured = step_ends[-1] - step_ends[args.warmup]
    pairs = args.steps * args.batch
    gib, kind = peak_memory()
    return {
        "method": method,
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        "measured_steps": args.steps,
        "measured_seconds": measured,
        "step_seconds": np.diff(step_ends).tolist(),
        "pairs_per_s": pairs / measured,
        "tokens_per_s": pairs * data.tokens_per_pair / measured,
        "precompute_seconds": precompute_s,
        "peak_gib": gib,
        "peak_kind": kind,
        "losses": losses,
        **(extra or {}),
    }


# ---------------------------------------------------------------- the methods


class StepProfiler:
    """With ``--profile``: profile the first two measured steps (CUDA kernels) and print
    the top entries (the timings of that run are then not comparable)."""

    def __init__(self, args: argparse.Namespace, method: str):
        self.on, self.method, self.first = bool(args.profile), method, args.warmup
        self.prof: Any = None

    def after_step(self, done: int) -> None:
        if not self.on:
            return
        import torch

        if done == self.first:
            acts = [torch.profiler.ProfilerActivity.CPU]
            if torch.cuda.is_available():
                acts.append(torch.profiler.ProfilerActivity.CUDA)
            self.prof = torch.profiler.profile(activities=acts)
            self.prof.__enter__()
        elif done == self.first + 2 and self.prof is not None:
            self.prof.__exit__(None, None, None)
            key = "cuda_time_total" if torch.cuda.is_available() else "cpu_time_total"
            print(f"--- profile of 2 steps: {self.method}")
            print(
                self.prof.key_averages().table(sort_by=key, row_limit=30, max_name_column_width=60)
            )


def run_prefkit(
    model_dir: str | Path, data: Pairs, args: argparse.Namespace, method: str
) -> dict[str, Any]:
    """Train with prefkit's DPO trainer (the code path ``prefkit train dpo`` runs).

    Reference log-probs are computed once by the starting policy before the first step
    (timed apart as ``precompute_seconds``; the on-disk cache is a fresh folder, so it
    misses). ``prefkit`` shares each prompt between its completions (SDPA with a dense
    mask), ``prefkit_compile`` also compiles the decoder layers, ``prefkit_flex`` uses
    FlexAttention's block-sparse mask instead, ``prefkit_noshare`` runs each prompt +
    completion as its own row.
    """
    import torch

    from prefkit.training.dpo import DPOTrainer
    from prefkit.training.dpo_config import DPOConfig
    from prefkit.training.groups import Groups

    total = args.warmup + args.steps
    n = total * args.batch
    groups = Groups(
        ids=[str(i) for i in range(n)],
        prompt_ids=data.prompt[:n].tolist(),
        completion_ids=[
            [c.tolist(), r.tolist()]
            for c, r in zip(data.chosen[:n], data.rejected[:n], strict=True)
        ],
    )
    share_prompt = method != "prefkit_noshare"
    tmp = Path(tempfile.mkdtemp(prefix="dpo_prefkit_"))
    config = DPOConfig(
        output_dir=str(tmp / "out"),
        ref_cache_dir=str(tmp / "cache"),
        loss="dpo",
        loss_params={"beta": args.beta},
        lr=args.lr,
        weight_decay=0.0,
        scheduler="constant",
        warmup_steps=0,
        max_grad_norm=args.max_grad_norm,
        batch_size=args.batch,
        max_steps=total,
        precision="auto",
        share_prompt=share_prompt,
        attention="flex" if method == "prefkit_flex" else "sdpa",
        compile=method == "prefkit_compile",
        shuffle=False,
        seed=args.seed,
    )
    ends: list[float] = []

    profiler = StepProfiler(args, method)

    def clock(done: int, _total: int, _info: dict[str, float]) -> None:
        sync()
        ends.append(time.perf_counter())
        profiler.after_step(done)

    reset_peak()
    trainer = DPOTrainer(config, model=load_model(model_dir), progress=clock)
    trainer.fit(groups)
    # the first reading: the end of step 1 minus its own (synchronised) duration
    ends.insert(0, ends[0] - trainer.history_[0].seconds)
    return result(
        method,
        args,
        data,
        ends,
        [h.loss for h in trainer.history_],
        trainer.reference_seconds_,
        {
            "grad_norms": [h.grad_norm for h in trainer.history_],
            "mixed_precision": trainer.precision,
            "share_prompt": share_prompt,
            "attention": trainer.attention_,
            "tokens_read_per_pair": (
                data.prompt.shape[1] * (1 if share_prompt else 2)
                + data.chosen.shape[1]
                + data.rejected.shape[1]
            ),
            "versions": {"torch": torch.__version__},
        },
    )


def run_trl(
    model_dir: str | Path, data: Pairs, args: argparse.Namespace, precompute: bool
) -> dict[str, Any]:
    """Train with TRL's ``DPOTrainer`` (default config apart from the shared settings)."""
    import datasets
    import torch
    import transformers
    import trl
    from torch.utils.data import SequentialSampler
    from transformers import TrainerCallback

    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()
    gpu = torch.cuda.is_available()
    total = args.warmup + args.steps
    n = total * args.batch
    tok = make_tokenizer(int(transformers.AutoConfig.from_pretrained(model_dir).vocab_size))
    rows = datasets.Dataset.from_dict(
        {
            "prompt": [ids_to_text(r) for r in data.prompt[:n]],
            "chosen": [" " + ids_to_text(r) for r in data.chosen[:n]],
            "rejected": [" " + ids_to_text(r) for r in data.rejected[:n]],
        }
    )

    class Clock(TrainerCallback):  # type: ignore[misc]
        def __init__(self) -> None:
            self.ends: list[float] = []
            self.losses: dict[int, float] = {}
            self.grad_norms: dict[int, float] = {}

        def on_train_begin(self, *a: Any, **k: Any) -> None:
            sync()
            self.ends = [time.perf_counter()]

        def on_step_end(self, *a: Any, **k: Any) -> None:
            sync()
            self.ends.append(time.perf_counter())
            profiler.after_step(len(self.ends) - 1)

        def on_log(self, _args: Any, state: Any, _control: Any, logs: Any = None, **k: Any) -> None:
            if logs and "loss" in logs:
                self.losses[state.global_step] = float(logs["loss"])
                if "grad_norm" in logs:
                    self.grad_norms[state.global_step] = float(logs["grad_norm"])

    class Trainer(trl.DPOTrainer):  # type: ignore[misc]
        precompute_seconds = 0.0

        def _get_train_sampler(self, *a: Any, **k: Any) -> Any:
            return SequentialSampler(self.train_dataset)  # pairs in order, no shuffling

        def _precompute_ref_logps(self, *a: Any, **k: Any) -> Any:
            sync()
            t0 = time.perf_counter()
            out = super()._precompute_ref_logps(*a, **k)
            sync()
            self.precompute_seconds += time.perf_counter() - t0
            return out

    config = trl.DPOConfig(
        output_dir=str(Path(tempfile.mkdtemp(prefix="dpo_trl_"))),
        per_device_train_batch_size=args.batch,
        gradient_accumulation_steps=1,
        max_steps=total,
        learning_rate=args.lr,
        weight_decay=0.0,
        lr_scheduler_type="constant",
        warmup_steps=0,
        max_grad_norm=args.max_grad_norm,
        beta=args.beta,
        loss_type="sigmoid",
        max_length=data.prompt.shape[1] + data.chosen.shape[1],
        precompute_ref_log_probs=precompute,
        bf16=gpu,
        fp16=False,
        use_cpu=not gpu,
        gradient_checkpointing=False,
        dataloader_num_workers=0,
        logging_steps=1,
        report_to="none",
        save_strategy="no",
        eval_strategy="no",
        disable_tqdm=True,
        seed=args.seed,
    )
    profiler = StepProfiler(args, "trl_precompute" if precompute else "trl")
    clock = Clock()
    reset_peak()
    trainer = Trainer(
        model=load_model(model_dir),
        args=config,
        train_dataset=rows,
        processing_class=tok,
        callbacks=[clock],
    )
    seen = trainer.train_dataset
    for column, ids in (
        ("prompt_ids", data.prompt),
        ("chosen_ids", data.chosen),
        ("rejected_ids", data.rejected),
    ):
        if not np.array_equal(np.asarray(seen[column]), ids[:n]):
            raise RuntimeError(f"TRL's {column} differ from the benchmark's token ids")
    fed: list[list[int]] = []  # the prompts in the order the training batches are built
    collate = trainer.data_collator

    def recording_collator(examples: list[dict[str, Any]]) -> Any:
        fed.extend(e["prompt_ids"] for e in examples)
        return collate(examples)

    trainer.data_collator = recording_collator
    trainer.train()
    if not np.array_equal(np.asarray(fed), data.prompt[:n]):
        raise RuntimeError("TRL did not train on the pairs in order")
    losses = [clock.losses[s] for s in range(1, total + 1)]
    return result(
        "trl_precompute" if precompute else "trl",
        args,
        data,
        clock.ends,
        losses,
        trainer.precompute_seconds if precompute else None,
        {
            "grad_norms": [clock.grad_norms.get(s, math.nan) for s in range(1, total + 1)],
            "optim": str(trainer.args.optim),
            "mixed_precision": "bf16" if gpu else "no",
            "token_ids_verified": True,  # TRL's tokenised columns and batch order checked
            "versions": {
                "trl": trl.__version__,
                "transformers": transformers.__version__,
                "torch": torch.__version__,
                "datasets": datasets.__version__,
            },
        },
    )


def run_one(method: str, args: argparse.Namespace) -> dict[str, Any]:
    """Run ``method`` in this process (the child side of ``--only``)."""
    import torch

    torch.manual_seed(args.seed)
    vocab = model_config(args.model_size).vocab_size
    data = make_pairs(args.pairs, args.prompt_len, args.completion_len, vocab, args.seed)
    if method.startswith("prefkit"):
        return run_prefkit(args.model_dir, data, args, method)
    return run_trl(args.model_dir, data, args, precompute=method == "trl_precompute")


# ---------------------------------------------------------------- the harness

SHARED = (
    "model_size",
    "pairs",
    "prompt_len",
    "completion_len",
    "batch",
    "steps",
    "warmup",
    "lr",
    "beta",
    "max_grad_norm",
    "seed",
)


CHILD_ENV = {"PYTHONUNBUFFERED": "1", "TQDM_DISABLE": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}


def child(method: str, args: argparse.Namespace, model_dir: Path, out: Path) -> dict[str, Any]:
    """Run one method in a fresh subprocess; its record, or ``{"error": ...}``."""
    cmd = [sys.executable, str(Path(__file__).resolve())]
    for name in SHARED:
        cmd += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
    cmd += ["--only", method, "--model-dir", str(model_dir), "--result", str(out)]
    cmd += ["--profile"] if args.profile else []
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=os.environ | CHILD_ENV)
    if proc.returncode != 0 or not out.exists():
        log(f"{method}: child exited {proc.returncode} after {time.perf_counter() - t0:.0f}s")
        return {"method": method, "error": f"exit code {proc.returncode}"}
    rec: dict[str, Any] = json.loads(out.read_text())
    return rec


def max_abs_diff(a: list[float], b: list[float]) -> float:
    n = min(len(a), len(b))
    return float(np.max(np.abs(np.asarray(a[:n]) - np.asarray(b[:n])))) if n else math.nan


def summarise(runs: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Median speed and memory per method over its successful repeats; the first repeat's losses."""
    out: dict[str, dict[str, Any]] = {}
    for method, recs in runs.items():
        ok = [r for r in recs if "error" not in r]
        if not ok:
            out[method] = {"error": recs[0].get("error", "failed") if recs else "not run"}
            continue
        pre = [r["precompute_seconds"] for r in ok if r.get("precompute_seconds") is not None]
        out[method] = {
            "repeats_ok": len(ok),
            "tokens_per_s": statistics.median(r["tokens_per_s"] for r in ok),
            "pairs_per_s": statistics.median(r["pairs_per_s"] for r in ok),
            "peak_gib": statistics.median(r["peak_gib"] for r in ok),
            "peak_kind": ok[0]["peak_kind"],
            "precompute_seconds": statistics.median(pre) if pre else None,
            "losses": ok[0]["losses"],
            "device": ok[0]["device"],
        }
    good = [m for m, s in out.items() if "error" not in s]
    base = "prefkit" if "prefkit" in good else (good[0] if good else None)
    for s in out.values():
        if base is None or "error" in s:
            continue
        b = out[base]
        s["loss_vs"] = base
        s["loss_max_abs_diff"] = max_abs_diff(b["losses"], s["losses"])
        if base == "prefkit":
            s["prefkit_tokens_ratio"] = b["tokens_per_s"] / s["tokens_per_s"]
            s["prefkit_memory_ratio"] = b["peak_gib"] / s["peak_gib"]
    return out


def print_table(summary: dict[str, dict[str, Any]], args: argparse.Namespace) -> None:
    ok = [s for s in summary.values() if "error" not in s]
    where = ok[0]["device"] if ok else "?"
    print(
        f"\nDPO, {args.model_size} on {where}: batch {args.batch} pairs, prompt {args.prompt_len} + "
        f"completion {args.completion_len} tokens, {args.steps} measured steps after "
        f"{args.warmup} warm-up, median of {args.repeats}"
    )
    print(
        f"{'method':<16}{'tokens/s':>11}{'pairs/s':>9}{'precomp s':>10}{'peak GiB':>10}"
        f"{'pk/m tok':>9}{'pk/m mem':>9}{'max|dloss|':>12}"
    )

    def fmt(x: float | None, spec: str, width: int) -> str:
        return f"{'-':>{width}}" if x is None else f"{x:>{width}{spec}}"

    for method, s in summary.items():
        if "error" in s:
            print(f"{method:<16}failed: {s['error']}")
            continue
        print(
            f"{method:<16}{s['tokens_per_s']:>11,.0f}{s['pairs_per_s']:>9.2f}"
            f"{fmt(s['precompute_seconds'], '.2f', 10)}{s['peak_gib']:>10.2f}"
            f"{fmt(s.get('prefkit_tokens_ratio'), '.2f', 9)}"
            f"{fmt(s.get('prefkit_memory_ratio'), '.2f', 9)}"
            f"{fmt(s.get('loss_max_abs_diff'), '.2e', 12)}"
        )
    kind = ok[0]["peak_kind"] if ok else ""
    base = next((s["loss_vs"] for s in ok if "loss_vs" in s), "-")
    print(f"peak = {kind}; pk/m = prefkit / method; max|dloss| = against {base}'s per-step losses")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--model-size", choices=("tiny", "qwen0.5b"), default="qwen0.5b")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--pairs", type=int, default=0, help="default: batch * (warmup + steps)")
    ap.add_argument("--prompt-len", type=int, default=256)
    ap.add_argument("--completion-len", type=int, default=384)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--lr", type=float, default=1e-6)
    ap.add_argument("--beta", type=float, default=0.1)
    ap.add_argument("--max-grad-norm", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--json", type=Path, default=None, help="write the results here")
    ap.add_argument("--profile", action="store_true", help="print a kernel profile of 2 steps")
    ap.add_argument("--only", choices=METHODS, help=argparse.SUPPRESS)
    ap.add_argument("--model-dir", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    need = args.batch * (args.warmup + args.steps)
    args.pairs = args.pairs or need
    if args.pairs < need:
        ap.error(f"--pairs {args.pairs} < batch * (warmup + steps) = {need}")
    if args.steps < 1 or args.warmup < 0 or args.prompt_len < 1 or args.completion_len < 2:
        ap.error("need --steps >= 1, --warmup >= 0, --prompt-len >= 1, --completion-len >= 2")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.only:  # child: one method, record to --result
        rec = run_one(args.only, args)
        args.result.write_text(json.dumps(rec))
        return
    methods = [m for m in args.methods.split(",") if m]
    if unknown := set(methods) - set(METHODS):
        raise SystemExit(f"unknown methods {sorted(unknown)}; choose from {METHODS}")
    runs: dict[str, list[dict[str, Any]]] = {m: [] for m in methods}
    with tempfile.TemporaryDirectory(prefix="dpo_vs_trl_") as tmp:
        model_dir = Path(tmp) / "model"
        save_model(args.model_size, args.seed, model_dir)
        for k in range(args.repeats):
            for method in methods:
                log(f"--- repeat {k + 1}/{args.repeats}: {method}")
                rec = child(method, args, model_dir, Path(tmp) / f"{method}_{k}.json")
                if "error" not in rec:
                    log(
                        f"{method}: {rec['tokens_per_s']:,.0f} tokens/s, "
                        f"peak {rec['peak_gib']:.2f} GiB, losses {rec['losses']}"
                    )
                runs[method].append(rec)
    summary = summarise(runs)
    print_table(summary, args)
    if args.json:
        settings = {k: v for k, v in vars(args).items() if k not in ("only", "model_dir", "result")}
        settings["json"] = str(args.json)
        args.json.write_text(
            json.dumps({"settings": settings, "summary": summary, "runs": runs}, indent=1)
        )
    if failed := [m for m, s in summary.items() if "error" in s]:
        raise SystemExit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
