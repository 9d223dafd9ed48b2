"""Every setting of a DPO-family run, in one dataclass (torch-free, so the CLI can build
its flags from it without importing torch).

Each field is a ``prefkit train dpo`` flag (``--field-name``) and a key of the YAML file
given to ``--config``; flags override the file, the file overrides the defaults.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING

from prefkit.errors import PrefkitError
from prefkit.training.tokenize import CHAT_TEMPLATE_MODES, ON_PROBLEM
from prefkit.views import ANNOTATORS, PAIR_STRATEGIES, TIES

if TYPE_CHECKING:
    from prefkit.losses.base import Loss

ATTENTION = ("model", "sdpa", "flex")
PRECISIONS = ("auto", "bf16", "fp16", "no")
SCHEDULERS = ("constant", "linear", "cosine")


@dataclass
class DPOConfig:
    """Every setting of a run; each field is also a ``prefkit train dpo`` flag."""

    model: str = field(
        default="", metadata={"help": "policy to start from: a local path or hub id"}
    )
    data: str = field(default="", metadata={"help": "training data (any format prefkit loads)"})
    output_dir: str = field(default="dpo-out", metadata={"help": "where the model and metrics go"})
    eval_data: str | None = field(default=None, metadata={"help": "held-out data to evaluate on"})
    eval_fraction: float = field(
        default=0.0,
        metadata={"help": "share of prompts held out for evaluation (when no eval_data)"},
    )
    loss: str = field(
        default="dpo", metadata={"help": "objective (prefkit train losses lists them)"}
    )
    loss_params: dict[str, float] = field(
        default_factory=dict, metadata={"help": "loss parameters, e.g. beta=0.1 (repeatable)"}
    )
    mixins: dict[str, float] = field(
        default_factory=dict, metadata={"help": "extra loss terms and their weights, e.g. nll=0.2"}
    )
    reference: str | None = field(
        default=None, metadata={"help": "reference model (default: the starting policy)"}
    )
    ref_cache_dir: str | None = field(
        default=None, metadata={"help": "reference log-prob cache (default ~/.cache/prefkit)"}
    )
    lr: float = field(default=1e-6, metadata={"help": "AdamW learning rate"})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay"})
    scheduler: str = field(
        default="linear", metadata={"help": "learning-rate schedule", "choices": SCHEDULERS}
    )
    warmup_steps: int = field(default=0, metadata={"help": "linear warm-up steps"})
    max_grad_norm: float = field(default=1.0, metadata={"help": "gradient clipping (0 = off)"})
    epochs: int = field(default=1, metadata={"help": "passes over the data (per stage)"})
    max_steps: int = field(default=0, metadata={"help": "stop after this many steps (0 = no cap)"})
    batch_size: int = field(default=8, metadata={"help": "groups (pairs) per optimizer step"})
    micro_batch_size: int = field(
        default=0, metadata={"help": "groups per forward; gradients accumulate (0 = batch_size)"}
    )
    max_prompt_length: int = field(default=512, metadata={"help": "prompt tokens kept (its end)"})
    max_completion_length: int = field(
        default=512, metadata={"help": "completion tokens kept (their start)"}
    )
    chat_template: str = field(
        default="auto",
        metadata={"help": "apply the tokenizer's chat template", "choices": CHAT_TEMPLATE_MODES},
    )
    on_problem: str = field(
        default="error",
        metadata={"help": "broken pairs in the pre-flight", "choices": ON_PROBLEM},
    )
    ties: str = field(default="drop", metadata={"help": "tie judgments", "choices": TIES})
    annotators: str = field(
        default="each",
        metadata={"help": "pairs judged more than once", "choices": ANNOTATORS},
    )
    rankings: str | None = field(
        default=None, metadata={"help": "pairs from rankings", "choices": PAIR_STRATEGIES}
    )
    precision: str = field(
        default="auto",
        metadata={"help": "auto (bf16 on a capable GPU, else fp32)", "choices": PRECISIONS},
    )
    lora_r: int = field(default=0, metadata={"help": "LoRA rank (0 = train every weight)"})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA alpha"})
    lora_dropout: float = field(default=0.0, metadata={"help": "LoRA dropout"})
    lora_targets: str = field(
        default="all-linear",
        metadata={"help": "LoRA targets: comma-separated module names, or all-linear"},
    )
    share_prompt: bool = field(
        default=True, metadata={"help": "encode each prompt once for all its completions"}
    )
    attention: str = field(
        default="model",
        metadata={
            "help": "attention kernel: the model's own, sdpa, or flex (FlexAttention)",
            "choices": ATTENTION,
        },
    )
    compile: bool = field(
        default=False,
        metadata={"help": "torch.compile each decoder layer (fuses element-wise work)"},
    )
    stages: bool = field(default=True, metadata={"help": "train curriculum stages in order"})
    refresh_reference: bool = field(
        default=False, metadata={"help": "each stage's starting policy becomes its reference"}
    )
    eval_every: int = field(default=0, metadata={"help": "evaluate every N steps (0 = per stage)"})
    kl_samples: int = field(
        default=0, metadata={"help": "completions sampled per eval prompt to estimate KL (0 = off)"}
    )
    save_every: int = field(default=0, metadata={"help": "checkpoint every N steps (0 = off)"})
    resume: bool = field(default=False, metadata={"help": "continue from the last checkpoint"})
    shuffle: bool = field(default=True, metadata={"help": "shuffle each epoch (within a stage)"})
    seed: int = field(default=0, metadata={"help": "seed for data order and initialisation"})

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        def bad(name: str, rule: str) -> PrefkitError:
            return PrefkitError(f"train dpo: {name} {rule}, got {getattr(self, name)!r}")

        for name in ("batch_size", "epochs", "max_prompt_length", "max_completion_length"):
            if getattr(self, name) < 1:
                raise bad(name, "must be >= 1")
        for name in (
            "micro_batch_size",
            "max_steps",
            "warmup_steps",
            "eval_every",
            "save_every",
            "kl_samples",
            "lora_r",
        ):
            if getattr(self, name) < 0:
                raise bad(name, "must be >= 0")
        if self.micro_batch_size and self.batch_size % self.micro_batch_size:
            raise bad("micro_batch_size", f"must divide batch_size ({self.batch_size})")
        if not 0.0 <= self.eval_fraction < 1.0:
            raise bad("eval_fraction", "must be in [0, 1)")
        if self.lr <= 0:
            raise bad("lr", "must be > 0")
        for f in fields(self):
            choices = f.metadata.get("choices")
            value = getattr(self, f.name)
            if choices and value is not None and value not in choices:
                raise bad(f.name, f"must be one of {', '.join(choices)}")

    @property
    def micro(self) -> int:
        return self.micro_batch_size or self.batch_size

    def objective(
        self,
    ) -> tuple[Loss, dict[str, float], list[tuple[Loss, float, dict[str, float]]]]:
        """The main loss with its parameters, and the mix-ins with weight and parameters
        (resolved once, here)."""
        from prefkit.losses.base import get

        main = get(self.loss)
        if main.mixin:
            raise PrefkitError(f"loss {self.loss!r} is a mix-in: add it with --mixin {self.loss}=W")
        mixes = []
        for name, w in self.mixins.items():
            m = get(name)
            if not m.mixin:
                raise PrefkitError(f"--mixin {name}: {name!r} is a main loss, not a mix-in")
            if main.kind != "pairs":
                raise PrefkitError(f"mix-ins apply to pair losses; {self.loss!r} reads lists")
            if m.reference and not main.reference:
                raise PrefkitError(
                    f"--mixin {name} needs reference log-probs; the main loss {self.loss!r} "
                    "is reference-free"
                )
            mixes.append((m, float(w)))  # parameters resolved below
        known = set(main.params).union(*(m.params for m, _ in mixes))
        unknown = {k: v for k, v in self.loss_params.items() if k not in known}
        if unknown:
            main.resolve(unknown)  # raises, naming the unknown parameters
        params = main.resolve({k: v for k, v in self.loss_params.items() if k in main.params})
        # a mix-in reads the main loss's value of a parameter they share (beta) unless
        # loss_params sets it
        given = {**params, **self.loss_params}
        return (
            main,
            params,
            [
                (m, w, m.resolve({k: v for k, v in given.items() if k in m.params}))
                for m, w in mixes
            ],
        )
