"""Pairwise simulation: determinism and recovery of every planted teacher property."""

from __future__ import annotations

import numpy as np
import orjson
import pyarrow as pa
import pytest

from prefkit.synth import KINDS, SynthConfig, simulate


def _rewards(ds) -> dict[str, float]:
    r = ds.responses
    return dict(
        zip(r.column("response_id").to_pylist(), r.column("true_reward").to_pylist(), strict=True)
    )


def _true_delta(ds) -> np.ndarray:
    """r_a - r_b from the responses' true_reward column, per judgment."""
    reward = _rewards(ds)
    j = ds.judgments
    return np.array(
        [
            reward[a] - reward[b]
            for a, b in zip(j.column("a").to_pylist(), j.column("b").to_pylist(), strict=True)
        ]
    )


def _np(table: pa.Table, column: str) -> np.ndarray:
    return np.asarray(table.column(column).to_numpy(zero_copy_only=False))


@pytest.mark.parametrize("kind", KINDS)
def test_same_seed_same_fingerprint(kind, check_model):
    kw = {"kind": kind, "n_prompts": 60, "responses_per_prompt": 3, "judgments_per_pair": 2,
          "duplicate_rate": 0.1, "near_duplicate_rate": 0.1, "flip_rate": 0.1}  # fmt: skip
    first, again, other = simulate(seed=3, **kw), simulate(seed=3, **kw), simulate(seed=4, **kw)
    assert first.fingerprint() == again.fingerprint()
    assert first.fingerprint() != other.fingerprint()
    check_model(first)
    assert first.manifest.planted == again.manifest.planted


def test_config_object_and_overrides_agree():
    cfg = SynthConfig(n_prompts=40, seed=9)
    assert simulate(cfg).fingerprint() == simulate(n_prompts=40, seed=9).fingerprint()
    assert simulate(cfg, flip_rate=0.5).manifest.planted["config"]["flip_rate"] == 0.5


def test_planted_is_json_and_holds_config(tmp_path):
    cfg = SynthConfig(n_prompts=80, n_groups=2, bad_annotator_fraction=0.2, n_cyclic_triads=2,
                      duplicate_rate=0.05, beta=float("inf"), skip_threshold=-1.0)  # fmt: skip
    ds = simulate(cfg)
    planted = orjson.loads(orjson.dumps(ds.manifest.planted))
    assert planted["config"]["beta"] == "inf"
    assert SynthConfig.from_dict(planted["config"]) == cfg
    assert planted["counts"]["judgments"] == ds.judgments.num_rows
    assert len(planted["annotators"]["bad"]) == 4
    saved = ds.save(tmp_path / "sim")
    from prefkit import load

    back = load(saved)
    assert back.fingerprint() == ds.fingerprint()
    assert back.manifest.planted["counts"] == planted["counts"]


def test_flip_rate_recovered():
    ds = simulate(n_prompts=20000, beta=float("inf"), flip_rate=0.2, seed=1)
    j = ds.judgments
    outcome, delta = _np(j, "outcome"), _true_delta(ds)
    decisive = outcome != 0
    disagree = np.sign(delta[decisive]) != outcome[decisive]
    assert abs(disagree.mean() - 0.2) < 0.02
    # The planted flag marks exactly the disagreeing judgments.
    assert np.array_equal(disagree, _np(j, "flipped")[decisive])
    assert ds.manifest.planted["counts"]["flipped"] == int(disagree.sum())


def test_no_noise_teacher_is_exact():
    ds = simulate(n_prompts=3000, beta=float("inf"), seed=2)
    assert np.array_equal(np.sign(_true_delta(ds)), _np(ds.judgments, "outcome"))


