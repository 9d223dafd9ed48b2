"""Several processes (DDP through Accelerate, gloo on CPU): two processes, each reading
half of every batch, take the same steps as one process (losses, learning rates and
weights, 1e-6) — with a warm-up + linear schedule (stepped once per global step, not once
per process) and a last batch of one pair (the process without rows still joins the
gradient all-reduce, with weight 0)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPT = """
import json, sys
import numpy as np, torch
from transformers import LlamaConfig, LlamaForCausalLM
from prefkit.training.dpo import DPOTrainer
from prefkit.training.dpo_config import DPOConfig
from prefkit.training.groups import Groups

torch.manual_seed(0)
cfg = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2)
model = LlamaForCausalLM(cfg)
rng = np.random.default_rng(0)
n = 33
groups = Groups(
    [f"e{i}" for i in range(n)],
    [rng.integers(3, 64, rng.integers(2, 6)).tolist() for _ in range(n)],
    [[rng.integers(3, 64, rng.integers(1, 7)).tolist() for _ in range(2)] for _ in range(n)],
)
out = sys.argv[2]
config = DPOConfig(output_dir=out, ref_cache_dir=out + "/cache", lr=1e-2, batch_size=8,
                   epochs=2, scheduler="linear", warmup_steps=2)
t = DPOTrainer(config, model=model).fit(groups)
if t.accelerator.is_main_process:
    w = torch.cat([p.detach().flatten() for p in t.model_.parameters()])
    json.dump({"world": t.accelerator.num_processes, "losses": [h.loss for h in t.history_],
               "lrs": [h.lr for h in t.history_], "weights": w.tolist()}, open(sys.argv[1], "w"))
"""


@pytest.mark.slow
def test_two_processes_take_the_same_steps_as_one(tmp_path: Path) -> None:
    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.exists() and shutil.which("torchrun") is None:
        pytest.skip("torchrun is not installed")
    script = tmp_path / "run.py"
    script.write_text(SCRIPT)
    one, two = tmp_path / "one.json", tmp_path / "two.json"
    subprocess.run(
        [sys.executable, str(script), str(one), str(tmp_path / "o1")], check=True, timeout=300
    )
    launcher = str(torchrun) if torchrun.exists() else "torchrun"
    subprocess.run(
        [
            launcher,
            "--standalone",
            "--nproc_per_node",
            "2",
            str(script),
            str(two),
            str(tmp_path / "o2"),
        ],
        check=True,
        timeout=300,
    )
    a, b = json.loads(one.read_text()), json.loads(two.read_text())
    assert (a["world"], b["world"]) == (1, 2)
    assert len(a["losses"]) == len(b["losses"]) == 10  # 5 batches (the last of 1 pair) x 2
    np.testing.assert_allclose(b["lrs"], a["lrs"], atol=1e-12, rtol=0)
    np.testing.assert_allclose(b["losses"], a["losses"], atol=1e-6, rtol=0)
    np.testing.assert_allclose(b["weights"], a["weights"], atol=1e-6, rtol=0)
