"""tokenize + resolve: planted tokenization problems are found, counted, dropped and fixed.

Golden values come from planted truth (which rows carry which problem) and from the
tokenizer itself called independently (``tok(text)``, ``apply_chat_template(tokenize=True)``);
token ids are compared exactly.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from transformers import AutoTokenizer

from prefkit.errors import PrefkitError
from prefkit.training.groups import Groups
from prefkit.training.tiny import CHAT_TEMPLATE, SAMPLE_TEXT, tiny_checkpoint
from prefkit.training.tokenize import BLOCKING, PROBLEMS, resolve, tokenize

DOC = Path(__file__).parents[2] / "docs" / "dpo" / "tokenization.md"
LONG_1 = " The quick brown fox jumps over the lazy dog."  # 12 tokens + EOS
LONG_2 = " Please write a short poem about the sea."  # 12 tokens + EOS
LONG_P = "Direct preference optimisation trains a policy against a frozen reference model."
MAX_P, MAX_C = 16, 10

# id -> (prompt, completions, planted problems); plain text, max lengths MAX_P / MAX_C.
PLAIN: dict[str, tuple[str, list[str], list[str]]] = {
    "clean1": ("What is the capital of France?", [" Paris.", " London."], []),
    "clean2": ("Explain a transformer.", [" It reads tokens.", " No idea."], []),
    "merge": ("The capit", ["al of France", " Something."], ["boundary_mismatch"]),
    "bos": ("<s>Hello there.", [" Hi.", " Yo."], ["double_bos"]),
    "empty_c": ("Say something.", ["", " Something."], ["empty_completion"]),
    "empty_p": ("", [" A.", " B."], ["empty_prompt"]),
    "asym": (
        "Tell me more.",
        [LONG_1, " Short."],
        ["completion_truncated", "asymmetric_truncation"],
    ),
    "both_cut": ("Tell me more.", [LONG_1, LONG_2], ["completion_truncated"]),
    "long_p": (LONG_P, [" A.", " B."], ["prompt_truncated"]),
}
IDS = list(PLAIN)
ROW = {k: i for i, k in enumerate(IDS)}


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # "\n\n " in the training text gives the tokenizer a "\n\n" merge (the chat boundary case)
    texts = [*SAMPLE_TEXT, "One.\n\n Two.\n\n Three.\n\n Four."]
    return tiny_checkpoint(tmp_path_factory.mktemp("tok"), texts)


def load(ckpt: Path, template: str | None = CHAT_TEMPLATE) -> Any:
    tok = AutoTokenizer.from_pretrained(ckpt)
    tok.chat_template = template
    return tok


def enc(tok: Any, text: str, special: bool = False) -> list[int]:
    return list(tok(text, add_special_tokens=special).input_ids)


def plain(tok: Any) -> tuple[Groups, Any]:
    prompts = [PLAIN[k][0] for k in IDS]
    comps = [PLAIN[k][1] for k in IDS]
    return tokenize(
        tok,
        prompts,
        comps,
        IDS,
        max_prompt_length=MAX_P,
        max_completion_length=MAX_C,
        chat_template="off",
    )


def chat_full(tok: Any, prompt: list[dict[str, str]], completion: str) -> list[int]:
    """Transformers' own tokenization of the whole conversation (the independent golden)."""
    conv = [*prompt, {"role": "assistant", "content": completion}]
    out = tok.apply_chat_template(conv, tokenize=True, return_dict=True)
    return list(out["input_ids"])


# --- plain text -----------------------------------------------------------------------------
def test_planted_problems_plain(ckpt: Path) -> None:
    tok = load(ckpt)
    # the planted merge really merges: "capit" + "al" tokenize differently joined
    p = enc(tok, "The capit", special=True)
    assert enc(tok, "The capital of France", special=True)[: len(p)] != p
    _, pf = plain(tok)
    assert not pf.chat_template and pf.rows == len(IDS)
    want = {ROW[k]: v[2] for k, v in PLAIN.items() if v[2]}
    assert pf.problems == want
    expected_counts = {name: 0 for name in PROBLEMS}
    for names in want.values():
        for name in names:
            expected_counts[name] += 1
    assert pf.counts == expected_counts
    assert pf.examples["completion_truncated"] == ["asym", "both_cut"]
    assert pf.examples["double_bos"] == ["bos"]
    assert sorted(pf.blocked()) == sorted(
        ROW[k] for k in ("merge", "bos", "empty_c", "empty_p", "asym")
    )
    assert not pf.ok


