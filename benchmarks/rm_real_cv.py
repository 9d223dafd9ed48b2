"""Reward models on real data: 5-fold cross-validation split by prompt, beside the
pick-longer and pick-shorter baselines (the table in docs/reward-models.md).

    python benchmarks/rm_real_cv.py                       # both datasets, frozen + fine-tuned
    python benchmarks/rm_real_cv.py --only frozen --data hh

Datasets: HH-RLHF harmless-base test (2,312 pairs, one per prompt) and the UKPConvArg1
Strict gold pairs (11,650 pairs over 32 debate topics: folds split by topic). Models:
frozen all-MiniLM-L6-v2 features + a Bradley–Terry head, and MiniLM fine-tuned end to
end with the same head (``encoder`` backbone). Accuracy is on held-out decisive pairs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import prefkit
from prefkit.models.data import from_dataset
from prefkit.models.evaluate import cross_validate, summarize_folds
from prefkit.models.reward_model import RewardModel

SHARED = Path(
    os.environ.get("PREFKIT_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)
DATASETS = {
    "hh": ("HH-RLHF harmless test", SHARED / "hh_rlhf_harmless_test"),
    "ukp": ("UKPConvArg1 gold pairs", SHARED / "ukp_convarg1" / "UKPConvArg1Strict-CSV"),
}
#: Fine-tuning settings, sized for a 2-core CPU (a forward and backward pass of MiniLM
#: costs about 3x a forward pass): one epoch at 128 tokens, reading 200 characters of
#: the prompt on HH; UKP's ~9,300 training pairs per fold are capped at 60 steps (960 pairs).
FINETUNE = {
    "hh": {"epochs": 1, "batch_size": 16, "max_length": 128, "prompt_chars": 200},
    "ukp": {"epochs": 1, "batch_size": 16, "max_length": 128, "max_steps": 60},
}


def models(key: str, cache: str) -> dict[str, object]:
    return {
        "frozen MiniLM + BT": lambda: RewardModel("bt", "frozen", cache_dir=cache),
        "fine-tuned MiniLM + BT": lambda: RewardModel(
            "bt", "encoder", cache_dir=cache, **FINETUNE[key]
        ),
    }


def fold_done(label: str):
    start = time.perf_counter()

    def report(k: int, n: int) -> None:
        print(
            f"  {label}: fold {k}/{n} done at {time.perf_counter() - start:.0f} s",
            file=sys.stderr,
            flush=True,
        )

    return report


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--data", choices=list(DATASETS), nargs="*", default=list(DATASETS))
    ap.add_argument("--only", choices=["frozen", "fine-tuned"], default=None)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--cache-dir", default=None, help="embedding cache root")
    ap.add_argument("--json", default=None, help="write all results here")
    args = ap.parse_args()
    rows, out = [], {}
    for key in args.data:
        name, path = DATASETS[key]
        ds = prefkit.load(path)
        for label, make in models(key, args.cache_dir).items():
            if args.only and not label.startswith(args.only):
                continue
            data = from_dataset(ds, prompt_chars=make().prompt_chars)
            t = time.perf_counter()
            res = cross_validate(make, data, args.folds, seed=0, progress=fold_done(label))
            s = summarize_folds(res)
            s["seconds"] = time.perf_counter() - t
            out[f"{key}/{label}"] = s
            rows.append((name, label, s))
            print(
                f"{name} | {label} | {s['accuracy']['mean']:.3f} ± {s['accuracy']['std']:.3f} "
                f"| longer {s['longer']['mean']:.3f} | shorter {s['shorter']['mean']:.3f} "
                f"| ECE {s['ece']['mean']:.3f} | {s['seconds']:.0f} s",
                file=sys.stderr,
                flush=True,
            )
    print(
        f"\n| dataset | model | accuracy (mean ± sd over {args.folds} folds) | pick longer | pick shorter | ECE | pairs | time |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name, label, s in rows:
        print(
            f"| {name} | {label} | {s['accuracy']['mean']:.3f} ± {s['accuracy']['std']:.3f} | "
            f"{s['longer']['mean']:.3f} | {s['shorter']['mean']:.3f} | {s['ece']['mean']:.3f} | "
            f"{s['n_decisive']:,} | {s['seconds']:.0f} s |"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2, default=float))


if __name__ == "__main__":
    main()