def test_stochastic_teacher_follows_bradley_terry():
    ds = simulate(n_prompts=30000, beta=2.0, seed=5)
    delta = _true_delta(ds)
    won = _np(ds.judgments, "outcome") == 1
    for lo, hi in ((-0.5, -0.25), (0.0, 0.25), (0.5, 1.0)):
        sel = (delta >= lo) & (delta < hi)
        expected = (1 / (1 + np.exp(-2.0 * delta[sel]))).mean()
        assert abs(won[sel].mean() - expected) < 0.03


def _longer_wins(ds) -> float:
    r = ds.responses
    words = dict(
        zip(r.column("response_id").to_pylist(), r.column("n_words").to_pylist(), strict=True)
    )
    j = ds.judgments
    wa = np.array([words[x] for x in j.column("a").to_pylist()])
    wb = np.array([words[x] for x in j.column("b").to_pylist()])
    outcome = _np(j, "outcome")
    sel = (wa != wb) & (outcome != 0)
    return float(((wa > wb)[sel] == (outcome[sel] == 1)).mean())


def test_length_bias_plants_longer_wins():
    neutral = _longer_wins(simulate(n_prompts=8000, length_bias=0.0, seed=6))
    biased = _longer_wins(simulate(n_prompts=8000, length_bias=1.0, seed=6))
    assert abs(neutral - 0.5) < 0.03
    assert biased > neutral + 0.15


def test_tie_threshold_gives_ties_exactly_below_threshold():
    ds = simulate(n_prompts=5000, beta=float("inf"), tie_threshold=0.3, seed=7)
    delta = _true_delta(ds)
    tie = _np(ds.judgments, "outcome") == 0
    assert np.array_equal(tie, np.abs(delta) < 0.3)
    assert np.allclose(_np(ds.judgments, "margin"), delta)
    assert 0.05 < tie.mean() < 0.5
    assert ds.manifest.planted["counts"]["ties"] == int(tie.sum())


def test_skip_threshold_removes_judgments():
    full = simulate(n_prompts=4000, seed=8)
    skipped = simulate(n_prompts=4000, seed=8, skip_threshold=0.0)
    counts = skipped.manifest.planted["counts"]
    assert counts["skipped"] > 0 and full.manifest.planted["counts"]["skipped"] == 0
    assert counts["skipped"] + skipped.judgments.num_rows == full.judgments.num_rows
    reward = _rewards(skipped)
    j = skipped.judgments
    best = np.maximum(
        [reward[a] for a in j.column("a").to_pylist()],
        [reward[b] for b in j.column("b").to_pylist()],
    )
    assert (best >= 0.0).all()


def test_position_bias_favours_a():
    ds = simulate(n_prompts=20000, beta=float("inf"), position_bias=0.3, seed=9)
    a_wins = (_np(ds.judgments, "outcome") == 1).mean()
    assert abs(a_wins - (0.3 + 0.7 * 0.5)) < 0.02
    assert abs(_np(ds.judgments, "position_biased").mean() - 0.3) < 0.02


def test_myopic_teacher_weights_the_end():
    ds = simulate(n_prompts=5000, beta=float("inf"), gamma=0.3, seed=10)
    j = ds.judgments
    myopic, outcome = _np(j, "myopic_margin"), _np(j, "outcome")
    assert np.array_equal(np.sign(myopic), outcome)
    assert (np.sign(_true_delta(ds)) != outcome).mean() > 0.02
    assert ds.manifest.planted["myopic_weights"][-1] > ds.manifest.planted["myopic_weights"][0]


def test_bad_annotators_flip_more():
    ds = simulate(n_prompts=20000, n_annotators=20, bad_annotator_fraction=0.25, bad_flip_rate=0.4,
                  beta=float("inf"), seed=11)  # fmt: skip
    bad = set(ds.manifest.planted["annotators"]["bad"])
    assert len(bad) == 5
    j = ds.judgments
    wrong = np.sign(_true_delta(ds)) != _np(j, "outcome")
    is_bad = np.isin(j.column("annotator_id").to_pylist(), list(bad))
    assert abs(wrong[is_bad].mean() - 0.4) < 0.03
    assert wrong[~is_bad].mean() == 0.0
    flags = dict(
        zip(
            ds.annotators.column("annotator_id").to_pylist(),
            ds.annotators.column("bad").to_pylist(),
            strict=True,
        )
    )
    assert {a for a, b in flags.items() if b} == bad


