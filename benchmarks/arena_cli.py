"""The whole ``prefkit arena`` command on a 1,000,000-line arena JSONL file, end to end
(process start, reading, aggregation, Bradley–Terry fit, 1,000 bootstrap rounds, JSON
output), timed as a subprocess; median of --repeats runs.

    python benchmarks/arena_cli.py --n 1000000 --models 100
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import orjson


def write_battles(path: Path, n: int, models: int, seed: int = 0) -> None:
    """Battles between models of known skill (Bradley–Terry with Davidson ties)."""
    rng = np.random.default_rng(seed)
    skill = rng.normal(0, 1, models)
    names = np.array([f"model-{i:03d}" for i in range(models)])
    a = rng.integers(0, models, n)
    b = (a + rng.integers(1, models, n)) % models
    pa, pb = np.exp(skill[a]), np.exp(skill[b])
    nu = 0.5 * np.sqrt(pa * pb)
    u = rng.random(n) * (pa + pb + nu)
    winner = np.where(u < pa, "model_a", np.where(u < pa + pb, "model_b", "tie"))
    with open(path, "wb") as fh:
        for start in range(0, n, 100_000):
            rows = zip(
                names[a[start : start + 100_000]],
                names[b[start : start + 100_000]],
                winner[start : start + 100_000],
                strict=True,
            )
            fh.write(
                b"".join(
                    orjson.dumps({"model_a": x, "model_b": y, "winner": w}) + b"\n"
                    for x, y, w in rows
                )
            )


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--models", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "battles.jsonl"
        write_battles(path, args.n, args.models)
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            proc = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "prefkit",
                    "arena",
                    str(path),
                    "--bootstrap",
                    "1000",
                    "--json",
                ],
                capture_output=True,
            )
            times.append(time.perf_counter() - t0)
            if proc.returncode != 0:
                raise SystemExit(proc.stderr.decode()[-2000:])
        out = orjson.loads(proc.stdout)
    print(
        f"prefkit arena on {args.n:,} battles ({args.models} models), 1,000 bootstrap rounds, JSON out"
    )
    print(
        f"wall time per run: {', '.join(f'{t:.2f}s' for t in times)}; median {statistics.median(times):.2f}s (target < 5 s)"
    )
    print(
        f"models ranked: {len(out['leaderboard'])}, battles: {out['n_battles']:,}, ties: {out['n_ties']:,}"
    )


if __name__ == "__main__":
    main()
