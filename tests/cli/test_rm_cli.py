"""`prefkit rm`: train, eval (checkpoint and cross-validation), score, heads, bad input.

Uses the real packaged MiniLM encoder (frozen features, cached under tmp_path) on a small
planted task: the preferred answer is a polite, on-topic one, the other a curt refusal.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

import prefkit
from builders import build
from prefkit.cli.main import cli
from prefkit.models.reward_model import RewardModel

TOPICS = [
    "bread",
    "tides",
    "rust",
    "chess",
    "tea",
    "bees",
    "maps",
    "glass",
    "ink",
    "salt",
    "clouds",
    "rice",
    "wool",
    "clocks",
    "soap",
    "kites",
    "moss",
    "ferns",
    "owls",
    "jazz",
]


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory):
    rng = np.random.default_rng(0)
    prompts, responses, judgments = [], [], []
    for i, t in enumerate(TOPICS):
        good = f"Happy to help! Here is a clear explanation of {t}, step by step, with an example."
        bad = "No. Figure it out yourself."
        prompts.append(
            {"prompt_id": f"p{i}", "messages": [{"role": "user", "content": f"Tell me about {t}."}]}
        )
        responses += [
            {
                "response_id": f"g{i}",
                "prompt_id": f"p{i}",
                "messages": [{"role": "assistant", "content": good}],
            },
            {
                "response_id": f"b{i}",
                "prompt_id": f"p{i}",
                "messages": [{"role": "assistant", "content": bad + f" ({t})"}],
            },
        ]
        flip = rng.random() < 0.5
        judgments.append(
            {
                "judgment_id": f"j{i}",
                "prompt_id": f"p{i}",
                "a": f"b{i}" if flip else f"g{i}",
                "b": f"g{i}" if flip else f"b{i}",
                "outcome": -1 if flip else 1,
            }
        )
    path = tmp_path_factory.mktemp("rm") / "ds"
    build(prompts=prompts, responses=responses, judgments=judgments).save(path)
    return path


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def test_train_eval_score(dataset_dir, tmp_path):
    cache = tmp_path / "cache"
    model = tmp_path / "model"
    r = run(
        "rm",
        "train",
        dataset_dir,
        "--out",
        model,
        "--cache-dir",
        cache,
        "--epochs",
        "60",
        "--quiet",
    )
    assert r.exit_code == 0, r.output
    assert (model / "head.safetensors").is_file() and (model / "config.json").is_file()
    metrics = json.loads((model / "metrics.json").read_text())
    assert len(metrics["history"]) == 60 and metrics["n_judgments"] == 20
    assert metrics["history"][-1]["loss"] < metrics["history"][0]["loss"]

    r = run(
        "rm",
        "eval",
        dataset_dir,
        "--model",
        model,
        "--cache-dir",
        cache,
        "--json",
        tmp_path / "e.json",
        "--plot",
        tmp_path / "rel.png",
        "--quiet",
    )
    assert r.exit_code == 0, r.output
    ev = json.loads((tmp_path / "e.json").read_text())["eval"]
    assert ev["accuracy"] == 1.0  # training data, a separable task
    assert ev["baselines"]["longer"] == 1.0  # the good answers are the longer ones here
    assert (tmp_path / "rel.png").read_bytes()[:4] == b"\x89PNG"
    assert "pairwise accuracy" in r.output

    out = tmp_path / "scored"
    r = run(
        "rm", "score", dataset_dir, "--model", model, "--out", out, "--cache-dir", cache, "--quiet"
    )
    assert r.exit_code == 0, r.output
    scored = prefkit.load(out)
    rewards = dict(
        zip(
            scored.responses.column("response_id").to_pylist(),
            scored.responses.column("reward").to_pylist(),
            strict=True,
        )
    )
    direct = RewardModel.load(model, cache_dir=cache).rewards(prefkit.load(dataset_dir))
    assert np.allclose(list(rewards.values()), direct, atol=1e-6)
    j = scored.judgments.to_pylist()
    assert all(row["reward_agrees"] for row in j)
    for row in j:
        assert row["reward_margin"] == pytest.approx(
            rewards[row["a"]] - rewards[row["b"]], abs=1e-9
        )
    assert scored.manifest.lineage[-1]["step"] == "rm-score"


def test_truncation_is_reported(dataset_dir, tmp_path):
    r = CliRunner().invoke(
        cli,
        [
            "rm",
            "train",
            str(dataset_dir),
            "--out",
            str(tmp_path / "m"),
            "--max-length",
            "8",
            "--epochs",
            "2",
            "--cache-dir",
            str(tmp_path),
            "--quiet",
        ],
    )
    assert r.exit_code == 0, r.output
    assert "40 of 40 texts (100.0%) were longer than max_length=8 tokens" in r.output
    metrics = json.loads((tmp_path / "m" / "metrics.json").read_text())
    assert metrics["n_truncated"] == 40 and metrics["n_tokenized"] == 40


def test_cross_validation_beats_chance(dataset_dir, tmp_path):
    r = run(
        "rm",
        "eval",
        dataset_dir,
        "--folds",
        "4",
        "--epochs",
        "60",
        "--cache-dir",
        tmp_path,
        "--json",
        tmp_path / "cv.json",
        "--quiet",
    )
    assert r.exit_code == 0, r.output
    cv = json.loads((tmp_path / "cv.json").read_text())
    assert cv["summary"]["folds"] == 4 and cv["summary"]["n_decisive"] == 20
    assert cv["summary"]["accuracy"]["mean"] >= 0.9  # held-out topics, same planted signal


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["rm", "eval", "{ds}"], "either --model CHECKPOINT or --folds K"),
        (
            ["rm", "train", "{ds}", "--out", "{tmp}/m", "--param", "margin"],
            "--param takes KEY=VALUE",
        ),
        (
            ["rm", "train", "{ds}", "--out", "{tmp}/m", "--param", "nope=1"],
            "has no parameter 'nope'",
        ),
        (["rm", "train", "{ds}", "--out", "{tmp}/m", "--param", "margin=x"], "must be a float"),
        (
            ["rm", "train", "{ds}", "--out", "{tmp}/m", "--backbone", "gpt"],
            "unknown backbone 'gpt'",
        ),
        (
            ["rm", "score", "{ds}", "--model", "{ds}", "--out", "{tmp}/s"],
            "not a prefkit reward model",
        ),
        (
            ["rm", "eval", "{ds}", "--model", "{ds}", "--head", "ties", "--param", "nu_init=3"],
            "rm eval --model: --head, --param set how a model is trained",
        ),
    ],
)
def test_bad_input_is_a_clear_error(dataset_dir, tmp_path, args, message):
    r = CliRunner().invoke(cli, [a.format(ds=dataset_dir, tmp=tmp_path) for a in args])
    assert r.exit_code == 2, r.output
    assert message in r.output
    assert "Traceback" not in r.output


def test_heads_lists_the_registry():
    from prefkit.models.heads.base import load_heads

    r = run("rm", "heads")
    assert r.exit_code == 0
    # the first cell of each row that starts a head (continuation rows start blank)
    firsts = [line.split("│")[1].strip() for line in r.output.splitlines() if line.startswith("│")]
    assert [c for c in firsts if c] == list(load_heads())


def test_the_cli_starts_without_torch():
    """The data half must work without the train extra: building the CLI (rm included)
    must not import torch."""
    import subprocess
    import sys

    code = "import sys, prefkit.cli.main; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
