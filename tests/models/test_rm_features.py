"""The embedding cache: texts are encoded once per encoder, keyed by model and text."""

from __future__ import annotations

import numpy as np
import pytest

import prefkit.models.encoder as encoder_mod
from prefkit.models.features import EmbeddingCache, EncoderSpec, embed, text_keys


@pytest.fixture
def fake_encoder(monkeypatch):
    seen: list[str] = []

    def load(spec):
        def encode(texts):
            seen.extend(texts)
            return np.array([[len(t), t.count("a"), 1.0] for t in texts], dtype=np.float32)

        return encode

    monkeypatch.setattr(encoder_mod, "load_encoder", load)
    return seen


@pytest.fixture
def model_dir(tmp_path):
    d = tmp_path / "model"
    d.mkdir()
    (d / "model.safetensors").write_bytes(b"x" * 10)
    return d


def test_second_run_encodes_nothing(fake_encoder, model_dir, tmp_path):
    spec = EncoderSpec(str(model_dir))
    texts = ["a", "bb", "a", "ccc"]
    first = embed(texts, spec, cache_dir=tmp_path / "c")
    assert sorted(fake_encoder) == ["a", "bb", "ccc"]  # the repeat is encoded once
    assert first[:, 0].tolist() == [1, 2, 1, 3]
    fake_encoder.clear()
    again = embed(texts, spec, cache_dir=tmp_path / "c")
    assert fake_encoder == [] and np.array_equal(first, again)
    embed(["bb", "dddd"], spec, cache_dir=tmp_path / "c")
    assert fake_encoder == ["dddd"]
    assert not list((tmp_path / "c").rglob("*.tmp*"))


def test_changed_model_or_settings_miss_the_cache(fake_encoder, model_dir, tmp_path):
    spec = EncoderSpec(str(model_dir))
    embed(["a"], spec, cache_dir=tmp_path)
    key = spec.key()
    assert EncoderSpec(str(model_dir), max_length=128).key() != key
    assert EncoderSpec(str(model_dir), quantize="int8").key() != key
    (model_dir / "model.safetensors").write_bytes(b"y" * 11)
    assert spec.key() != key
    fake_encoder.clear()
    embed(["a"], spec, cache_dir=tmp_path)
    assert fake_encoder == ["a"]


def test_no_cache_writes_nothing(fake_encoder, model_dir, tmp_path):
    embed(["a", "b"], EncoderSpec(str(model_dir)), cache_dir=tmp_path / "c", use_cache=False)
    assert not (tmp_path / "c").exists()


def test_cache_written_by_one_instance_is_read_by_another(tmp_path):
    cache = EmbeddingCache(tmp_path, "k")
    keys = text_keys(["x", "y"])
    cache.add(keys, np.eye(2, dtype=np.float32))
    found, rows = EmbeddingCache(tmp_path, "k").lookup(text_keys(["y", "z", "x"]))
    assert found.tolist() == [True, False, True]
    assert rows.tolist() == [[0, 1], [1, 0]]
    assert len(text_keys(["x"])[0]) == 16
    # a second shard: a lookup gathers rows from both, in the order asked
    cache.add(text_keys(["w"]), np.array([[5.0, 6.0]], dtype=np.float32))
    found, rows = EmbeddingCache(tmp_path, "k").lookup(text_keys(["w", "q", "x", "y"]))
    assert found.tolist() == [True, False, True, True]
    assert rows.tolist() == [[5, 6], [1, 0], [0, 1]]
    assert EmbeddingCache(tmp_path, "k").lookup(text_keys([]))[1] is None


def test_frozen_backbone_rebinding_the_same_texts_encodes_nothing(fake_encoder, model_dir):
    from prefkit.models.backbones import FrozenBackbone

    bb = FrozenBackbone(EncoderSpec(str(model_dir)), use_cache=False)
    bb.bind(["a", "bb"])
    bb.bind(["a", "bb"])
    assert fake_encoder == ["a", "bb"]
    bb.bind(["ccc"])
    assert fake_encoder == ["a", "bb", "ccc"] and bb.table.shape == (1, 3)