def test_clean_rows_decode_plain(ckpt: Path) -> None:
    tok = load(ckpt)
    groups, _ = plain(tok)
    for k in ("clean1", "clean2"):
        prompt, comps, _ = PLAIN[k]
        r = ROW[k]
        assert tok.decode(groups.prompt_ids[r]) == "<s>" + prompt
        assert groups.prompt_ids[r] == enc(tok, prompt, special=True)
        for c, ids in zip(comps, groups.completion_ids[r], strict=True):
            assert ids[-1] == tok.eos_token_id
            assert tok.decode(ids) == c + "</s>"


def test_truncation_keeps_prompt_end_and_completion_start(ckpt: Path) -> None:
    tok = load(ckpt)
    groups, _ = plain(tok)
    body = enc(tok, LONG_P)
    assert len(body) + 1 > MAX_P
    assert groups.prompt_ids[ROW["long_p"]] == [tok.bos_token_id, *body[-(MAX_P - 1) :]]
    assert groups.completion_ids[ROW["both_cut"]] == [
        enc(tok, LONG_1)[:MAX_C],
        enc(tok, LONG_2)[:MAX_C],
    ]
    assert all(len(c) <= MAX_C for cs in groups.completion_ids for c in cs)
    assert all(len(p) <= MAX_P for p in groups.prompt_ids)


def test_error_names_problems_and_options(ckpt: Path) -> None:
    groups, pf = plain(load(ckpt))
    with pytest.raises(PrefkitError) as err:
        resolve(groups, pf)
    msg = str(err.value)
    assert "5 of 9 rows" in msg
    assert "double_bos: 1 row (e.g. bos)" in msg
    assert "asymmetric_truncation: 1 row (e.g. asym)" in msg
    assert "--on-problem drop" in msg and "--on-problem fix" in msg
    assert "prompt_truncated" not in msg  # reported, not blocking


def test_drop_removes_exactly_the_blocked_rows(ckpt: Path) -> None:
    groups, pf = plain(load(ckpt))
    # labels travel with the rows
    labelled = Groups(
        groups.ids,
        groups.prompt_ids,
        groups.completion_ids,
        strength=np.linspace(0.5, 1.0, len(groups)),
        stage=np.arange(len(groups)),
    )
    out, kept = resolve(labelled, pf, "drop")
    assert out.ids == ["clean1", "clean2", "both_cut", "long_p"]
    assert kept.tolist() == [ROW[k] for k in out.ids]
    assert out.stage.tolist() == kept.tolist()
    assert np.array_equal(out.strength, labelled.strength[kept])
    assert out.prompt_ids == [groups.prompt_ids[i] for i in kept]


def test_fix_repairs_and_drops_the_rest(ckpt: Path) -> None:
    tok = load(ckpt)
    groups, pf = plain(tok)
    out, kept = resolve(groups, pf, "fix")
    assert out.ids == ["clean1", "clean2", "merge", "bos", "asym", "both_cut", "long_p"]
    assert kept.tolist() == [ROW[k] for k in out.ids]
    got = dict(zip(out.ids, zip(out.prompt_ids, out.completion_ids, strict=True), strict=True))
    eos = tok.eos_token_id
    # double BOS -> one BOS: what the tokenizer gives without the text's "<s>"
    assert got["bos"][0] == enc(tok, "Hello there.", special=True)
    # the cut completion ends with EOS in place of its last token, the short one unchanged
    assert got["asym"][1] == [[*enc(tok, LONG_1)[: MAX_C - 1], eos], [*enc(tok, " Short."), eos]]
    # plain text already pairs the prompt alone with the completion alone: kept as is
    assert got["merge"] == (groups.prompt_ids[ROW["merge"]], groups.completion_ids[ROW["merge"]])
    # rows without blocking problems are untouched (symmetric truncation stays as cut)
    for k in ("clean1", "clean2", "both_cut", "long_p"):
        assert got[k] == (groups.prompt_ids[ROW[k]], groups.completion_ids[ROW[k]])


def test_clean_data_passes_through(ckpt: Path) -> None:
    tok = load(ckpt)
    keys = ["clean1", "clean2"]
    groups, pf = tokenize(tok, [PLAIN[k][0] for k in keys], [PLAIN[k][1] for k in keys], keys)
    assert pf.ok and pf.problems == {}
    assert pf.lines()[1] == "  no problems"
    out, kept = resolve(groups, pf)
    assert out is groups and kept.tolist() == [0, 1]


