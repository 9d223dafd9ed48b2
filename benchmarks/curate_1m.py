"""`prefkit curate --recipe` on a 1,000,000-pair synth dataset: wall time, peak RSS and the
time of each step.

The dataset is simulated with planted problems (1% exact and 1% near-duplicate prompts,
10% flipped labels, ties, a share of bad annotators, length bias) and saved as the
canonical Parquet store. The recipe (below) runs in a fresh subprocess, so its peak RSS
(``ru_maxrss`` from ``os.wait4``) is its own; per-step times are read from the command's
summary lines (``[i/n] step (seconds s): ...``).

    python benchmarks/curate_1m.py --n 1000000
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

#: The recipe: (step, parameters).
RECIPE: list[tuple[str, dict[str, object]]] = [
    ("drop-identical", {}),
    ("dedup", {"what": "prompts", "near": True}),
    ("drop-ties", {}),
    ("filter", {"expr": "length_ratio < 3"}),
    ("noise", {"action": "drop", "threshold": 0.8}),
    ("length-debias", {"target": 0.5, "seed": 0}),
    ("curriculum", {}),
    ("split", {}),
]
LINE = re.compile(r"^\[(\d+)/(\d+)\] (\S+) \(([\d.]+) s\): (.*)$")


def build(root: Path, n: int) -> Path:
    from prefkit.synth import simulate

    ds = simulate(
        kind="pairwise",
        n_prompts=n,
        n_annotators=200,
        duplicate_rate=0.01,
        near_duplicate_rate=0.01,
        flip_rate=0.1,
        tie_threshold=0.05,
        bad_annotator_fraction=0.05,
        length_bias=0.5,
        seed=0,
    )
    return ds.save(root / "ds")


def recipe(root: Path) -> Path:
    steps = [{name: params} for name, params in RECIPE]
    path = root / "recipe.yaml"
    path.write_text(yaml.safe_dump({"steps": steps}, sort_keys=False))
    return path


def run(
    ds: Path, recipe_path: Path, out: Path
) -> tuple[float, float, list[tuple[str, float, str]]]:
    """One `prefkit curate --recipe` run: (seconds, peak RSS in MiB, per-step times)."""
    cmd = [sys.executable, "-m", "prefkit", "curate", "--recipe", str(recipe_path)]
    cmd += [str(ds), str(out), "--overwrite"]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    stdout = proc.stdout.read() if proc.stdout else ""
    err = proc.stderr.read() if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"prefkit curate failed:\n{err[-3000:]}")
    steps = [(m[3], float(m[4]), m[5]) for m in map(LINE.match, stdout.splitlines()) if m]
    print(stdout)
    return seconds, usage.ru_maxrss / 1024, steps


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--n", type=int, default=1_000_000, help="prompts (each one judged pair)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        start = time.perf_counter()
        ds = build(root, args.n)
        print(f"simulated and saved {args.n:,} pairs in {time.perf_counter() - start:.1f} s")
        recipe_path = recipe(root)
        print(recipe_path.read_text())
        seconds, rss, steps = run(ds, recipe_path, root / "out")
    print(f"prefkit curate --recipe, {args.n:,} pairs, {len(steps)} steps")
    print(f"  wall time   {seconds:8.1f} s   (load, every step, save)")
    print(f"  peak RSS    {rss:8.0f} MiB")
    for name, s, _ in steps:
        print(f"  {name:<16}{s:8.1f} s")


if __name__ == "__main__":
    main()
