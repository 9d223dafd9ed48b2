"""`prefkit train dpo` / `prefkit train losses` end to end.

Every run trains the tiny random checkpoint of :mod:`prefkit.training.tiny` on a few
TRL-style JSONL pairs, a handful of steps long. Golden values: the first DPO step's loss is
exactly ln 2 (the policy is its own reference, so every implicit reward margin is 0); a
resumed run repeats the uninterrupted run's step losses (tolerance 1e-6); flags and the
registry are checked against ``dataclasses.fields(DPOConfig)`` and ``all_losses()``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from prefkit.cli.main import cli
from prefkit.training.dpo_config import DPOConfig

#: Short answers (at most ~11 tokens with the tiny tokenizer), so max lengths of 32 cut nothing.
GOOD = "It is {}."
BAD = "I am sorry, but I cannot help."
LONG = "Sure! Here is a short answer to your question, with an example. " * 3  # ~55 tokens
N_ROWS = 12


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def pair(i, chosen=None, rejected=BAD):
    return {
        "prompt": f"What is {i} plus {i}?",
        "chosen": GOOD.format(2 * i) if chosen is None else chosen,
        "rejected": rejected,
    }


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """A tiny checkpoint and twelve clean pairs (twelve distinct prompts)."""
    from prefkit.training.tiny import tiny_checkpoint

    root = tmp_path_factory.mktemp("train_cli")
    model = tiny_checkpoint(root / "model")
    data = write_jsonl(root / "pairs.jsonl", [pair(i) for i in range(N_ROWS)])
    return model, data


def config(tmp_path, inputs, name="cfg.yaml", **over):
    """Write a small run's YAML config (4 steps of 2 pairs, lengths 32/32) and return it."""
    model, data = inputs
    values = {
        "model": str(model),
        "data": str(data),
        "output_dir": str(tmp_path / "out"),
        "ref_cache_dir": str(tmp_path / "refcache"),
        "max_steps": 4,
        "batch_size": 2,
        "max_prompt_length": 32,
        "max_completion_length": 32,
        "lr": 1e-3,
        **over,
    }
    path = tmp_path / name
    path.write_text(yaml.safe_dump(values))
    return path


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def said(r):
    """The command's output with rich's line wrapping undone."""
    return " ".join(r.output.split())


def train(cfg, *flags):
    r = invoke("train", "dpo", "--config", cfg, "--quiet", *flags)
    assert r.exit_code == 0, r.output
    return r


def losses_of(out):
    return [json.loads(line)["loss"] for line in (out / "metrics.jsonl").read_text().splitlines()]


# --- 1. a run and what it writes --------------------------------------------------------------
def test_train_writes_model_and_metrics(tmp_path, inputs):
    from transformers import AutoModelForCausalLM

    r = train(config(tmp_path, inputs), "--eval-fraction", "0.25")
    out = tmp_path / "out"
    m = json.loads((out / "metrics.json").read_text())
    assert m["steps"] == 4 and m["dropped"] == 0
    assert m["eval_examples"] >= 1 and m["train_examples"] + m["eval_examples"] == N_ROWS
    assert m["preflight"]["rows"] == m["train_examples"] and m["preflight"]["ok"]
    assert m["reference"] == {"train": "policy", "eval": "policy"}
    assert [e["step"] for e in m["evals"]] == [4]  # eval_every 0: once, at the end
    ev = m["evals"][-1]
    assert 0.0 <= ev["implicit_reward_accuracy"] <= 1.0 and 0.0 <= ev["ranking_accuracy"] <= 1.0
    # mean margin = mean chosen reward - mean rejected reward (linearity of the mean)
    assert ev["reward_margin"] == pytest.approx(ev["chosen_reward"] - ev["rejected_reward"])
    assert m["config"]["eval_fraction"] == 0.25 and m["model_dir"] == str(out / "model")

    steps = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [s["step"] for s in steps] == [1, 2, 3, 4]
    # Step 1: policy == reference, every margin is 0, so the DPO loss is -log sigmoid(0).
    assert steps[0]["loss"] == pytest.approx(math.log(2), abs=1e-6)
    assert m["final_loss"] == steps[-1]["loss"]

    trained = AutoModelForCausalLM.from_pretrained(out / "model")
    start = AutoModelForCausalLM.from_pretrained(inputs[0])
    a, b = trained.state_dict(), start.state_dict()
    assert a.keys() == b.keys()
    assert any(not np.allclose(a[k].numpy(), b[k].numpy()) for k in a)  # it did train

    assert f"pre-flight: {m['train_examples']} examples, no problems" in said(r)
    assert "trained 4 steps" in said(r)
    assert "train from policy, eval from policy" in said(r)


