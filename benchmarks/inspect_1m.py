"""`prefkit inspect` with every lexical check on a 1,000,000-pair synth dataset: wall time,
peak RSS, and the time of each check.

The dataset is simulated with planted problems (exact and near duplicates, flipped labels,
length bias, position bias, bad annotators, cyclic triads) and saved as the canonical
Parquet store; a 2,000-prompt eval file (half copied from the training prompts, half new)
exercises the contamination check. The command runs in a fresh subprocess with
``--embed never`` (lexical checks only), so its peak RSS (ru_maxrss) is its own.

    python benchmarks/inspect_1m.py --n 1000000 --repeats 1
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson


def build(root: Path, n: int, judges: int) -> tuple[Path, Path]:
    from prefkit.synth import simulate
    from prefkit.views import prompt_text

    ds = simulate(
        kind="pairwise",
        n_prompts=n,
        judgments_per_pair=judges,
        n_annotators=200,
        duplicate_rate=0.01,
        near_duplicate_rate=0.01,
        flip_rate=0.1,
        bad_annotator_fraction=0.05,
        length_bias=0.5,
        position_bias=0.05,
        n_cyclic_triads=min(100, n // 100),
        seed=0,
    )
    ds.save(root / "ds")
    fresh = simulate(kind="pairwise", n_prompts=1_000, seed=99).prompts
    texts = prompt_text(ds.prompts.column("messages").slice(0, 1_000).combine_chunks()).to_pylist()
    texts += prompt_text(fresh.column("messages").combine_chunks()).to_pylist()
    evals = root / "eval.jsonl"
    evals.write_bytes(b"".join(orjson.dumps({"prompt": t}) + b"\n" for t in texts))
    return root / "ds", evals


def run(ds: Path, evals: Path, out: Path) -> tuple[float, float, dict[str, float]]:
    """One `prefkit inspect` run: (seconds, peak RSS in MiB, seconds per check)."""
    cmd = [sys.executable, "-m", "prefkit", "inspect", str(ds), "--embed", "never"]
    cmd += ["--against", str(evals), "--json", str(out / "inspect.json")]
    cmd += ["--html", str(out / "inspect.html")]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    err = proc.stderr.read() if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"prefkit inspect failed:\n{err[-3000:]}")
    report = orjson.loads((out / "inspect.json").read_bytes())
    return seconds, usage.ru_maxrss / 1024, report["seconds"]


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--n", type=int, default=1_000_000, help="prompts (each one judged pair)")
    ap.add_argument("--judges", type=int, default=1, help="judgments per pair")
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        start = time.perf_counter()
        ds, evals = build(root, args.n, args.judges)
        print(f"simulated and saved {args.n:,} pairs in {time.perf_counter() - start:.1f} s")
        runs = [run(ds, evals, root) for _ in range(args.repeats)]
    seconds = statistics.median(r[0] for r in runs)
    rss = statistics.median(r[1] for r in runs)
    print(f"\nprefkit inspect, {args.n:,} pairs x {args.judges} judges, lexical checks")
    print(f"  wall time   {seconds:8.1f} s   (median of {args.repeats})")
    print(f"  peak RSS    {rss:8.0f} MiB")
    for check, s in runs[len(runs) // 2][2].items():
        print(f"  {check:<12}{s:8.1f} s")


if __name__ == "__main__":
    main()
