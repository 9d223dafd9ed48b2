"""tiny_checkpoint: a loadable, seeded, chat-ready causal LM directory."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerFast

from prefkit.errors import PrefkitError
from prefkit.training.tiny import tiny_checkpoint

CONV = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "What is the capital of France?"},
    {"role": "assistant", "content": "Paris."},
]


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


@pytest.mark.parametrize(
    ("arch", "cls"), [("llama", "LlamaForCausalLM"), ("qwen2", "Qwen2ForCausalLM")]
)
def test_round_trip(tmp_path: Path, arch: str, cls: str) -> None:
    d = tiny_checkpoint(tmp_path / arch, arch=arch, hidden_size=32, layers=1, heads=4, kv_heads=2)
    assert (d / "model.safetensors").exists()
    tok = AutoTokenizer.from_pretrained(d)
    model = AutoModelForCausalLM.from_pretrained(d)
    assert type(model).__name__ == cls
    specials = (tok.bos_token, tok.eos_token, tok.pad_token, tok.unk_token)
    assert specials == ("<s>", "</s>", "<pad>", "<unk>")
    assert len({tok.bos_token_id, tok.eos_token_id, tok.pad_token_id}) == 3
    cfg = model.config
    assert cfg.vocab_size == len(tok) <= 512
    assert (cfg.hidden_size, cfg.num_hidden_layers) == (32, 1)
    assert (cfg.num_attention_heads, cfg.num_key_value_heads) == (4, 2)
    assert (cfg.bos_token_id, cfg.eos_token_id) == (tok.bos_token_id, tok.eos_token_id)
    # AutoTokenizer may pick a model-specific class (Qwen2Tokenizer); it must encode exactly
    # as the saved tokenizer.json does.
    saved = PreTrainedTokenizerFast(tokenizer_file=str(d / "tokenizer.json"))
    text = "Héllo,  world!\n\n  It's 42 o'clock.\tcafé"
    assert tok(text).input_ids == saved(text).input_ids
    ids = tok("The quick brown fox.", return_tensors="pt").input_ids
    assert ids[0, 0] == tok.bos_token_id  # the tokenizer adds BOS, as Llama's does
    assert tok.decode(ids[0], skip_special_tokens=True) == "The quick brown fox."
    logits = model(ids).logits
    assert logits.shape == (1, ids.shape[1], len(tok))


def test_same_seed_same_weights(tmp_path: Path) -> None:
    a = AutoModelForCausalLM.from_pretrained(tiny_checkpoint(tmp_path / "a", seed=3))
    b = AutoModelForCausalLM.from_pretrained(tiny_checkpoint(tmp_path / "b", seed=3))
    c = AutoModelForCausalLM.from_pretrained(tiny_checkpoint(tmp_path / "c", seed=4))
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)
    tok_a = json.loads((tmp_path / "a" / "tokenizer.json").read_text())
    tok_b = json.loads((tmp_path / "b" / "tokenizer.json").read_text())
    assert tok_a == tok_b


def test_global_rng_untouched(tmp_path: Path) -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    tiny_checkpoint(tmp_path, seed=0)
    assert torch.equal(torch.rand(3), expected)


def test_chat_template_renders_and_tokenizes(tmp_path: Path) -> None:
    tok = AutoTokenizer.from_pretrained(tiny_checkpoint(tmp_path))
    text = tok.apply_chat_template(CONV, tokenize=False)
    assert text == (
        "<s><|system|>\nBe brief.\n<|user|>\nWhat is the capital of France?\n"
        "<|assistant|>\nParis.</s>"
    )
    prompt = tok.apply_chat_template(CONV[:2], tokenize=False, add_generation_prompt=True)
    assert prompt == text[: text.index("Paris.")]
    ids = tok.apply_chat_template(CONV, tokenize=True, return_dict=False)
    if isinstance(ids, dict):  # transformers versions differ in the default return type
        ids = ids["input_ids"]
    assert ids[0] == tok.bos_token_id and ids[1] != tok.bos_token_id  # one BOS
    assert ids[-1] == tok.eos_token_id
    assert tok.decode(ids) == text


def test_without_chat_template_and_custom_texts(tmp_path: Path) -> None:
    d = tiny_checkpoint(tmp_path, ["zebra zebra zebra quokka"] * 5, chat_template=False)
    tok = AutoTokenizer.from_pretrained(d)
    assert not tok.chat_template
    assert tok.tokenize("zebra") == ["zebra"]  # learned from the given texts


def test_fast(tmp_path: Path) -> None:
    tiny_checkpoint(tmp_path / "warm")  # imports
    t = time.perf_counter()
    tiny_checkpoint(tmp_path / "timed")
    assert time.perf_counter() - t < 2.0


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(PrefkitError, match="unknown arch"):
        tiny_checkpoint(tmp_path, arch="gpt2")
    with pytest.raises(PrefkitError, match="kv_heads"):
        tiny_checkpoint(tmp_path, heads=4, kv_heads=3)
