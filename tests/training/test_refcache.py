"""RefCache and model_identity, alone and through the trainer (hits skip the reference)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM

from prefkit.training.dpo import DPOTrainer
from prefkit.training.groups import Groups
from prefkit.training.refcache import RefCache, default_dir, model_identity
from prefkit.training.tiny import tiny_checkpoint


def one_token_changed(g: Groups) -> Groups:
    comps = [[list(c) for c in cs] for cs in g.completion_ids]
    comps[-1][1][-1] = 3 if comps[-1][1][-1] != 3 else 4
    return Groups(list(g.ids), [list(p) for p in g.prompt_ids], comps, strength=g.strength)


# --- RefCache on its own -------------------------------------------------------------------
def test_put_get_round_trip_and_atomic_write(tmp_path: Path) -> None:
    cache = RefCache(tmp_path / "c")
    vals = np.random.default_rng(0).normal(size=(5, 2))
    vals[2, 1] = np.nan  # missing list items travel as NaN
    assert cache.get("k", 5) is None  # nothing stored yet (and no directory)
    path = cache.put("k", vals)
    assert path == cache.path("k") and path.exists()
    got = cache.get("k", 5)
    assert got is not None
    np.testing.assert_array_equal(got, vals)  # exact, NaN included
    assert got.dtype == np.float64
    assert [p.name for p in (tmp_path / "c").iterdir()] == ["k.npy"]  # no .tmp left
    cache.put("k", vals * 2)  # overwrite in place
    np.testing.assert_array_equal(cache.get("k", 5), vals * 2)
    assert cache.get("k", 4) is None and cache.get("k", 6) is None  # row-count mismatch


@pytest.mark.parametrize(
    "corrupt",
    [
        pytest.param(lambda b: b[: len(b) - 8], id="truncated"),
        pytest.param(lambda b: b[:20], id="header-only"),
        pytest.param(lambda b: b"not a numpy file" * 8, id="garbage"),
        pytest.param(lambda b: b"", id="empty"),
    ],
)
def test_corrupted_entry_reads_as_a_miss(tmp_path: Path, corrupt: Any) -> None:
    cache = RefCache(tmp_path)
    p = cache.put("k", np.ones((4, 2)))
    p.write_bytes(corrupt(p.read_bytes()))
    assert cache.get("k", 4) is None


def test_key_names_data_reference_and_dtype(make_groups: Any) -> None:
    g = make_groups(6)
    k = RefCache.key(g, "local:/m:abc", "no")
    assert k == RefCache.key(make_groups(6), "local:/m:abc", "no")  # stable
    relabelled = Groups([f"x{i}" for i in range(6)], g.prompt_ids, g.completion_ids)
    assert RefCache.key(relabelled, "local:/m:abc", "no") == k  # ids are not content
    assert RefCache.key(one_token_changed(g), "local:/m:abc", "no") != k
    assert RefCache.key(g, "local:/m:abd", "no") != k
    assert RefCache.key(g, "local:/m:abc", "bf16") != k
    assert RefCache.key(g.select([1, 0, 2, 3, 4, 5]), "local:/m:abc", "no") != k  # order


def test_default_dir_honours_prefkit_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREFKIT_CACHE", "/some/where")
    assert default_dir() == Path("/some/where/reference")
    monkeypatch.delenv("PREFKIT_CACHE")
    assert default_dir() == Path.home() / ".cache" / "prefkit" / "reference"


def test_model_identity_follows_weights_and_config(tmp_path: Path) -> None:
    d = tmp_path / "m"
    (d / "sub").mkdir(parents=True)
    (d / "config.json").write_text('{"hidden_size": 32}')
    w = d / "model.safetensors"
    w.write_bytes(b"\x00" * 64)
    (d / "sub" / "extra.bin").write_bytes(b"\x01" * 8)
    (d / "README.md").write_text("hello")
    first = model_identity(str(d))
    assert first.startswith(f"local:{d.resolve()}:") and model_identity(str(d)) == first
    (d / "README.md").write_text("not a weight file")
    assert model_identity(str(d)) == first
    # same size, new content: the modification time names the change
    st = w.stat()
    w.write_bytes(b"\x02" * 64)
    os.utime(w, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    second = model_identity(str(d))
    assert second != first
    (d / "sub" / "extra.bin").write_bytes(b"\x01" * 9)  # nested weight file, new size
    third = model_identity(str(d))
    assert third != second
    (d / "config.json").write_text('{"hidden_size": 64}')
    assert model_identity(str(d)) != third


# --- through the trainer -------------------------------------------------------------------
@pytest.fixture(scope="module")
def ref_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Same tokenizer as ``ckpt``, other weights."""
    return tiny_checkpoint(
        tmp_path_factory.mktemp("ref") / "llama",
        hidden_size=32,
        layers=2,
        heads=4,
        kv_heads=2,
        seed=1,
    )


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every path passed to ``AutoModelForCausalLM.from_pretrained``."""
    seen: list[str] = []
    real = AutoModelForCausalLM.from_pretrained

    def counting(path: Any, *a: Any, **k: Any) -> Any:
        seen.append(str(path))
        return real(path, *a, **k)

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", counting)
    return seen


def test_policy_reference_is_cached(
    tmp_path: Path,
    ckpt: Path,
    make_groups: Any,
    make_config: Any,
    logps_of: Any,
    loads: list[str],
) -> None:
    train, held = make_groups(8, seed=1), make_groups(4, seed=2)
    cfg = make_config(tmp_path, model=str(ckpt), batch_size=4)
    first = DPOTrainer(cfg).fit(train, held)
    assert first.ref_source_ == {"train": "policy", "eval": "policy"}
    files = sorted((tmp_path / "refcache").glob("*.npy"))
    assert len(files) == 2
    base = AutoModelForCausalLM.from_pretrained(ckpt, dtype=torch.float32)
    key = RefCache.key(train, model_identity(str(ckpt)), "no")
    stored = RefCache(tmp_path / "refcache").get(key, len(train))
    assert stored is not None
    # tolerance 1e-4: the trainer's float32 prefix-shared forward vs a float64 log-softmax
    np.testing.assert_allclose(stored, logps_of(base, train), rtol=0, atol=1e-4)
    second = DPOTrainer(cfg).fit(train, held)
    assert second.ref_source_ == {"train": "cache", "eval": "cache"}
    assert [h.loss for h in second.history_] == [h.loss for h in first.history_]
    assert sorted((tmp_path / "refcache").glob("*.npy")) == files


def test_reference_model_is_never_loaded_on_a_hit(
    tmp_path: Path,
    ckpt: Path,
    ref_ckpt: Path,
    make_groups: Any,
    make_config: Any,
    logps_of: Any,
    loads: list[str],
) -> None:
    ref_dir = tmp_path / "ref"
    shutil.copytree(ref_ckpt, ref_dir)  # a private copy: its files change below
    train = make_groups(8, seed=1)
    beta = 0.5
    cfg = make_config(
        tmp_path, model=str(ckpt), reference=str(ref_dir), batch_size=8,
        loss_params={"beta": beta},
    )  # fmt: skip

    def ref_loads() -> int:
        return sum(Path(p) == ref_dir for p in loads)

    # Golden first-step loss from naive log-probs of both models (tolerance 1e-5, float32)
    pol = logps_of(AutoModelForCausalLM.from_pretrained(ckpt, dtype=torch.float32), train)
    ref = logps_of(AutoModelForCausalLM.from_pretrained(ref_dir, dtype=torch.float32), train)
    h = beta * ((pol[:, 0] - ref[:, 0]) - (pol[:, 1] - ref[:, 1]))
    gold = float(-F.logsigmoid(torch.tensor(h)).mean())
    loads.clear()  # count the trainer's loads only

    first = DPOTrainer(cfg).fit(train)
    assert first.ref_source_ == {"train": "reference"} and ref_loads() == 1
    assert first.history_[0].loss == pytest.approx(gold, abs=1e-5)
    n_loads = len(loads)

    second = DPOTrainer(cfg).fit(train)
    assert second.ref_source_ == {"train": "cache"}
    assert ref_loads() == 1 and len(loads) == n_loads + 1  # only the policy was loaded
    assert second.history_[0].loss == first.history_[0].loss

    # one token of the data changed: a new key, the reference is loaded again
    third = DPOTrainer(cfg).fit(one_token_changed(train))
    assert third.ref_source_ == {"train": "reference"} and ref_loads() == 2

    # the reference's weights rewritten: a new identity, a new key
    w = ref_dir / "model.safetensors"
    st = w.stat()
    tiny_checkpoint(ref_dir, hidden_size=32, layers=2, heads=4, kv_heads=2, seed=2)
    os.utime(w, ns=(st.st_atime_ns, max(w.stat().st_mtime_ns, st.st_mtime_ns + 10**9)))
    fourth = DPOTrainer(cfg).fit(train)
    assert fourth.ref_source_ == {"train": "reference"} and ref_loads() == 3
    assert fourth.history_[0].loss != pytest.approx(gold, abs=1e-3)
    assert len(list((tmp_path / "refcache").glob("*.npy"))) == 3
    assert not list((tmp_path / "refcache").glob("*.tmp"))
