"""DPOTrainer: accumulation, resume, curriculum, refreshed references, LoRA, objectives,
evaluation and the known-reward task, on tiny CPU models in fp32.

Golden values are independent of the trainer: ``log 2`` (DPO when policy == reference),
``log K!`` (Plackett-Luce over K equal rewards), NLL from an unpadded full forward,
implicit-reward metrics recomputed from naive log-probs, and an uninterrupted run as the
truth for a resumed one.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from prefkit.errors import PrefkitError
from prefkit.training.dpo import DPOTrainer, load_policy, load_tokenizer, plan
from prefkit.training.dpo_config import DPOConfig
from prefkit.training.groups import Groups
from prefkit.training.synthetic import (
    known_reward_experiment,
)

LOG2 = math.log(2.0)


def losses(t: DPOTrainer) -> list[float]:
    return [h.loss for h in t.history_]


def max_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k] - b[k]).abs().max()) for k in a)


# --- 1. gradient accumulation ----------------------------------------------------------------
def test_micro_batches_take_the_same_steps(
    tmp_path: Path, make_lm: Any, make_groups: Any, make_config: Any, snapshot: Any
) -> None:
    g = make_groups(16, seed=1)
    lr = 1e-2
    runs = {}
    for micro in (8, 1):
        cfg = make_config(tmp_path, f"mb{micro}", batch_size=8, micro_batch_size=micro, epochs=2)
        assert cfg.lr == lr
        t = DPOTrainer(cfg, model=make_lm(0)).fit(g)
        runs[micro] = (losses(t), snapshot(t.model_))
    (l8, w8), (l1, w1) = runs[8], runs[1]
    assert len(l8) == 4 and l8[0] == pytest.approx(LOG2, abs=1e-6)
    # Tolerance: losses 1e-6 (float32 sums in another order). Weights: 1e-3 · lr per step;
    # Adam moves every weight by up to ~lr a step and its normalised update of near-zero
    # gradient components amplifies float32 rounding (observed ~5e-4 · lr); the weights
    # themselves move by ~4 · lr, so a wrong accumulation would be caught by far.
    np.testing.assert_allclose(l8, l1, rtol=0, atol=1e-6)
    assert max_diff(w8, w1) < 4 * 1e-3 * lr
    assert max_diff(w8, snapshot(make_lm(0))) > lr  # training did move the weights


# --- 2. resume -------------------------------------------------------------------------------
def test_resume_reproduces_the_uninterrupted_run(
    tmp_path: Path,
    make_lm: Any,
    make_groups: Any,
    make_config: Any,
    snapshot: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    g = make_groups(16, seed=1)
    ev = make_groups(6, seed=2)
    kw: dict[str, Any] = dict(
        batch_size=4, epochs=2, save_every=3, scheduler="linear", eval_every=4
    )
    full = DPOTrainer(make_config(tmp_path, "full", **kw), model=make_lm(0)).fit(g, ev)
    assert len(full.history_) == 8

    # Interrupt the same run during its 5th step: the last checkpoint is after step 3.
    real_step = DPOTrainer._step
    calls = []

    def crash(self: DPOTrainer, *a: Any, **k: Any) -> Any:
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return real_step(self, *a, **k)

    monkeypatch.setattr(DPOTrainer, "_step", crash)
    with pytest.raises(KeyboardInterrupt):
        DPOTrainer(make_config(tmp_path, "cut", **kw), model=make_lm(0)).fit(g, ev)
    monkeypatch.setattr(DPOTrainer, "_step", real_step)
    assert (tmp_path / "cut" / "checkpoint" / "state.json").exists()
    assert not (tmp_path / "cut" / "checkpoint.tmp").exists()

    # Resume from a model with other weights and an empty reference cache: the checkpoint
    # restores everything, the reference log-probs of the eval set too (never recomputed
    # from the trained policy).
    other_cache = str(tmp_path / "empty-cache")
    resumed = DPOTrainer(
        make_config(tmp_path, "cut", resume=True, ref_cache_dir=other_cache, **kw),
        model=make_lm(7),
    )
    resumed.fit(g, ev)
    assert resumed.ref_source_ == {"train": "checkpoint", "eval": "checkpoint"}
    assert resumed.evals_ == full.evals_
    assert not Path(other_cache).exists()  # nothing computed, nothing cached
    # Exact (tolerance 0): same weights, optimizer, scheduler and data order.
    assert losses(resumed) == losses(full)
    assert max_diff(snapshot(resumed.model_), snapshot(full.model_)) == 0.0
    lines = (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 8


def test_resume_without_a_checkpoint_is_a_user_error(
    tmp_path: Path, make_lm: Any, make_groups: Any, make_config: Any
) -> None:
    cfg = make_config(tmp_path, resume=True)
    with pytest.raises(PrefkitError, match="no checkpoint"):
        DPOTrainer(cfg, model=make_lm(0)).fit(make_groups(4))


# --- 3. curriculum plan ----------------------------------------------------------------------
STAGES = [1, 2, 0, 2, 1, 0, 1, 2, 1, 0, 2, 1]  # five rows of stage 1, four of 2, three of 0


def test_plan_visits_stages_in_order(tmp_path: Path, make_groups: Any, make_config: Any) -> None:
    g = make_groups(len(STAGES), stage=STAGES)
    stage = np.asarray(STAGES)
    cfg = make_config(tmp_path, batch_size=2, epochs=2, seed=3)
    steps = plan(g, cfg)
    # stage order 1, 2, then 0 (unstaged last); each stage `epochs` passes in a row
    runs: list[tuple[int, int]] = []
    for s, e, _ in steps:
        if not runs or runs[-1] != (s, e):
            runs.append((s, e))
    assert runs == [(1, 0), (1, 1), (2, 0), (2, 1), (0, 0), (0, 1)]
    for s in (1, 2, 0):
        for e in (0, 1):
            rows = [r for st, ep, rr in steps if (st, ep) == (s, e) for r in rr]
            assert sorted(rows) == np.flatnonzero(stage == s).tolist()  # one full pass
    assert all(len(r) <= 2 for _, _, r in steps)
    assert len(steps) == 2 * (3 + 2 + 2)  # ceil(5/2) + ceil(4/2) + ceil(3/2) per epoch
    # deterministic in the seed; another seed shuffles differently
    assert plan(g, cfg) == steps
    other = plan(g, make_config(tmp_path, batch_size=2, epochs=2, seed=4))
    assert [r for *_, r in other] != [r for *_, r in steps]
    # max_steps cuts the plan
    assert plan(g, make_config(tmp_path, batch_size=2, epochs=2, seed=3, max_steps=5)) == steps[:5]


def test_plan_without_stages_and_without_shuffle(
    tmp_path: Path, make_groups: Any, make_config: Any
) -> None:
    g = make_groups(len(STAGES), stage=STAGES)
    flat = plan(g, make_config(tmp_path, batch_size=5, epochs=2, stages=False))
    assert {s for s, _, _ in flat} == {-1}
    for e in (0, 1):
        assert sorted(r for _, ep, rr in flat if ep == e for r in rr) == list(range(len(STAGES)))
    ordered = plan(g, make_config(tmp_path, batch_size=5, epochs=1, shuffle=False))
    stage = np.asarray(STAGES)
    expect = [np.flatnonzero(stage == s).tolist() for s in (1, 2, 0)]
    assert [r for _, _, r in ordered] == [expect[0], expect[1], expect[2]]
    plain = plan(make_groups(7), make_config(tmp_path, batch_size=3, shuffle=False))
    assert [r for _, _, r in plain] == [[0, 1, 2], [3, 4, 5], [6]]


# --- 4. refreshed reference per stage --------------------------------------------------------
@pytest.mark.parametrize("refresh", [True, False])
def test_refresh_reference_restarts_each_stage_at_log2(
    tmp_path: Path, make_lm: Any, make_groups: Any, make_config: Any, refresh: bool
) -> None:
    g = make_groups(16, seed=2, stage=[1] * 8 + [2] * 8)
    cfg = make_config(
        tmp_path, batch_size=4, epochs=2, lr=2e-2, loss_params={"beta": 1.0},
        refresh_reference=refresh,
    )  # fmt: skip
    t = DPOTrainer(cfg, model=make_lm(0)).fit(g)
    assert [h.stage for h in t.history_] == [1] * 4 + [2] * 4
    first = losses(t)
    assert first[0] == pytest.approx(LOG2, abs=1e-6)
    assert abs(first[3] - LOG2) > 1e-2  # stage 1 moved the policy
    if refresh:
        # the reference of stage 2 is the policy at its start: margins 0, loss log 2
        # (tolerance 1e-5: train-mode batched vs eval-mode reference forward, float32)
        assert first[4] == pytest.approx(LOG2, abs=1e-5)
        assert t.ref_source_ == {"train": "policy"}
    else:
        assert abs(first[4] - LOG2) > 1e-2


# --- 6. LoRA ---------------------------------------------------------------------------------
def test_lora_trains_only_adapters_against_the_base(
    tmp_path: Path, ckpt: Path, make_groups: Any, make_config: Any, logps_of: Any
) -> None:
    cfg = make_config(tmp_path, model=str(ckpt), lora_r=4, batch_size=4, epochs=2, lr=2e-2)
    model, tok = load_policy(cfg), load_tokenizer(cfg)
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    lora = [k for k in before if "lora_" in k]
    assert lora and all("lora_A" in k or "lora_B" in k for k in lora)
    g = make_groups(8, seed=3)
    t = DPOTrainer(cfg, model=model, tokenizer=tok).fit(g)
    after = t.model_.state_dict()
    for k, v in before.items():
        if "lora_" in k:
            continue
        assert torch.equal(after[k], v), k  # base weights untouched (exact)
    assert all(not torch.equal(after[k], before[k]) for k in lora if "lora_B" in k)
    assert any(not torch.equal(after[k], before[k]) for k in lora if "lora_A" in k)
    # LoRA's B starts at zero: the starting policy is the base model, which is the reference
    assert losses(t)[0] == pytest.approx(LOG2, abs=1e-6)
    assert t.ref_source_ == {"train": "policy"}
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(ckpt, dtype=torch.float32)
    (cached,) = (tmp_path / "refcache").glob("*.npy")
    np.testing.assert_allclose(np.load(cached), logps_of(base, g), rtol=0, atol=1e-4)


# --- 7. objectives ---------------------------------------------------------------------------
def test_list_loss_on_lists_starts_at_log_k_factorial(
    tmp_path: Path, make_lm: Any, make_groups: Any, make_config: Any
) -> None:
    g = make_groups(8, seed=4, k=3, scores=True)
    # half the lists have two items: padding must not change their loss
    for i in range(0, 8, 2):
        g.completion_ids[i] = g.completion_ids[i][:2]
        assert g.scores is not None
        g.scores[i] = g.scores[i][:2]
    cfg = make_config(tmp_path, loss="pl", batch_size=8, epochs=3)
    t = DPOTrainer(cfg, model=make_lm(0)).fit(g)
    h = losses(t)
    # Plackett-Luce with all rewards 0 (policy == reference): -Σ log(1/m) = log K!
    assert h[0] == pytest.approx((math.log(2) + math.log(6)) / 2, abs=1e-6)
    assert all(math.isfinite(x) for x in h) and h[-1] < h[0]


def test_loss_kind_must_match_the_data(
    tmp_path: Path, make_lm: Any, make_groups: Any, make_config: Any
) -> None:
    lists = make_groups(4, k=3, scores=True)
    with pytest.raises(PrefkitError, match="reads pairs"):
        DPOTrainer(make_config(tmp_path, loss="dpo"), model=make_lm(0)).fit(lists)
    with pytest.raises(PrefkitError, match="reads ranked lists"):
        DPOTrainer(make_config(tmp_path, loss="pl"), model=make_lm(0)).fit(make_groups(4))


def test_nll_mixin_adds_its_weighted_term(
    tmp_path: Path, make_lm: Any, make_groups: Any, make_config: Any, logps_of: Any
) -> None:
    g = make_groups(8, seed=5)
    plain = DPOTrainer(make_config(tmp_path, "a", batch_size=8), model=make_lm(0)).fit(g)
    mixed = DPOTrainer(
        make_config(tmp_path, "b", batch_size=8, mixins={"nll": 0.5}), model=make_lm(0)
    ).fit(g)
    lp = logps_of(make_lm(0), g)  # unpadded full forwards, float64 log-softmax
    chosen_len = np.array([len(c[0]) for c in g.completion_ids])
    nll = np.mean(-lp[:, 0] / chosen_len)
    # tolerance 1e-5: float32 forward inside the trainer
    assert losses(mixed)[0] - losses(plain)[0] == pytest.approx(0.5 * nll, abs=1e-5)
    assert losses(plain)[0] == pytest.approx(LOG2, abs=1e-6)


def test_objective_and_config_errors(
    tmp_path: Path, make_lm: Any, make_groups: Any, make_config: Any, logps_of: Any
) -> None:
    g = make_groups(4)
    bad_objectives: list[tuple[dict[str, Any], str]] = [
        ({"loss_params": {"gamma": 1.0}}, "no parameter 'gamma'"),
        ({"loss_params": {"beta": -1.0}}, "beta"),
        ({"loss": "nope"}, "nope"),
        ({"loss": "nll"}, "mix-in"),
        ({"mixins": {"dpo": 0.5}}, "main loss"),
        ({"loss": "pl", "mixins": {"nll": 0.5}}, "mix-ins apply to pair losses"),
        ({"loss": "simpo", "mixins": {"selm": 0.1}}, "needs reference log-probs"),
    ]
    for kw, msg in bad_objectives:
        with pytest.raises(PrefkitError, match=msg):
            DPOTrainer(make_config(tmp_path, **kw), model=make_lm(0)).fit(g)
    for kw in (
        {"batch_size": 0},
        {"batch_size": 8, "micro_batch_size": 3},
        {"precision": "fp8"},
        {"micro_batch_size": -1},
        {"lr": 0.0},
        {"eval_fraction": 1.0},
        {"attention": "flash"},
    ):
        with pytest.raises(PrefkitError, match="train dpo"):
            DPOConfig(output_dir=str(tmp_path), ref_cache_dir=str(tmp_path), **kw)
    # strength from tier gaps (2.0) is not a probability: refused by the losses that read
    # it, read as 1 by the evaluation of the others
    gaps = Groups(g.ids, g.prompt_ids, g.completion_ids, strength=np.array([1.0, 2.0, 0.5, 1.0]))
    for loss in ("soft", "gdpo"):
        with pytest.raises(PrefkitError, match="preference probability"):
            DPOTrainer(make_config(tmp_path, loss=loss), model=make_lm(0)).fit(gaps)
    t = DPOTrainer(make_config(tmp_path, "gaps"), model=make_lm(0)).fit(gaps, gaps)
    # α = 1 (rows 0, 1 read as 1, 3) always ranks right; α = ½ (row 2) follows the reference
    ref = logps_of(make_lm(0), gaps)
    want = (3 + float(ref[2, 0] >= ref[2, 1])) / 4
    assert t.evals_[-1]["idealized_ranking_accuracy"] == pytest.approx(want)
    empty = Groups([], [], [])
    with pytest.raises(PrefkitError, match="no training examples"):
        DPOTrainer(make_config(tmp_path), model=make_lm(0)).fit(empty)


# --- 8. the known-reward task ----------------------------------------------------------------
def test_dpo_raises_the_true_reward_of_its_own_samples(tmp_path: Path) -> None:
    """Offline DPO on pairs of a tiny Llama's own samples, labelled by a Bradley-Terry draw
    on the known reward, raises the reward of fresh samples (the experiment the docs and
    demo step 8c quote: 0.465 -> 0.845 on seed 0)."""
    r = known_reward_experiment(seed=0, output_dir=str(tmp_path))
    assert 30 <= r["steps"] <= 50
    assert r["reward_after"] > r["reward_before"] + 0.2, r


# --- 9. evaluation ---------------------------------------------------------------------------
def test_evaluation_metrics_match_an_independent_computation(
    tmp_path: Path, make_lm: Any, make_groups: Any, make_config: Any, logps_of: Any
) -> None:
    train = make_groups(16, seed=6, stage=[1] * 8 + [2] * 8)
    held = make_groups(6, seed=7)
    beta = 0.5
    cfg = make_config(tmp_path, batch_size=4, lr=3e-2, loss_params={"beta": beta})
    t = DPOTrainer(cfg, model=make_lm(0)).fit(train, held)
    assert t.ref_source_ == {"train": "policy", "eval": "policy"}
    # one evaluation at the end of each stage (eval_every = 0)
    assert [(e["step"], e["stage"]) for e in t.evals_] == [(2, 1), (4, 2)]
    pol, ref = logps_of(t.model_, held), logps_of(make_lm(0), held)
    margin = beta * ((pol[:, 0] - ref[:, 0]) - (pol[:, 1] - ref[:, 1]))
    last = t.evals_[-1]
    # tolerance 1e-4: float32 forwards in the trainer vs float64 log-softmax here
    assert last["reward_margin"] == pytest.approx(margin.mean(), abs=1e-4)
    assert last["implicit_reward_accuracy"] == pytest.approx(np.mean(margin > 0), abs=1e-12)
    assert last["ranking_accuracy"] == pytest.approx(np.mean(pol[:, 0] >= pol[:, 1]), abs=1e-12)
    assert last["chosen_logp"] == pytest.approx(pol[:, 0].mean(), abs=1e-4)
    assert last["reference_ranking_accuracy"] == pytest.approx(np.mean(ref[:, 0] >= ref[:, 1]))


def test_eval_every_evaluates_each_step_once(
    tmp_path: Path, make_lm: Any, make_groups: Any, make_config: Any
) -> None:
    cfg = make_config(tmp_path, batch_size=4, eval_every=2)
    t = DPOTrainer(cfg, model=make_lm(0)).fit(make_groups(16), make_groups(4, seed=9))
    assert [e["step"] for e in t.evals_] == [2, 4]


def test_sampled_kl_in_evaluation(
    tmp_path: Path, ckpt: Path, make_groups: Any, make_config: Any
) -> None:
    # lr 1e-9: Adam moves each weight by ~1e-9, so the policy is the reference and KL ~ 0
    cfg = make_config(tmp_path, model=str(ckpt), batch_size=4, lr=1e-9, kl_samples=2)
    held = make_groups(3, seed=8)
    t = DPOTrainer(cfg).fit(make_groups(8, seed=3), held)
    (e,) = t.evals_
    assert {"kl", "kl_se", "kl_length", "kl_samples", "implicit_reward_accuracy"} <= e.keys()
    assert e["kl_samples"] == 3 * 2  # distinct eval prompts x samples
    assert e["kl"] == pytest.approx(0.0, abs=1e-4) and e["kl_length"] >= 1
