#!/usr/bin/env bash
# DPO benchmark on the GPU machine: prefkit against TRL 1.16 (Qwen2-0.5B shape, random weights).
#
# Run from the repository root:   bash benchmarks/dpo_gpu.sh [extra dpo_vs_trl.py options]
# Needs the wheels in .whl/ (trl, datasets, dill, multiprocess; the machine has the rest).
# Writes $OUT/dpo_vs_trl.json and $OUT/dpo_gpu.log ($OUT defaults to ./out).
# Every method runs in its own subprocess (see dpo_vs_trl.py), so one failing keeps the others.
set -u -o pipefail
OUT=${OUT:-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 TQDM_DISABLE=1 TOKENIZERS_PARALLELISM=false
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 HF_HOME=/tmp/hf_home

main() {
    set -x
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || return 1
    export PYTHONPATH=/tmp/site:src${PYTHONPATH:+:$PYTHONPATH}
    nvidia-smi || true
    python3 - <<'PY' || true
import importlib
import torch
print("python3 torch", torch.__version__, "cuda", torch.version.cuda,
      "device", torch.cuda.get_device_name() if torch.cuda.is_available() else None)
for name in ("transformers", "accelerate", "trl", "datasets", "peft", "tokenizers", "prefkit"):
    try:
        mod = importlib.import_module(name)
        print(name, getattr(mod, "__version__", "?"), mod.__file__)
    except Exception as exc:  # report and go on: the benchmark reports per method
        print(name, "IMPORT FAILED:", type(exc).__name__, exc)
PY
    python3 benchmarks/dpo_vs_trl.py --model-size qwen0.5b --warmup 3 --steps 10 --repeats 1 \
        --json "$OUT/dpo_vs_trl.json" "$@"
}

main "$@" 2>&1 | tee "$OUT/dpo_gpu.log"
exit "${PIPESTATUS[0]}"
