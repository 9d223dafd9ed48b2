"""Convert a TRL-format JSONL of N pairs to the canonical dataset and produce to_pairs(),
side by side with Hugging Face `datasets` doing the same job (load_dataset("json") + map).

prefkit writes the canonical dataset (Parquet + manifest with fingerprints) and then the
to_pairs() view as a Parquet file through the streaming TRL writer; `datasets` parses the
JSONL into its Arrow cache and maps every row to the same canonical fields (messages,
content ids, outcome), keeping the pair columns in the mapped cache.

Each job runs in a fresh subprocess so peak RSS (ru_maxrss) is its own. Prints pairs/s
and peak RSS for both, and the ratios, as the median of --repeats runs.

    python benchmarks/convert_vs_datasets.py --n 1000000 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PREFKIT_JOB = """
import sys, time
import pyarrow.parquet as pq
import prefkit
t0 = time.perf_counter()
ds = prefkit.convert(sys.argv[1], sys.argv[2])
# to_pairs(), streamed to disk: the same (prompt, chosen, rejected) rows as a Parquet file.
prefkit.save(ds, sys.argv[2] + "_pairs.parquet", format="trl")
n = pq.ParquetFile(sys.argv[2] + "_pairs.parquet").metadata.num_rows
assert n == int(sys.argv[3]), n
print(time.perf_counter() - t0)
"""

DATASETS_JOB = """
import sys, time
import datasets, xxhash, orjson
datasets.disable_progress_bars()
t0 = time.perf_counter()

def canonical(row):
    # The same work prefkit does per pair: messages, content ids, a judgment.
    prompt = [{"role": "user", "content": row["prompt"]}]
    chosen = [{"role": "assistant", "content": row["chosen"]}]
    rejected = [{"role": "assistant", "content": row["rejected"]}]
    pid = "p_" + xxhash.xxh3_128_hexdigest(orjson.dumps([prompt, None]))
    return {
        "prompt_id": pid,
        "prompt_messages": prompt,
        "chosen_id": "r_" + xxhash.xxh3_128_hexdigest(orjson.dumps([pid, chosen, None])),
        "chosen_messages": chosen,
        "rejected_id": "r_" + xxhash.xxh3_128_hexdigest(orjson.dumps([pid, rejected, None])),
        "rejected_messages": rejected,
        "outcome": 1,
    }

data = datasets.load_dataset("json", data_files=sys.argv[1], split="train", cache_dir=sys.argv[2])
out = data.map(canonical, cache_file_name=sys.argv[2] + "/mapped.arrow")
pairs = out.select_columns(["prompt", "chosen", "rejected"])
assert len(pairs) == int(sys.argv[3]), len(pairs)
print(time.perf_counter() - t0)
"""


def run_job(code: str, *args: str) -> tuple[float, float]:
    """Run ``code`` in a fresh interpreter; return (seconds it reports, peak RSS in MiB)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _, status, usage = os.wait4(proc.pid, 0)
    out = proc.stdout.read() if proc.stdout else ""
    err = proc.stderr.read() if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"job failed:\n{err[-3000:]}")
    return float(out.strip().splitlines()[-1]), usage.ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--n", type=int, default=1_000_000, help="pairs in the generated file")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workdir", default=None, help="where to write the input and outputs")
    ap.add_argument("--json", dest="json_out", default=None, help="also write the results here")
    args = ap.parse_args()

    from prefkit.synth.bench import write_trl_jsonl

    work = Path(args.workdir or tempfile.mkdtemp(prefix="prefkit-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    src = work / f"trl_{args.n}.jsonl"
    if not src.exists():
        t0 = time.perf_counter()
        write_trl_jsonl(src, args.n, seed=0)
        print(
            f"generated {src} ({src.stat().st_size / 2**20:.0f} MiB) in {time.perf_counter() - t0:.1f}s"
        )
    results: dict[str, list[tuple[float, float]]] = {"prefkit": [], "datasets": []}
    for r in range(args.repeats):
        with tempfile.TemporaryDirectory(dir=work) as tmp:
            results["prefkit"].append(
                run_job(PREFKIT_JOB, str(src), f"{tmp}/canonical", str(args.n))
            )
        with tempfile.TemporaryDirectory(dir=work) as tmp:
            results["datasets"].append(run_job(DATASETS_JOB, str(src), tmp, str(args.n)))
        print(
            f"run {r + 1}: "
            + ", ".join(f"{k} {v[-1][0]:.1f}s {v[-1][1]:.0f} MiB" for k, v in results.items())
        )
    summary = {}
    for name, runs in results.items():
        secs = statistics.median(s for s, _ in runs)
        rss = statistics.median(m for _, m in runs)
        summary[name] = {"seconds": secs, "pairs_per_s": args.n / secs, "peak_rss_mib": rss}
    p, d = summary["prefkit"], summary["datasets"]
    print(
        f"\n{'tool':10} {'pairs/s':>12} {'peak RSS MiB':>14}   (median of {args.repeats}, n={args.n:,})"
    )
    for name, s in summary.items():
        print(f"{name:10} {s['pairs_per_s']:12,.0f} {s['peak_rss_mib']:14,.0f}")
    speed = p["pairs_per_s"] / d["pairs_per_s"]
    mem = p["peak_rss_mib"] / d["peak_rss_mib"]
    print(f"\nthroughput ratio prefkit/datasets: {speed:.2f}x   peak memory ratio: {mem:.2f}x")
    print(
        f"targets: >= 3x throughput ({'met' if speed >= 3 else 'NOT met'}), "
        f"<= 0.5x memory ({'met' if mem <= 0.5 else 'NOT met'})"
    )
    if args.json_out:
        Path(args.json_out).write_text(
            json.dumps({"n": args.n, **summary, "speed_ratio": speed, "mem_ratio": mem}, indent=2)
        )


if __name__ == "__main__":
    main()