def test_per_annotator_flip_rates():
    rates = (0.0, 0.1, 0.3, 0.5)
    ds = simulate(
        n_prompts=20000, n_annotators=4, annotator_flip_rates=rates, beta=float("inf"), seed=12
    )
    j = ds.judgments
    flipped = _np(j, "flipped")
    ann = np.array(j.column("annotator_id").to_pylist())
    for i, rate in enumerate(rates):
        assert abs(flipped[ann == f"a{i:04d}"].mean() - rate) < 0.03


def _agreement(ds) -> tuple[float, float]:
    """Share of co-judged pairs two annotators answer alike, within and across groups."""
    group = dict(
        zip(
            ds.annotators.column("annotator_id").to_pylist(),
            ds.annotators.column("group").to_pylist(),
            strict=True,
        )
    )
    j = ds.judgments
    votes: dict[tuple[str, str], list[tuple[str, int]]] = {}
    for a, b, ann, o in zip(j.column("a").to_pylist(), j.column("b").to_pylist(), j.column("annotator_id").to_pylist(), j.column("outcome").to_pylist(), strict=True):  # fmt: skip
        key, winner = (min(a, b), max(a, b)), (a if o == 1 else b)
        votes.setdefault(key, []).append((ann, winner))
    same, cross = [], []
    for vs in votes.values():
        for i in range(len(vs)):
            for k in range(i + 1, len(vs)):
                (x, wx), (y, wy) = vs[i], vs[k]
                (same if group[x] == group[y] else cross).append(wx == wy)
    return float(np.mean(same)), (float(np.mean(cross)) if cross else float("nan"))


def test_groups_agree_within_more_than_across():
    ds = simulate(
        n_prompts=800, n_annotators=8, judgments_per_pair=4, n_groups=2, beta=3.0, seed=13
    )
    same, cross = _agreement(ds)
    assert same > cross + 0.1
    weights = np.array(ds.manifest.planted["group_weights"])
    assert weights.shape == (2, 3) and not np.allclose(weights[0], weights[1])
    groups = ds.manifest.planted["annotators"]["group"]
    assert sorted(groups.values()) == [0] * 4 + [1] * 4


def test_one_group_agrees_everywhere():
    ds = simulate(n_prompts=500, n_annotators=6, judgments_per_pair=3, beta=float("inf"), seed=14)
    same, _ = _agreement(ds)
    assert same == 1.0


def test_cyclic_triads_form_cycles(check_model):
    ds = simulate(n_prompts=50, n_cyclic_triads=5, judgments_per_pair=3, seed=15)
    check_model(ds)
    triads = ds.manifest.planted["cyclic_triads"]
    assert len(triads) == 5
    j = ds.judgments
    rows = list(zip(j.column("prompt_id").to_pylist(), j.column("a").to_pylist(), j.column("b").to_pylist(), j.column("outcome").to_pylist(), strict=True))  # fmt: skip
    for triad in triads:
        edges = {(a, b) if o == 1 else (b, a) for p, a, b, o in rows if p == triad["prompt_id"]}
        assert len(edges) == 3  # every judge agrees on each pair
        wins = {x for x, _ in edges}
        losses = {y for _, y in edges}
        assert wins == losses == set(triad["cycle"])  # each beats one and loses to one
        c = triad["cycle"]
        assert edges == {(c[0], c[1]), (c[1], c[2]), (c[2], c[0])}
    flagged = {
        p
        for p, c in zip(
            j.column("prompt_id").to_pylist(), j.column("cyclic").to_pylist(), strict=True
        )
        if c
    }
    assert flagged == {t["prompt_id"] for t in triads}


