"""One DPO run from a :class:`~prefkit.training.dpo.DPOConfig` to a saved model.

Load the data, hold out prompts, tokenize with the pre-flight report (refusing, dropping
or fixing broken pairs as ``on_problem`` says), train, evaluate, save the model and write
``metrics.json``. ``prefkit train dpo`` calls :func:`run` and renders what it returns.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from prefkit.errors import PrefkitError
from prefkit.training.dpo import DPOConfig, DPOTrainer, Progress, load_policy, load_tokenizer
from prefkit.training.dpo_data import Texts, list_texts, pair_texts, split_by_prompt
from prefkit.training.groups import Groups
from prefkit.training.tokenize import Preflight, resolve, tokenize


def load_data(source: str, **options: Any) -> Any:
    from prefkit.io.api import load

    return load(source, **options)


def texts_for(config: DPOConfig, ds: Any, *, listwise: bool, conversational: bool) -> Texts:
    if listwise:
        return list_texts(ds, conversational=conversational)
    return pair_texts(
        ds,
        conversational=conversational,
        ties=config.ties,
        annotators=config.annotators,
        rankings=config.rankings,
        stages=config.stages,
    )


def to_groups(
    texts: Texts, tokenizer: Any, config: DPOConfig
) -> tuple[Groups, Preflight, np.ndarray]:
    """Tokenize ``texts`` with their labels; act on broken rows; return the kept rows."""
    raw, report = tokenize(
        tokenizer,
        texts.prompts,
        texts.completions,
        texts.ids,
        max_prompt_length=config.max_prompt_length,
        max_completion_length=config.max_completion_length,
        chat_template=config.chat_template,
    )
    labelled = Groups(
        ids=raw.ids,
        prompt_ids=raw.prompt_ids,
        completion_ids=raw.completion_ids,
        strength=texts.strength,
        scores=texts.scores,
        stage=texts.stage,
    )
    kept_groups, kept = resolve(labelled, report, config.on_problem)
    return kept_groups, report, kept


def run(
    config: DPOConfig,
    *,
    progress: Progress | None = None,
    source_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train, save ``output_dir/model`` and ``output_dir/metrics.json``; return the summary."""
    if not config.model or not config.data:
        raise PrefkitError("train dpo: --model and --data are required (or set them in --config)")
    loss = config.objective()[0]  # bad loss names and parameters fail before any loading
    listwise = loss.kind == "lists"
    tok = load_tokenizer(config)
    ds = load_data(config.data, **(source_options or {}))
    # Prompts go to the tokenizer as chat messages when its template will render them.
    conversational = config.chat_template != "off" and bool(getattr(tok, "chat_template", None))
    texts = texts_for(config, ds, listwise=listwise, conversational=conversational)
    if config.eval_data:
        eval_texts: Texts | None = texts_for(
            config,
            load_data(config.eval_data, **(source_options or {})),
            listwise=listwise,
            conversational=conversational,
        )
    elif config.eval_fraction:
        tr, ev = split_by_prompt(texts, config.eval_fraction, config.seed)
        texts, eval_texts = texts.select(tr), texts.select(ev)
    else:
        eval_texts = None
    train, report, kept = to_groups(texts, tok, config)
    eval_groups = None
    eval_report = None
    if eval_texts is not None and len(eval_texts):
        eval_groups, eval_report, _ = to_groups(eval_texts, tok, config)
    model = load_policy(config)  # after the pre-flight: broken data fails fast
    trainer = DPOTrainer(config, model=model, tokenizer=tok, progress=progress)
    trainer.fit(train, eval_groups)
    path = trainer.save()
    hist = trainer.history_
    summary = {
        "config": asdict(config),
        "model_dir": str(path),
        "train_examples": len(train),
        "dropped": int(len(texts) - len(kept)),
        "fixed": (
            len(report.blocked()) - int(len(texts) - len(kept)) if config.on_problem == "fix" else 0
        ),
        "eval_examples": 0 if eval_groups is None else len(eval_groups),
        "preflight": report.to_dict(),
        "eval_preflight": None if eval_report is None else eval_report.to_dict(),
        "reference": trainer.ref_source_,
        "steps": len(hist),
        "stages": {
            str(st): sum(h.stage == st for h in hist) for st in dict.fromkeys(h.stage for h in hist)
        },
        "final_loss": hist[-1].loss if hist else None,
        "train_seconds": trainer.train_seconds_,
        "tokens_per_second": sum(h.tokens for h in hist) / max(sum(h.seconds for h in hist), 1e-9),
        "evals": trainer.evals_,
    }
    Path(config.output_dir, "metrics.json").write_text(json.dumps(summary, indent=2, default=str))
    return summary