def test_flags_override_the_file_and_json_summary(tmp_path, inputs):
    cfg = config(tmp_path, inputs, loss_params={"beta": 0.1})
    r = invoke(
        "train", "dpo", "--config", cfg, "--max-steps", "2", "--json",
        "--loss-param", "beta=0.5", "--mixin", "nll=0.1",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    assert summary["steps"] == 2
    assert summary["config"]["max_steps"] == 2
    assert summary["config"]["loss_params"] == {"beta": 0.5}
    assert summary["config"]["mixins"] == {"nll": 0.1}
    on_disk = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert on_disk["config"] == summary["config"] and on_disk["steps"] == 2
    assert len(losses_of(tmp_path / "out")) == 2


def expected_flag(f: dataclasses.Field) -> str:
    special = {"loss_params": "--loss-param", "mixins": "--mixin"}  # repeatable KEY=VALUE
    if f.name in special:
        return special[f.name]
    flag = "--" + f.name.replace("_", "-")
    if isinstance(f.default, bool):
        return f"{flag} / --no-{flag[2:]}"
    return flag


def test_every_config_field_is_a_flag():
    r = invoke("train", "dpo", "--help")
    assert r.exit_code == 0, r.output
    missing = [expected_flag(f) for f in dataclasses.fields(DPOConfig)]
    missing = [f for f in missing if not re.search(rf"(?<![\w-]){re.escape(f)}(?![\w-])", r.output)]
    assert not missing, r.output


def test_lora_run_saves_an_adapter(tmp_path, inputs):
    out = tmp_path / "out"
    train(config(tmp_path, inputs, max_steps=2), "--lora-r", "2")
    assert (out / "model" / "adapter_config.json").is_file()
    assert not (out / "model" / "model.safetensors").exists()  # the adapter only
    # LoRA's B starts at zero: the starting policy is the base model, so step 1 is ln 2.
    assert losses_of(out)[0] == pytest.approx(math.log(2), abs=1e-6)


def test_lora_targets_take_a_module_list(tmp_path, inputs):
    out = tmp_path / "out"
    r = invoke(
        "train", "dpo", "--config", config(tmp_path, inputs, max_steps=1), "--quiet",
        "--lora-r", "2", "--lora-targets", "q_proj,v_proj",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    adapter = json.loads((out / "model" / "adapter_config.json").read_text())
    assert sorted(adapter["target_modules"]) == ["q_proj", "v_proj"]


# --- 3. config errors -------------------------------------------------------------------------
ERRORS = {
    "unknown-field": ("max_step: 4\n", [], ["{cfg}", "unknown field 'max_step'"]),
    "wrong-type": ('batch_size: "eight"\n', [], ["{cfg}", "field 'batch_size' must be"]),
    "fractional-int": ("max_steps: 2.5\n", [], ["{cfg}", "'max_steps'"]),
    "not-a-mapping": ("- model\n- data\n", [], ["{cfg}", "must be a mapping"]),
    "bad-yaml": ("model: [\n", [], ["{cfg}", "cannot read the config"]),
    "out-of-range": ("batch_size: 0\n", [], ["batch_size must be >= 1"]),
    "missing-model": ("data: pairs.jsonl\n", [], ["--model and --data are required"]),
    "missing-data": (None, ["--data", ""], ["--model and --data are required"]),
    "loss-param-syntax": (None, ["--loss-param", "beta"], ["--loss-param takes KEY=VALUE"]),
    "loss-param-value": (None, ["--loss-param", "beta=x"], ["must be a number"]),
    "loss-param-name": (None, ["--loss-param", "nope=1"], ["has no parameter 'nope'"]),
    "mixin-syntax": (None, ["--mixin", "=1"], ["--mixin takes KEY=VALUE"]),
    "unknown-loss": (None, ["--loss", "dpoo"], ["unknown loss 'dpoo'"]),
    "mixin-as-loss": (None, ["--loss", "nll"], ["'nll' is a mix-in", "--mixin nll=W"]),
    "loss-as-mixin": (None, ["--mixin", "ipo=0.1"], ["'ipo' is a main loss"]),
    "flag-type": (None, ["--batch-size", "eight"], ["Invalid value for '--batch-size'"]),
    "resume-nothing": (None, ["--resume"], ["no checkpoint in"]),
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_config_errors_are_clean(tmp_path, inputs, case):
    text, flags, messages = ERRORS[case]
    cfg = config(tmp_path, inputs)
    if text is not None:
        cfg.write_text(text)
    r = invoke("train", "dpo", "--config", cfg, "--quiet", *flags)
    assert r.exit_code == 2, r.output
    for message in messages:
        assert message.format(cfg=cfg) in said(r), r.output
    assert "Traceback" not in r.output
    assert not (tmp_path / "out" / "model").exists()


# --- 4. the pre-flight --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("rows", "flags", "problem"),
    [
        ([pair(i) for i in range(6)] + [pair(6, chosen="")], [], "empty_completion"),
        (
            [pair(i) for i in range(6)] + [pair(6, chosen=LONG)],
            ["--max-completion-length", "20"],  # cuts the chosen side only
            "asymmetric_truncation",
        ),
    ],
    ids=["empty", "asymmetric-cut"],
)
def test_preflight_refuses_then_drops(tmp_path, inputs, rows, flags, problem):
    data = write_jsonl(tmp_path / "broken.jsonl", rows)
    cfg = config(tmp_path, inputs, data=str(data))
    r = invoke("train", "dpo", "--config", cfg, "--quiet", *flags)
    assert r.exit_code == 2, r.output
    assert "--on-problem drop" in said(r) and problem in said(r) and "1 of 7 rows" in said(r)
    assert "Traceback" not in r.output

    r = train(cfg, *flags, "--on-problem", "drop")
    m = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert m["dropped"] == 1 and m["train_examples"] == 6
    assert m["preflight"]["problems"][problem]["count"] == 1
    assert m["steps"] == 3  # six pairs, two a step
    assert "dropped 1" in said(r) and f"{problem} 1" in said(r)


# --- 5. the reference cache ---------------------------------------------------------------------
def test_second_run_reads_the_reference_from_the_cache(tmp_path, inputs):
    cfg = config(tmp_path, inputs, max_steps=2)
    train(cfg)
    first = json.loads((tmp_path / "out" / "metrics.json").read_text())
    first_losses = losses_of(tmp_path / "out")
    r = train(cfg)
    second = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert first["reference"] == {"train": "policy"}
    assert second["reference"] == {"train": "cache"}
    assert "train from cache" in said(r)
    np.testing.assert_allclose(losses_of(tmp_path / "out"), first_losses, rtol=0, atol=1e-6)


# --- 6. resuming --------------------------------------------------------------------------------
def test_resume_repeats_the_uninterrupted_run(tmp_path, inputs):
    """Save at step 2 of 4, then resume from that checkpoint with the run's other outputs
    deleted: steps 3 and 4 are recomputed and match the uninterrupted run (atol 1e-6)."""
    from safetensors.numpy import load_file

    out = tmp_path / "out"
    cfg = config(tmp_path, inputs)
    train(cfg, "--save-every", "2")
    state = json.loads((out / "checkpoint" / "state.json").read_text())
    assert state["step"] == 2  # the last step is saved as the model, not as a checkpoint
    full = (out / "metrics.jsonl").read_text().splitlines()
    full_weights = load_file(out / "model" / "model.safetensors")
    shutil.rmtree(out / "model")
    (out / "metrics.jsonl").unlink()
    (out / "metrics.json").unlink()

    r = train(cfg, "--save-every", "2", "--resume")
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 4
    # Steps 1-2 are the checkpoint's record, byte for byte (their timings too: not re-run).
    assert lines[:2] == full[:2]
    for got, want in zip(lines[2:], full[2:], strict=True):
        got, want = json.loads(got), json.loads(want)
        assert got["step"] == want["step"] and got["lr"] == pytest.approx(want["lr"], abs=1e-12)
        assert got["loss"] == pytest.approx(want["loss"], abs=1e-6)
        assert got["seconds"] != want["seconds"]  # re-computed after the resume
    assert json.loads((out / "metrics.json").read_text())["steps"] == 4
    assert "trained 4 steps" in said(r)
    resumed = load_file(out / "model" / "model.safetensors")
    for k, v in full_weights.items():
        np.testing.assert_allclose(resumed[k], v, rtol=0, atol=1e-6)


# --- 7. the registry ----------------------------------------------------------------------------
def test_losses_lists_the_registry():
    from prefkit.losses.base import all_losses

    losses = all_losses()
    r = invoke("train", "losses")
    assert r.exit_code == 0, r.output
    for name in losses:
        assert name in r.output

    r = invoke("train", "losses", "--json")
    assert r.exit_code == 0, r.output
    got = json.loads(r.stdout)
    assert list(got) == list(losses)
    for name, loss in losses.items():
        assert got[name]["kind"] == loss.kind in ("pairs", "lists")
        assert got[name]["reference"] is loss.reference
        assert got[name]["mixin"] is loss.mixin
        assert got[name]["params"] == {k: p.default for k, p in loss.params.items()}


# --- 8. no torch for the CLI's own work -----------------------------------------------------------
def test_train_help_does_not_import_torch():
    """`prefkit train dpo --help` (its flags come from DPOConfig) must not import torch."""
    code = (
        "import sys\n"
        "from prefkit.cli.main import cli\n"
        "try:\n"
        "    cli(['train', 'dpo', '--help'], standalone_mode=False)\n"
        "except SystemExit:\n"
        "    pass\n"
        "sys.exit(3 if 'torch' in sys.modules else 0)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr
    assert "--loss-param" in r.stdout
