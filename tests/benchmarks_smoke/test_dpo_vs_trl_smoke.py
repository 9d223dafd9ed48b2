"""Smoke test of ``benchmarks/dpo_vs_trl.py`` on a tiny model on CPU: prefkit and TRL's
DPOTrainer (default and precompute) run side by side, and on data with a planted
preference, at a learning rate that takes the loss from log 2 to near 0, their per-step
loss curves agree (fp32, 1e-5)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("trl")
pytest.importorskip("datasets")

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "dpo_vs_trl.py"


@pytest.mark.slow
def test_prefkit_and_trl_run_and_their_loss_curves_agree(tmp_path: Path) -> None:
    out = tmp_path / "dpo.json"
    cmd = [sys.executable, str(SCRIPT), "--model-size", "tiny", "--pairs", "56", "--steps", "6"]
    cmd += ["--warmup", "1", "--prompt-len", "16", "--completion-len", "24", "--lr", "1e-2"]
    cmd += ["--methods", "prefkit,trl,trl_precompute", "--json", str(out)]
    path = os.pathsep.join(p for p in (str(REPO / "src"), os.environ.get("PYTHONPATH")) if p)
    env = os.environ | {"PYTHONPATH": path, "CUDA_VISIBLE_DEVICES": "", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]

    summary = json.loads(out.read_text())["summary"]
    assert set(summary) == {"prefkit", "trl", "trl_precompute"}
    for method, s in summary.items():
        assert s["tokens_per_s"] > 0, method
        assert len(s["losses"]) == 7 and all(math.isfinite(x) for x in s["losses"]), method
        # Step 0: policy = reference, so every log-ratio is 0 and the loss is -log sigmoid(0).
        assert s["losses"][0] == pytest.approx(math.log(2), abs=1e-4), method
        assert s["losses"][-1] < 0.3, method  # the planted preference is learned
    ours = summary["prefkit"]["losses"]
    for method in ("trl", "trl_precompute"):
        diff = max(abs(a - b) for a, b in zip(ours, summary[method]["losses"], strict=True))
        assert diff < 1e-5, (method, diff)
    assert summary["trl_precompute"]["precompute_seconds"] > 0
    assert summary["prefkit"]["precompute_seconds"] > 0