def _texts(ds, table: str, key: str) -> dict[str, str]:
    t = ds.table(table)
    return {
        k: m[0]["content"]
        for k, m in zip(t.column(key).to_pylist(), t.column("messages").to_pylist(), strict=True)
    }


def test_exact_duplicates_are_identical_with_their_judgments():
    ds = simulate(n_prompts=200, responses_per_prompt=3, judgments_per_pair=2, duplicate_rate=0.1,
                  flip_rate=0.2, seed=16)  # fmt: skip
    pairs = ds.manifest.planted["duplicates"]["exact"]
    assert len(pairs) == 20
    prompts = _texts(ds, "prompts", "prompt_id")
    responses = _texts(ds, "responses", "response_id")
    j = ds.judgments
    rows = list(zip(j.column("prompt_id").to_pylist(), j.column("a").to_pylist(), j.column("b").to_pylist(),
                    j.column("outcome").to_pylist(), j.column("annotator_id").to_pylist(), strict=True))  # fmt: skip
    for orig, copy in pairs:
        assert orig != copy and prompts[orig] == prompts[copy]
        for k in range(3):
            assert responses[f"r{orig[1:]}-{k}"] == responses[f"r{copy[1:]}-{k}"]
        mine = sorted((a[10:], b[10:], o, ann) for p, a, b, o, ann in rows if p == orig)
        theirs = sorted((a[10:], b[10:], o, ann) for p, a, b, o, ann in rows if p == copy)
        assert mine == theirs and mine
    dup_of = dict(
        zip(
            ds.prompts.column("prompt_id").to_pylist(),
            ds.prompts.column("duplicate_of").to_pylist(),
            strict=True,
        )
    )
    assert {(dup_of[c], c) for _, c in pairs} == {tuple(p) for p in pairs}


def test_near_duplicates_differ_in_a_few_words():
    ds = simulate(n_prompts=300, near_duplicate_rate=0.1, near_duplicate_edits=2, seed=17)
    pairs = ds.manifest.planted["duplicates"]["near"]
    assert len(pairs) == 30
    prompts = _texts(ds, "prompts", "prompt_id")
    responses = _texts(ds, "responses", "response_id")
    for orig, copy in pairs:
        for a, b in [(prompts[orig], prompts[copy])] + [
            (responses[f"r{orig[1:]}-{k}"], responses[f"r{copy[1:]}-{k}"]) for k in range(2)
        ]:
            wa, wb = a.split(), b.split()
            assert len(wa) == len(wb)
            n_sentences = a.count(".") + a.count("?")
            assert sum(x != y for x, y in zip(wa, wb, strict=True)) == min(2, n_sentences)


def test_pairs_per_prompt_subsamples_pairs(check_model):
    ds = simulate(n_prompts=100, responses_per_prompt=5, pairs_per_prompt=3, seed=18)
    check_model(ds)
    j = ds.judgments
    keys = {(p, min(a, b), max(a, b)) for p, a, b in zip(j.column("prompt_id").to_pylist(), j.column("a").to_pylist(), j.column("b").to_pylist(), strict=True)}  # fmt: skip
    assert len(keys) == j.num_rows == 300


def test_text_signal_follows_quality():
    ds = simulate(n_prompts=3000, text_signal=0.6, seed=19)
    from prefkit.synth.text import BAD_ADJECTIVES, GOOD_ADJECTIVES

    good, bad = set(GOOD_ADJECTIVES), set(BAD_ADJECTIVES)
    r = ds.responses
    net = []
    for m in r.column("messages").to_pylist():
        words = [w.strip(".,?").lower() for w in m[0]["content"].split()]
        net.append((sum(w in good for w in words) - sum(w in bad for w in words)) / len(words))
    assert np.corrcoef(net, _np(r, "quality"))[0, 1] > 0.3
    assert abs(np.corrcoef(_np(r, "n_words"), _np(r, "quality"))[0, 1]) < 0.05
