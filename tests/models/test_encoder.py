"""Frozen sentence encoders: fp32, torch int8, ONNX Runtime int8 and bf16 modes.

Golden values: plain sentence-transformers ``encode`` (the peer) for the fp32 path and
for the ONNX pipeline run on an unquantized export; the quantized modes are held to a
mean cosine against fp32 measured on HH-RLHF texts (``benchmarks/rm_embed_throughput.py``):
onnx-int8 0.994 (min 0.98), int8 0.98 (min 0.94), bf16 0.99999.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

pytest.importorskip("sentence_transformers")
import prefkit.models.encoder as enc_mod
from prefkit.errors import PrefkitError
from prefkit.models.encoder import QUANTIZE, converted_path, load_encoder
from prefkit.models.features import EncoderSpec

# two paraphrase pairs per topic, four topics: row 2k and 2k+1 say the same thing
TEXTS = [
    "A man is eating a plate of pasta.",
    "Someone is having spaghetti for dinner.",
    "The stock market fell sharply today.",
    "Share prices dropped a lot this afternoon.",
    "How do I reset my email password?",
    "I forgot the password to my mail account, how can I change it?",
    "The cat is sleeping on the sofa.",
    "A kitten naps on the couch.",
]
#: Mean cosine to fp32 each mode must reach (measured: see the module docstring).
MIN_COSINE = {"onnx-int8": 0.97, "int8": 0.93, "bf16": 0.999}


def _needs(mode: str) -> None:
    if mode == "onnx-int8":
        pytest.importorskip("onnxruntime")
        pytest.importorskip("onnx")


@pytest.fixture(scope="module")
def cache_root(tmp_path_factory):
    return tmp_path_factory.mktemp("encoders")


@pytest.fixture(scope="module")
def fp32():
    return load_encoder(EncoderSpec(max_length=128, batch_size=4))(TEXTS)


@pytest.fixture(scope="module")
def encoded(cache_root):
    """Each mode's rows for TEXTS (loaded once per module)."""
    out = {}

    def get(mode: str) -> np.ndarray:
        _needs(mode)
        if mode not in out:
            spec = EncoderSpec(quantize=mode, max_length=128, batch_size=4)
            out[mode] = load_encoder(spec, cache_root=cache_root)(TEXTS)
        return out[mode]

    return get


def test_fp32_matches_plain_sentence_transformers(fp32):
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(EncoderSpec().resolved_path(), device="cpu")
    model.max_seq_length = 128
    peer = model.encode(TEXTS, batch_size=4, normalize_embeddings=True)
    np.testing.assert_allclose(fp32, peer, atol=1e-5)


@pytest.mark.parametrize("mode", QUANTIZE)
def test_rows_are_unit_norm_float32(mode, encoded, fp32):
    x = fp32 if mode == "none" else encoded(mode)
    assert x.shape == (len(TEXTS), 384) and x.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("mode", [m for m in QUANTIZE if m != "none"])
def test_quantized_rows_agree_with_fp32(mode, encoded, fp32):
    x = encoded(mode)
    cos = np.sum(x * fp32, axis=1)  # (n,) rows are unit norm
    assert cos.mean() >= MIN_COSINE[mode], cos
    # nearest-neighbour structure: each text's nearest other text is its paraphrase,
    # under fp32 and under the quantized mode alike
    for rows in (fp32, x):
        sim = rows @ rows.T
        np.fill_diagonal(sim, -np.inf)
        assert list(sim.argmax(axis=1)) == [i ^ 1 for i in range(len(TEXTS))]
        para = sim[np.arange(0, 8, 2), np.arange(1, 8, 2)]  # (4,)
        unrelated = sim[0, 2:].max(), sim[2, [0, 1, 4, 5, 6, 7]].max()
        assert para.min() > max(unrelated)


def test_onnx_pipeline_without_quantization_equals_fp32(tmp_path, fp32):
    """Padding, length sorting, pooling and row order of the ONNX path, isolated from
    quantization: an fp32 export run through it gives sentence-transformers' rows."""
    _needs("onnx-int8")
    spec = EncoderSpec(max_length=128, batch_size=3)  # 3 batches of mixed lengths
    model = enc_mod._sentence_transformer(spec)
    enc_mod._export_onnx(model, tmp_path / "fp32.onnx")
    encode = enc_mod._onnx_encoder(model, spec, tmp_path / "fp32.onnx")
    np.testing.assert_allclose(encode(TEXTS), fp32, atol=1e-4)
    rev = encode(TEXTS[::-1])
    np.testing.assert_allclose(rev, fp32[::-1], atol=1e-4)
    assert encode([]).shape == (0, 384)


def test_converted_model_is_built_once_and_reused(cache_root, encoded, monkeypatch):
    first = encoded("onnx-int8")  # built the converted model under cache_root
    spec = EncoderSpec(quantize="onnx-int8", max_length=128, batch_size=4)
    path = converted_path(spec, cache_root=cache_root)
    mtime = path.stat().st_mtime_ns
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp leftovers

    def no_export(*args, **kwargs):
        raise AssertionError("re-exported a converted model")

    monkeypatch.setattr(enc_mod, "_export_onnx", no_export)
    # another token limit shares the same converted model (TEXTS are under 96 tokens, so
    # the batches, and with them the per-batch activation scales, are the same)
    again = load_encoder(
        EncoderSpec(quantize="onnx-int8", max_length=96, batch_size=4), cache_root=cache_root
    )(TEXTS)
    assert path.stat().st_mtime_ns == mtime
    np.testing.assert_allclose(again, first, atol=1e-6)
    assert (
        converted_path(EncoderSpec(quantize="onnx-int8", max_length=64), cache_root=cache_root)
        == path
    )


def test_unknown_mode_is_a_user_error():
    with pytest.raises(PrefkitError, match="unknown quantize mode 'int4'"):
        load_encoder(EncoderSpec(quantize="int4"))
    with pytest.raises(PrefkitError, match="no converted model"):
        converted_path(EncoderSpec(quantize="none"))


def test_missing_onnxruntime_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import now fails
    with pytest.raises(PrefkitError, match=r"onnxruntime.*prefkit\[embed\]"):
        load_encoder(EncoderSpec(quantize="onnx-int8"))
