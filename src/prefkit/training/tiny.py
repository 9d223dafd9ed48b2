"""A tiny, randomly initialised causal LM checkpoint for tests, demos and smoke runs.

:func:`tiny_checkpoint` writes a directory that loads with ``AutoTokenizer`` and
``AutoModelForCausalLM`` offline, exactly like a downloaded model, so anything that
takes ``--model PATH`` can be exercised in well under a second on a CPU:

* a byte-level BPE tokenizer (the GPT-2 scheme, Radford et al. 2019; BPE after Sennrich
  et al. 2016, arXiv:1508.07909) trained on the given texts, with ``<s>``/``</s>``/``<pad>``
  as BOS/EOS/pad (and an ``<unk>`` that byte-level BPE never emits, so that
  ``Qwen2Tokenizer`` adds none of its own) and a post-processor that puts ``<s>`` in front
  of every encoding, as Llama tokenizers do;
* optionally a small Jinja chat template (``<|user|>``, ``<|assistant|>``, ``<|system|>``
  turn headers; BOS first; assistant turns end with EOS; ``add_generation_prompt`` opens
  an assistant turn);
* a ``LlamaForCausalLM`` or ``Qwen2ForCausalLM`` with random weights drawn under
  ``torch.manual_seed(seed)`` (the global RNG state is left untouched).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prefkit.errors import PrefkitError
from prefkit.models.finetune import quiet_transformers

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast

BOS, EOS, PAD, UNK = "<s>", "</s>", "<pad>", "<unk>"

#: Qwen2's pre-tokenizer split (as in its ``tokenizer.json``). ``AutoTokenizer`` loads a
#: ``qwen2`` checkpoint's tokenizer as ``Qwen2Tokenizer``, which imposes this pipeline; a
#: ``qwen2`` tiny tokenizer is trained with it so that it loads back unchanged.
QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)

#: BOS, then each turn as ``<|role|>\n content``; assistant turns end with EOS, others with a
#: newline. (Transformers renders templates with ``trim_blocks``: literal newlines right
#: after a block tag are dropped, hence ``{{ '\n' }}``.)
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for m in messages %}"
    "<|{{ m['role'] }}|>{{ '\\n' }}{{ m['content'] }}"
    "{% if m['role'] == 'assistant' %}{{ eos_token }}{% else %}{{ '\\n' }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{{ '\\n' }}{% endif %}"
)


SAMPLE_TEXT = [
    "The quick brown fox jumps over the lazy dog.",
    "A preference dataset pairs one prompt with a chosen and a rejected response.",
    "Direct preference optimisation trains a policy against a frozen reference model.",
    "Please write a short poem about the sea, the wind and the sky.",
    "Sure! Here is a short answer to your question, with an example.",
    "I am sorry, but I cannot help with that request.",
    "What is the capital of France? The capital of France is Paris.",
    "Explain how a transformer reads a sentence one token at a time.",
    "user assistant system: hello, how are you today? I am fine, thank you.",
    "Numbers like 1, 2, 3, 10 and 42 appear in text too; so do (brackets) and quotes.",
]

ARCHS = ("llama", "qwen2")


def _tokenizer(
    texts: Sequence[str], vocab_size: int, chat_template: bool, arch: str
) -> PreTrainedTokenizerFast:
    from tokenizers import (
        Regex,
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
        trainers,
    )
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    if arch == "qwen2":
        tok.normalizer = normalizers.NFC()
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Split(Regex(QWEN2_SPLIT), behavior="isolated"),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
            ]
        )
    else:
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[BOS, EOS, PAD, UNK],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(texts), trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, tok.token_to_id(BOS))]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=BOS, eos_token=EOS, pad_token=PAD, unk_token=UNK
    )
    if chat_template:
        fast.chat_template = CHAT_TEMPLATE
    return fast


def tiny_model(
    arch: str = "llama",
    *,
    vocab_size: int,
    hidden_size: int = 64,
    layers: int = 2,
    heads: int = 4,
    kv_heads: int = 2,
    seed: int = 0,
    tie_word_embeddings: bool = False,
    **special_ids: int | None,
) -> Any:
    """A randomly initialised Llama or Qwen2 causal LM (MLP width ``2 * hidden_size``),
    seeded without touching the global RNG. ``special_ids``: ``bos_token_id`` etc."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    if arch not in ARCHS:
        raise PrefkitError(f"tiny model: unknown arch {arch!r}; choose one of {ARCHS}")
    if hidden_size % heads or heads % kv_heads:
        raise PrefkitError(
            f"tiny model: hidden_size ({hidden_size}) must divide by heads ({heads}) "
            f"and heads by kv_heads ({kv_heads})"
        )
    sizes: dict[str, Any] = dict(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=4096,
        tie_word_embeddings=tie_word_embeddings,
        **special_ids,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if arch == "llama":
            return LlamaForCausalLM(LlamaConfig(**sizes))
        return Qwen2ForCausalLM(Qwen2Config(**sizes))


def tiny_checkpoint(
    path: str | Path,
    texts: Sequence[str] | None = None,
    *,
    arch: str = "llama",
    vocab_size: int = 512,
    hidden_size: int = 64,
    layers: int = 2,
    heads: int = 4,
    kv_heads: int = 2,
    seed: int = 0,
    chat_template: bool = True,
) -> Path:
    """Write a tiny causal LM checkpoint (tokenizer + random weights) to ``path``.

    Parameters
    ----------
    path
        Output directory (created; existing files are overwritten).
    texts
        Text to train the BPE tokenizer on; a small built-in English sample when ``None``.
        The vocabulary is at most ``vocab_size`` (fewer when the text has fewer merges).
    arch
        ``"llama"`` or ``"qwen2"``.
    vocab_size, hidden_size, layers, heads, kv_heads
        Sizes of the tokenizer and the transformer (MLP width ``2 * hidden_size``).
    seed
        Seed of the weight initialisation: the same seed gives the same weights.
    chat_template
        Save :data:`CHAT_TEMPLATE` with the tokenizer.

    Returns
    -------
    Path
        ``path``, ready for ``from_pretrained``.
    """
    out = Path(path)
    tok = _tokenizer(SAMPLE_TEXT if texts is None else texts, vocab_size, chat_template, arch)
    model = tiny_model(
        arch,
        vocab_size=len(tok),
        hidden_size=hidden_size,
        layers=layers,
        heads=heads,
        kv_heads=kv_heads,
        seed=seed,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    out.mkdir(parents=True, exist_ok=True)
    tok.save_pretrained(out)
    with quiet_transformers():
        model.save_pretrained(out, safe_serialization=True)
    return out
