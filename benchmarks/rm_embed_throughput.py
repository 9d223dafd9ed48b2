"""Frozen-encoder throughput: prefkit's quantized encoders against plain sentence-transformers.

Texts: ``--n`` (512) responses of HH-RLHF harmless (``--data``) drawn with seed 0, built
exactly as reward-model training builds them (``prefkit.models.data.from_dataset(ds)
.texts``: the prompt's last 600 characters, a blank line, the response).

Methods (same texts, same process, ``--threads`` (2) torch threads; ONNX Runtime gets
as many intra-op threads):
    sentence-transformers  ``SentenceTransformer(path).encode(texts, batch_size=32,
                           normalize_embeddings=True)`` with ``max_seq_length=256``
                           (it sorts texts by length itself)
    prefkit:<mode>         ``load_encoder(EncoderSpec(quantize=mode))`` for each mode in
                           ``--modes`` (``none`` is the fp32 path through prefkit)
No embedding cache is used: the encoder itself is timed. The ONNX conversion is built
once and kept on disk (its build time is shown as ``load s`` on the first run).
Methods are interleaved within each of ``--repeats`` (3) rounds, one warm-up batch
first; the table gives the median texts/s, its ratio to sentence-transformers and the
cosine of each row to sentence-transformers' row (mean and min).

``--accuracy``: 5-fold prompt-split cross-validation on the whole dataset of
``RewardModel("bt", "frozen", quantize=mode)`` for fp32 (``none``) and each mode:
held-out pairwise accuracy on decisive pairs (correct when ``(P(a≻b) > 0.5) ==
(outcome > 0)``), averaged over folds, and its difference to fp32. Embeddings are cached
in a temporary folder per run (each mode embeds every text once).

    python benchmarks/rm_embed_throughput.py --n 512 --repeats 3
    python benchmarks/rm_embed_throughput.py --n 512 --repeats 3 --accuracy
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import prefkit
from prefkit.models.data import PrefData, from_dataset, prompt_folds
from prefkit.models.encoder import QUANTIZE, load_encoder
from prefkit.models.features import EncoderSpec, embed
from prefkit.models.reward_model import RewardModel

DEFAULT_DATA = "/work/shared/data/hh_rlhf_harmless_test"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def throughput(texts: list[str], modes: list[str], repeats: int) -> None:
    from sentence_transformers import SentenceTransformer

    spec = EncoderSpec()
    st = SentenceTransformer(spec.resolved_path(), device="cpu")
    st.max_seq_length = 256
    methods = {
        "sentence-transformers": lambda t: st.encode(t, batch_size=32, normalize_embeddings=True)
    }
    load_s = {"sentence-transformers": 0.0}
    for mode in modes:
        t0 = time.perf_counter()
        methods[f"prefkit:{mode}"] = load_encoder(EncoderSpec(quantize=mode))
        load_s[f"prefkit:{mode}"] = time.perf_counter() - t0
    rates: dict[str, list[float]] = {name: [] for name in methods}
    rows: dict[str, np.ndarray] = {}
    for fn in methods.values():
        fn(texts[:32])  # warm-up
    for r in range(repeats):
        for name, fn in methods.items():
            t0 = time.perf_counter()
            rows[name] = np.asarray(fn(texts), dtype=np.float32)
            rates[name].append(len(texts) / (time.perf_counter() - t0))
            log(f"round {r + 1}/{repeats} {name}: {rates[name][-1]:.1f} texts/s")
    ref = rows["sentence-transformers"]
    base = float(np.median(rates["sentence-transformers"]))
    print(f"\n{len(texts)} texts, {torch.get_num_threads()} threads, median of {repeats}")
    head = f"{'method':<24}{'texts/s':>9}{'min':>8}{'max':>8}{'ratio':>7}{'cos mean':>10}"
    print(head + f"{'cos min':>9}{'load s':>8}")
    for name, rs in rates.items():
        cos = np.sum(rows[name] * ref, axis=1)
        med = float(np.median(rs))
        print(
            f"{name:<24}{med:>9.1f}{min(rs):>8.1f}{max(rs):>8.1f}{med / base:>7.2f}"
            f"{cos.mean():>10.4f}{cos.min():>9.4f}{load_s[name]:>8.1f}"
        )


def accuracy(data: PrefData, modes: list[str], folds: int) -> None:
    masks = prompt_folds(data, folds, seed=0)
    acc: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as cache:
        for mode in ["none", *[m for m in modes if m != "none"]]:
            t0 = time.perf_counter()
            acc[mode] = []
            for k, test in enumerate(masks):
                train, held = data.select_prompts(~test), data.select_prompts(test)
                model = RewardModel("bt", "frozen", quantize=mode, cache_dir=cache).fit(train)
                p, _ = model.pair_probs(held)
                decisive = held.pairs.outcome != 0
                correct = (p[decisive] > 0.5) == (held.pairs.outcome[decisive] > 0)
                acc[mode].append(float(correct.mean()))
                log(f"{mode} fold {k + 1}/{folds}: {acc[mode][-1]:.4f}")
            log(f"{mode}: {time.perf_counter() - t0:.0f}s (embedding + {folds} fits)")
        ref = embed(data.texts, EncoderSpec(), cache_dir=cache)  # cached rows, no re-encoding
        print(
            f"\n{folds}-fold prompt-split CV, bt head on frozen features, {len(data.texts)} texts"
        )
        print(
            f"{'mode':<12}{'accuracy':>10}{'± sd':>8}{'vs fp32':>9}{'cos mean':>10}{'cos min':>9}"
        )
        for mode, a in acc.items():
            cos = np.sum(embed(data.texts, EncoderSpec(quantize=mode), cache_dir=cache) * ref, 1)
            diff = np.mean(a) - np.mean(acc["none"])
            print(
                f"{mode:<12}{np.mean(a):>10.4f}{np.std(a):>8.4f}{diff:>+9.4f}"
                f"{cos.mean():>10.4f}{cos.min():>9.4f}"
            )
        print(
            "per fold: "
            + "; ".join(f"{m} " + " ".join(f"{x:.4f}" for x in a) for m, a in acc.items())
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=DEFAULT_DATA)
    ap.add_argument("--n", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--modes", default=",".join(QUANTIZE))
    ap.add_argument("--accuracy", action="store_true")
    ap.add_argument("--folds", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    modes = [m for m in args.modes.split(",") if m]
    data = from_dataset(prefkit.load(Path(args.data)))
    rng = np.random.default_rng(0)
    pick = rng.choice(len(data.texts), min(args.n, len(data.texts)), replace=False)
    texts = [data.texts[i] for i in pick]
    throughput(texts, modes, args.repeats)
    if args.accuracy:
        accuracy(data, modes, args.folds)


if __name__ == "__main__":
    main()