# --- chat template --------------------------------------------------------------------------
def test_clean_rows_chat_match_transformers(ckpt: Path) -> None:
    tok = load(ckpt)
    prompts: list[Any] = [
        [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Capital of France?"},
        ],
        "Explain a transformer.",
    ]
    comps = [["Paris.", "London."], ["It reads tokens.", "No idea."]]
    groups, pf = tokenize(tok, prompts, comps, ["a", "b"])
    assert pf.chat_template and pf.ok and pf.problems == {}
    for r, prompt in enumerate(prompts):
        msgs = prompt if isinstance(prompt, list) else [{"role": "user", "content": prompt}]
        rendered = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
        assert tok.decode(groups.prompt_ids[r]) == rendered
        for c, ids in zip(comps[r], groups.completion_ids[r], strict=True):
            assert tok.decode(ids) == c + "</s>"
            assert groups.prompt_ids[r] + ids == chat_full(tok, msgs, c)


def test_chat_boundary_merge_is_fixed(ckpt: Path) -> None:
    tok = load(ckpt)
    user = [{"role": "user", "content": "Hi"}]
    p = list(
        tok.apply_chat_template(user, add_generation_prompt=True, return_dict=True)["input_ids"]
    )
    full = chat_full(tok, user, "\n Sure.")
    assert full[: len(p)] != p  # planted: the header's "\n" merges with the reply's "\n"
    groups, pf = tokenize(tok, ["Hi", "Hi"], [["\n Sure.", "No."], ["Yes.", "No."]], ["nl", "ok"])
    assert pf.problems == {0: ["boundary_mismatch"]}
    out, kept = resolve(groups, pf, "fix")
    assert kept.tolist() == [0, 1]
    assert out.prompt_ids[0] == p
    assert [tok.decode(c) for c in out.completion_ids[0]] == ["\n Sure.</s>", "No.</s>"]
    assert tok.decode(out.prompt_ids[0] + out.completion_ids[0][0]) == tok.decode(full)


def test_template_rendering_prompt_differently_cannot_be_fixed(ckpt: Path) -> None:
    other = CHAT_TEMPLATE.replace(
        "<|{{ m['role'] }}|>",
        "{% if m['role'] == 'assistant' %}<|bot|>{% else %}<|{{ m['role'] }}|>{% endif %}",
    )
    tok = load(ckpt, other)
    groups, pf = tokenize(tok, ["Hi", "Yo"], [["A.", "B."], ["C.", "D."]], ["x", "y"])
    assert pf.counts["boundary_mismatch"] == 2
    with pytest.raises(PrefkitError, match="no rows left"):
        resolve(groups, pf, "fix")


def test_template_that_double_adds_bos(ckpt: Path) -> None:
    tok = load(ckpt, "{{ bos_token }}" + CHAT_TEMPLATE)
    good = load(ckpt)
    prompts, comps, ids = ["Hi", "Yo", "Hey"], [["A.", "B."]] * 3, ["x", "y", "z"]
    groups, pf = tokenize(tok, prompts, comps, ids)
    assert pf.counts["double_bos"] == 3 and pf.examples["double_bos"] == ids
    out, kept = resolve(groups, pf, "fix")
    ref, _ = tokenize(good, prompts, comps, ids)
    assert kept.tolist() == [0, 1, 2]
    assert out.prompt_ids == ref.prompt_ids and out.completion_ids == ref.completion_ids


def test_lost_eos_and_whitespace_after_eos(ckpt: Path) -> None:
    no_eos = load(ckpt, CHAT_TEMPLATE.replace("{{ eos_token }}", ""))
    groups, pf = tokenize(no_eos, ["Hi", "Yo"], [["A.", "B."], ["C.", "D."]], ["x", "y"])
    assert pf.counts["lost_eos"] == 2 and pf.counts["completion_truncated"] == 0
    out, _ = resolve(groups, pf, "fix")
    assert [tok_c[-1] for cs in out.completion_ids for tok_c in cs] == [no_eos.eos_token_id] * 4
    assert no_eos.decode(out.completion_ids[0][0]) == "A.</s>"
    # "</s>\n" (an end-of-turn newline after EOS, as Qwen's "<|im_end|>\n") is fine
    nl = load(ckpt, CHAT_TEMPLATE.replace("{{ eos_token }}", "{{ eos_token }}{{ '\\n' }}"))
    _, pf = tokenize(nl, ["Hi"], [["A.", "B."]], ["x"])
    assert pf.ok and pf.problems == {}


