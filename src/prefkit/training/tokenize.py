"""Tokenize preference groups for training, with a pre-flight report of what went wrong.

:func:`tokenize` turns prompts (text or chat messages) and ``K >= 2`` completions per
example into the token ids :class:`~prefkit.training.groups.Groups` holds, and checks each
row for the silent tokenization bugs that make preference training compare the wrong
sequences (the list is :data:`PROBLEMS`). :func:`resolve` then stops, drops or repairs
the rows with a problem in :data:`BLOCKING`.

With a chat template the template is applied the same way to the prompt and to the
prompt plus each completion, as at inference (``add_special_tokens=False``, the template
owns the special tokens, as ``apply_chat_template(tokenize=True)`` does)::

    prompt ids     = tok(template(messages, add_generation_prompt=True))
    full ids       = tok(template(messages + [assistant: completion]))
    completion ids = full ids[len(prompt ids):]

Plain text tokenizes the prompt with the tokenizer's special tokens (its BOS) and each
completion alone, followed by EOS; prompt + completion is also tokenized jointly to check
the boundary. Truncation keeps a prompt's end (left-truncation, keeping a leading BOS) and
a completion's start. Texts go through the tokenizer's batch call, not one call per row.

The peer is TRL's ``DPOTrainer`` (von Werra et al., v1.16), which renders and tokenizes the
same way. Deviations: on a boundary mismatch TRL silently takes the common token prefix
as the prompt (warning once), so it trains on a context the model never sees at
inference; here the row is reported and ``fix`` keeps the prompt as tokenized alone.
Plain-text completions are tokenized alone (TRL slices the joint tokenization), so the
prompt is always exactly what generation would start from.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from prefkit.errors import PrefkitError
from prefkit.training.groups import Groups

#: Every problem the pre-flight detects, with its one-line explanation (docs derive from it).
PROBLEMS: dict[str, str] = {
    "prompt_truncated": "the prompt was longer than max_prompt_length; its start was cut",
    "completion_truncated": (
        "a completion was longer than max_completion_length; its end (and EOS) was cut"
    ),
    "asymmetric_truncation": (
        "some completions of the group were cut and others not: the loss compares a cut "
        "and an uncut response (only the uncut one ends with EOS)"
    ),
    "lost_eos": "an uncut completion does not end with EOS: the model never learns to stop",
    "empty_completion": "a completion is empty or whitespace",
    "empty_prompt": "the prompt is empty or whitespace",
    "boundary_mismatch": (
        "tokenizing the prompt alone and prompt + completion disagree on the prompt's tokens "
        "(tokens merge across the boundary, or the template renders the prompt differently)"
    ),
    "double_bos": (
        "the prompt starts with two BOS tokens (the text or template has one and another is added)"
    ),
}

#: Problems that stop training unless ``--on-problem drop`` or ``fix`` is given.
BLOCKING: frozenset[str] = frozenset(
    {
        "asymmetric_truncation",
        "lost_eos",
        "empty_completion",
        "empty_prompt",
        "boundary_mismatch",
        "double_bos",
    }
)

ON_PROBLEM = ("error", "drop", "fix")
CHAT_TEMPLATE_MODES = ("auto", "on", "off")
N_EXAMPLES = 5  # example ids shown per problem

Message = Mapping[str, str]
Row = tuple[list[int], list[list[int]]]


@dataclass
class Preflight:
    """What :func:`tokenize` found, row by row.

    Parameters
    ----------
    rows
        Number of examples checked.
    chat_template
        Whether the chat template was applied.
    counts
        Rows with each problem (every name in :data:`PROBLEMS`, zeros included).
    examples
        Up to :data:`N_EXAMPLES` example ids per problem.
    problems
        Row index -> its problems (rows without problems are absent).
    repairs
        Row index -> the repaired token ids for each row with a blocking problem, or
        ``None`` when it cannot be repaired (used by :func:`resolve` with ``"fix"``).
    """

    rows: int
    chat_template: bool
    counts: dict[str, int]
    examples: dict[str, list[str]]
    problems: dict[int, list[str]]
    repairs: dict[int, Row | None] = field(default_factory=dict, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        """No row has a blocking problem."""
        return not self.blocked()

    def blocked(self) -> list[int]:
        """Indices of the rows with a problem in :data:`BLOCKING`."""
        return [i for i, ps in self.problems.items() if BLOCKING.intersection(ps)]

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "chat_template": self.chat_template,
            "ok": self.ok,
            "blocked_rows": len(self.blocked()),
            "problems": {
                name: {
                    "count": self.counts[name],
                    "blocking": name in BLOCKING,
                    "examples": self.examples[name],
                }
                for name in PROBLEMS
            },
        }

    def lines(self) -> list[str]:
        """A short table for the terminal: one line per problem found."""
        head = (
            f"tokenization pre-flight: {self.rows} rows, chat template "
            f"{'on' if self.chat_template else 'off'}, {len(self.blocked())} blocked"
        )
        found = [n for n in PROBLEMS if self.counts[n]]
        if not found:
            return [head, "  no problems"]
        w = max(len(n) for n in found)
        out = [head, f"  {'problem':<{w}}  {'rows':>6}  {'blocks':<6}  examples"]
        for n in found:
            blocks = "yes" if n in BLOCKING else "no"
            out.append(
                f"  {n:<{w}}  {self.counts[n]:>6}  {blocks:<6}  {', '.join(self.examples[n])}"
            )
        return out


# --- tokenizing -----------------------------------------------------------------------------
def _use_chat(tokenizer: Any, prompts: Sequence[str | Sequence[Message]], mode: str) -> bool:
    if mode not in CHAT_TEMPLATE_MODES:
        raise PrefkitError(f"chat_template must be one of {CHAT_TEMPLATE_MODES}, not {mode!r}")
    has = bool(getattr(tokenizer, "chat_template", None))
    if mode == "on" and not has:
        raise PrefkitError(
            "chat_template='on' but the tokenizer has no chat template; "
            "use a chat model's tokenizer or pass chat_template='off' for plain text"
        )
    use = has and mode != "off"
    if not use and any(not isinstance(p, str) for p in prompts):
        raise PrefkitError(
            "prompts are chat messages but no chat template is applied "
            f"(chat_template={mode!r}, tokenizer template: {'yes' if has else 'none'})"
        )
    return use


def _as_messages(prompt: str | Sequence[Message]) -> list[dict[str, str]]:
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    return [dict(m) for m in prompt]


def _prompt_text(prompt: str | Sequence[Message]) -> str:
    return prompt if isinstance(prompt, str) else "".join(m.get("content", "") for m in prompt)


def _ids(tokenizer: Any, texts: list[str], special: bool) -> list[list[int]]:
    """Token ids of ``texts`` in one batch call."""
    if not texts:
        return []
    enc = tokenizer(
        texts, add_special_tokens=special, return_attention_mask=False, return_token_type_ids=False
    )
    return list(enc["input_ids"])


def _ends_with_eos(tokenizer: Any, ids: list[int], eos: int) -> bool:
    """Ends with EOS, allowing only whitespace after it (a template's ``"<|im_end|>\\n"``)."""
    if ids and ids[-1] == eos:
        return True
    if eos not in ids:
        return False
    last = len(ids) - 1 - ids[::-1].index(eos)
    return not tokenizer.decode(ids[last + 1 :]).strip()


def _cut_prompt(ids: list[int], n: int | None, bos: int | None) -> list[int]:
    if n is None or len(ids) <= n:
        return ids
    if bos is not None and ids[0] == bos and n > 1:
        return [bos, *ids[len(ids) - n + 1 :]]
    return ids[len(ids) - n :]


def _encode_chat(
    tokenizer: Any, prompts: Sequence[str | Sequence[Message]], flat: list[str], owner: np.ndarray
) -> tuple[list[str], list[str], list[list[int]], list[list[int]], list[list[int]]]:
    """Rendered prompt and prompt+completion texts, their ids, and the completion ids."""
    convs = [_as_messages(p) for p in prompts]
    p_text = tokenizer.apply_chat_template(convs, tokenize=False, add_generation_prompt=True)
    full = [
        [*convs[r], {"role": "assistant", "content": c}] for r, c in zip(owner, flat, strict=True)
    ]
    j_text = tokenizer.apply_chat_template(full, tokenize=False)
    p_ids = _ids(tokenizer, p_text, special=False)
    j_ids = _ids(tokenizer, j_text, special=False)
    c_ids = [j[len(p_ids[r]) :] for r, j in zip(owner, j_ids, strict=True)]
    return p_text, j_text, p_ids, j_ids, c_ids


def _encode_plain(
    tokenizer: Any, prompts: Sequence[str | Sequence[Message]], flat: list[str], owner: np.ndarray
) -> tuple[list[str], list[str], list[list[int]], list[list[int]], list[list[int]]]:
    """As :func:`_encode_chat` for plain text: completions alone, then EOS."""
    p_text = [str(x) for x in prompts]
    j_text = [p_text[r] + c for r, c in zip(owner, flat, strict=True)]
    p_ids = _ids(tokenizer, p_text, special=True)
    j_ids = _ids(tokenizer, j_text, special=True)
    c_ids = [[*x, tokenizer.eos_token_id] for x in _ids(tokenizer, flat, special=False)]
    return p_text, j_text, p_ids, j_ids, c_ids


def tokenize(
    tokenizer: Any,
    prompts: Sequence[str | Sequence[Message]],
    completions: Sequence[Sequence[str]],
    ids: Sequence[Any],
    *,
    max_prompt_length: int | None = None,
    max_completion_length: int | None = None,
    chat_template: str = "auto",
) -> tuple[Groups, Preflight]:
    """Token ids of ``N`` groups and the pre-flight report on them.

    Parameters
    ----------
    tokenizer
        A Hugging Face tokenizer (fast tokenizers batch in Rust).
    prompts
        Per example a prompt string or a list of ``{"role", "content"}`` messages.
    completions
        Per example ``K >= 2`` completion strings (pairs: ``[chosen, rejected]``).
    ids
        Example ids, used in the report.
    max_prompt_length, max_completion_length
        Token limits (``None``: no limit). Prompts keep their end, completions their start.
    chat_template
        ``"auto"`` (the tokenizer's template when it has one), ``"on"`` (require it) or
        ``"off"`` (plain text).

    Returns
    -------
    tuple[Groups, Preflight]
        The tokenized groups (default labels) and the report; pass both to :func:`resolve`.
    """
    n = len(prompts)
    if not (len(completions) == len(ids) == n):
        raise PrefkitError(
            f"tokenize: {n} prompts, {len(completions)} completion groups and {len(ids)} ids"
        )
    for i, cs in enumerate(completions):
        if len(cs) < 2:
            raise PrefkitError(f"tokenize: example {ids[i]!r} has {len(cs)} completions, need >= 2")
    for name, lim in (
        ("max_prompt_length", max_prompt_length),
        ("max_completion_length", max_completion_length),
    ):
        if lim is not None and lim < 1:
            raise PrefkitError(f"tokenize: {name} must be >= 1, not {lim}")
    eos, bos = tokenizer.eos_token_id, tokenizer.bos_token_id
    if eos is None:
        raise PrefkitError("tokenize: the tokenizer has no EOS token (set tokenizer.eos_token)")
    chat = _use_chat(tokenizer, prompts, chat_template)

    sizes = [len(cs) for cs in completions]
    owner = np.repeat(np.arange(n), sizes)  # completion k belongs to row owner[k]
    flat = [c for cs in completions for c in cs]
    encode = _encode_chat if chat else _encode_plain
    p_text, j_text, p_ids, j_ids, c_ids = encode(tokenizer, prompts, flat, owner)
    mismatch = [j[: len(p_ids[r])] != p_ids[r] for r, j in zip(owner, j_ids, strict=True)]
    if not chat:
        # plain text: the completion tokenized alone must also be the joint text's suffix
        # (a SentencePiece prefix space or a merge across the boundary breaks this)
        mismatch = [
            m or j[len(p_ids[r]) :] != c[:-1]
            for m, r, j, c in zip(mismatch, owner, j_ids, c_ids, strict=True)
        ]
    # Boundary repair: the prompt as tokenized alone, the completion as the joint text after
    # the prompt's text, tokenized. Impossible when the prompt's text is not a prefix.
    # (Plain text completions are already tokenized alone: nothing to change.)
    unfixable = {
        k for k, m in enumerate(mismatch) if m and not j_text[k].startswith(p_text[owner[k]])
    }
    fixable = [k for k, m in enumerate(mismatch) if m and k not in unfixable and chat]
    rest = _ids(tokenizer, [j_text[k][len(p_text[owner[k]]) :] for k in fixable], special=False)
    repaired_c = dict(zip(fixable, rest, strict=True))

    out_p: list[list[int]] = []
    out_c: list[list[list[int]]] = []
    problems: dict[int, list[str]] = {}
    repairs: dict[int, Row | None] = {}
    start = np.concatenate([[0], np.cumsum(sizes)])
    for r in range(n):
        ks = range(int(start[r]), int(start[r + 1]))
        found: set[str] = set()
        p = p_ids[r]
        if not _prompt_text(prompts[r]).strip():
            found.add("empty_prompt")
        if bos is not None and p[:2] == [bos, bos]:
            found.add("double_bos")
        if any(not flat[k].strip() for k in ks):
            found.add("empty_completion")
        if any(mismatch[k] for k in ks):
            found.add("boundary_mismatch")
        cut_p = _cut_prompt(p, max_prompt_length, bos)
        cuts = [
            max_completion_length is not None and len(c_ids[k]) > max_completion_length for k in ks
        ]
        if len(cut_p) < len(p):
            found.add("prompt_truncated")
        if any(cuts):
            found.add("completion_truncated")
            if not all(cuts):
                found.add("asymmetric_truncation")
        if any(
            not cut and not _ends_with_eos(tokenizer, c_ids[k], eos)
            for k, cut in zip(ks, cuts, strict=True)
        ):
            found.add("lost_eos")
        out_p.append(cut_p)
        out_c.append([c_ids[k][:max_completion_length] for k in ks])
        if found:
            problems[r] = [name for name in PROBLEMS if name in found]
        if BLOCKING.intersection(found):
            repairs[r] = _repair(
                tokenizer,
                found,
                p,
                [repaired_c.get(k, c_ids[k]) for k in ks],
                any(k in unfixable for k in ks),
                max_prompt_length,
                max_completion_length,
                bos,
                eos,
            )

    str_ids = [str(x) for x in ids]
    counts = {name: 0 for name in PROBLEMS}
    examples: dict[str, list[str]] = {name: [] for name in PROBLEMS}
    for r, names in problems.items():
        for name in names:
            counts[name] += 1
            if len(examples[name]) < N_EXAMPLES:
                examples[name].append(str_ids[r])
    report = Preflight(n, chat, counts, examples, problems, repairs)
    return Groups(ids=str_ids, prompt_ids=out_p, completion_ids=out_c), report


def _repair(
    tokenizer: Any,
    found: set[str],
    prompt: list[int],
    comps: list[list[int]],
    broken: bool,
    max_p: int | None,
    max_c: int | None,
    bos: int | None,
    eos: int,
) -> Row | None:
    """One row with its repairable problems fixed, or ``None`` when it cannot be."""
    if {"empty_prompt", "empty_completion"} & found or broken:
        return None
    if "double_bos" in found:
        prompt = prompt[1:]
    comps = [c if _ends_with_eos(tokenizer, c, eos) else [*c, eos] for c in comps]
    cut = [max_c is not None and len(c) > max_c for c in comps]
    comps = [c[:max_c] for c in comps]
    if any(cut) and not all(cut):  # asymmetric: the cut ones end with EOS too
        comps = [[*c[:-1], eos] if k else c for c, k in zip(comps, cut, strict=True)]
    return _cut_prompt(prompt, max_p, bos), comps


# --- acting on the report -------------------------------------------------------------------
def problem_message(preflight: Preflight) -> str:
    """What blocks training, row counts and example ids, and the options to go on."""
    bad = preflight.blocked()
    lines = [f"tokenization: {len(bad)} of {preflight.rows} rows have problems that block training"]
    for name in PROBLEMS:
        if name in BLOCKING and preflight.counts[name]:
            eg = ", ".join(preflight.examples[name])
            n = preflight.counts[name]
            lines.append(f"  {name}: {n} row{'s' * (n != 1)} (e.g. {eg}): {PROBLEMS[name]}")
    lines.append(
        "Pass --on-problem drop to drop these rows, or --on-problem fix to repair what can "
        "be repaired and drop the rest."
    )
    return "\n".join(lines)


def resolve(
    groups: Groups, preflight: Preflight, on_problem: str = "error"
) -> tuple[Groups, np.ndarray]:
    """Act on the rows with a blocking problem.

    Parameters
    ----------
    groups
        The groups :func:`tokenize` returned (or rebuilt from its lists with labels).
    preflight
        Its report.
    on_problem
        ``"error"``: raise :class:`PrefkitError` naming the problems; ``"drop"``: drop the
        rows; ``"fix"``: repair them (double BOS -> one BOS; a cut completion in an
        asymmetric group ends with EOS in place of its last token; a missing EOS is
        appended; a boundary mismatch takes the prompt as tokenized alone and the
        completion as the text after it, tokenized) and drop those that cannot be
        (empty prompts or completions, a template that renders the prompt differently).

    Returns
    -------
    tuple[Groups, numpy.ndarray]
        The groups to train on and the indices of the kept rows in ``groups``.
    """
    if on_problem not in ON_PROBLEM:
        raise PrefkitError(f"--on-problem must be one of {ON_PROBLEM}, not {on_problem!r}")
    if len(groups) != preflight.rows:
        raise ValueError(f"{len(groups)} groups but the pre-flight checked {preflight.rows} rows")
    bad = set(preflight.blocked())
    if not bad:
        return groups, np.arange(len(groups))
    if on_problem == "error":
        raise PrefkitError(problem_message(preflight))
    prompts, comps = list(groups.prompt_ids), list(groups.completion_ids)
    if on_problem == "fix":
        for i in sorted(bad):
            fixed = preflight.repairs.get(i)
            if fixed is not None:
                prompts[i], comps[i] = fixed
                bad.discard(i)
    kept = np.array([i for i in range(len(groups)) if i not in bad], dtype=np.int64)
    if not len(kept):
        raise PrefkitError(
            f"--on-problem {on_problem} leaves no rows left\n{problem_message(preflight)}"
        )
    patched = Groups(
        ids=groups.ids,
        prompt_ids=prompts,
        completion_ids=comps,
        strength=groups.strength,
        scores=groups.scores,
        stage=groups.stage,
    )
    return patched.select(kept), kept