def test_chat_empty_completion_and_asymmetric_cut(ckpt: Path) -> None:
    tok = load(ckpt)
    groups, pf = tokenize(
        tok, ["Hi", "Yo"], [["", "B."], [LONG_1, "Ok."]], ["e", "a"], max_completion_length=6
    )
    assert pf.problems == {
        0: ["empty_completion"],
        1: ["completion_truncated", "asymmetric_truncation"],
    }
    out, kept = resolve(groups, pf, "fix")
    assert kept.tolist() == [1]
    cut = groups.completion_ids[1][0]
    assert out.completion_ids[0][0] == [*cut[:-1], tok.eos_token_id]


# --- modes, errors, report ------------------------------------------------------------------
def test_chat_template_modes(tmp_path: Path, ckpt: Path) -> None:
    bare = AutoTokenizer.from_pretrained(tiny_checkpoint(tmp_path, chat_template=False))
    with pytest.raises(PrefkitError, match="no chat template"):
        tokenize(bare, ["Hi"], [["A.", "B."]], ["x"], chat_template="on")
    with pytest.raises(PrefkitError, match="chat messages"):
        tokenize(bare, [[{"role": "user", "content": "Hi"}]], [["A.", "B."]], ["x"])
    _, pf = tokenize(bare, ["Hi"], [["A.", "B."]], ["x"])  # auto: plain text
    assert not pf.chat_template
    tok = load(ckpt)
    groups, pf = tokenize(tok, ["Hi"], [["A.", "B."]], ["x"], chat_template="off")
    assert not pf.chat_template and groups.prompt_ids[0] == enc(tok, "Hi", special=True)
    with pytest.raises(PrefkitError, match="chat_template must be"):
        tokenize(tok, ["Hi"], [["A.", "B."]], ["x"], chat_template="yes")
    with pytest.raises(PrefkitError, match="need >= 2"):
        tokenize(tok, ["Hi"], [["A."]], ["x"])
    groups, pf = tokenize(tok, ["Hi"], [["A.", "B."]], ["x"])
    with pytest.raises(PrefkitError, match="on-problem must be"):
        resolve(groups, pf, "ignore")


class Counting:
    """A tokenizer proxy counting the tokenizer and template calls."""

    def __init__(self, tok: Any) -> None:
        self.tok, self.calls = tok, 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        return self.tok(*args, **kwargs)

    def apply_chat_template(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        return self.tok.apply_chat_template(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.tok, name)


@pytest.mark.parametrize(("mode", "calls"), [("off", 3), ("on", 4)])
def test_batched_calls(ckpt: Path, mode: str, calls: int) -> None:
    tok = Counting(load(ckpt))
    n = 300
    _, pf = tokenize(
        tok,
        [f"Question {i}?" for i in range(n)],
        [[" Yes.", " No."]] * n,
        range(n),
        chat_template=mode,
    )
    assert pf.rows == n and tok.calls == calls  # independent of n


def test_report_dict_lines_and_docs(ckpt: Path) -> None:
    _, pf = plain(load(ckpt))
    d = pf.to_dict()
    json.dumps(d)
    assert list(d["problems"]) == list(PROBLEMS)
    assert d["problems"]["double_bos"] == {"count": 1, "blocking": True, "examples": ["bos"]}
    assert d["blocked_rows"] == 5 and d["ok"] is False
    lines = pf.lines()
    assert lines[0] == "tokenization pre-flight: 9 rows, chat template off, 5 blocked"
    found = [n for n in PROBLEMS if pf.counts[n]]
    assert [ln.split()[0] for ln in lines[2:]] == found
    assert re.search(r"completion_truncated\s+2\s+no\s+asym, both_cut", "\n".join(lines))
    # the docs' problem table lists every problem with its blocking flag
    doc = DOC.read_text()
    for name in PROBLEMS:
        row = re.search(rf"^\| `{name}` \| (yes|no) \|", doc, re.M)
        assert row is not None, name
        assert (row.group(1) == "yes") == (name in BLOCKING)
