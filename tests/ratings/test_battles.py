"""BattleCounts: aggregation to unique (a, b, outcome) rows, matrices and the graph."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

import prefkit
from prefkit.errors import PrefkitError
from prefkit.ratings import BattleCounts

WINNERS = np.array(["model_a", "model_b", "tie", "tie (bothbad)"])


def _random(n: int, m: int = 5, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    names = np.array([f"m{k}" for k in range(m)])
    return (
        names[rng.integers(0, m, n)],
        names[rng.integers(0, m, n)],
        WINNERS[rng.integers(0, 4, n)],
    )


def test_counts_match_a_python_loop():
    a, b, w = _random(3000)
    c = BattleCounts.from_arrays(a, b, w)
    self_play = a == b
    assert c.n_self_battles == int(self_play.sum())
    assert c.n_battles == len(a) - c.n_self_battles
    assert c.models == tuple(sorted(set(a) | set(b)))
    # Unique rows: no (a, b, outcome, bothbad) key twice.
    keys = set(zip(c.a.tolist(), c.b.tolist(), c.outcome.tolist(), c.bothbad.tolist(), strict=True))
    assert len(keys) == len(c.count)
    idx = {name: k for k, name in enumerate(c.models)}
    wins = np.zeros((5, 5), int)
    ties = np.zeros((5, 5), int)
    for x, y, z in zip(a, b, w, strict=True):
        if x == y:
            continue
        i, j = idx[x], idx[y]
        if z == "model_a":
            wins[i, j] += 1
        elif z == "model_b":
            wins[j, i] += 1
        else:
            ties[i, j] += 1
            ties[j, i] += 1
    np.testing.assert_array_equal(c.wins(), wins)
    np.testing.assert_array_equal(c.ties(), ties)
    np.testing.assert_array_equal(c.battle_matrix(), wins + wins.T + ties)
    np.testing.assert_array_equal(c.battles_per_model(), (wins + wins.T + ties).sum(axis=1))
    assert c.n_ties == ties.sum() // 2
    assert c.n_bothbad == int(((w == "tie (bothbad)") & ~self_play).sum())


def test_pairs_collapse_the_side_played():
    c = BattleCounts.from_arrays(
        ["x", "y", "y", "x", "y"],
        ["y", "x", "x", "y", "x"],
        ["model_a", "model_a", "tie", "model_b", "model_b"],
    )
    i, j, cells = c.pairs()
    assert (i.tolist(), j.tolist()) == ([0], [1])
    # x beat y: row 1 (x as a) and row 5 (x as b) -> 2; y beat x: rows 2 and 4 -> 2; 1 tie.
    assert cells.tolist() == [[2, 2, 1]]


def test_arrow_numpy_and_table_inputs_agree():
    a, b, w = _random(500, seed=1)
    c1 = BattleCounts.from_arrays(a, b, w)
    c2 = BattleCounts.from_arrays(pa.array(a), pa.chunked_array([b[:100], b[100:]]), list(w))
    c3 = BattleCounts.from_battles(pa.table({"model_a": a, "model_b": b, "winner": w}))
    for c in (c2, c3):
        assert c.models == c1.models
        np.testing.assert_array_equal(c.count, c1.count)
        np.testing.assert_array_equal(c.outcome, c1.outcome)


def test_to_table_round_trips_through_repeated_rows():
    a, b, w = _random(400, seed=2)
    c = BattleCounts.from_arrays(a, b, w)
    t = c.to_table()
    rep = np.repeat(np.arange(t.num_rows), t["count"].to_numpy())
    again = BattleCounts.from_battles(t.take(pa.array(rep)))
    np.testing.assert_array_equal(again.count, c.count)
    np.testing.assert_array_equal(again.bothbad, c.bothbad)


def test_bad_rows_are_named():
    with pytest.raises(PrefkitError, match=r"row 2, field 'winner': 'draw'"):
        BattleCounts.from_arrays(["a", "b", "a"], ["b", "a", "b"], ["model_a", "tie", "draw"])
    with pytest.raises(PrefkitError, match=r"row 1, field 'model_b': missing"):
        BattleCounts.from_arrays(["a", "b"], ["b", None], ["model_a", "tie"])
    with pytest.raises(PrefkitError, match="have 2, 2 and 1 rows"):
        BattleCounts.from_arrays(["a", "b"], ["b", "a"], ["model_a"])
    with pytest.raises(PrefkitError, match="cannot read battles"):
        BattleCounts.coerce([1, 2, 3])


def test_components_and_selection():
    c = BattleCounts.from_arrays(
        ["a", "b", "c", "e", "f"],
        ["b", "c", "a", "d", "d"],
        ["model_a", "tie", "model_b", "model_a", "tie"],
    )
    assert c.components() == [["a", "b", "c"], ["d", "e", "f"]]
    assert not c.is_connected
    sub = c.select(["a", "b", "c"])
    assert sub.models == ("a", "b", "c") and sub.is_connected and sub.n_battles == 3
    assert c.min_battles(2).models == ("a", "b", "c", "d")
    with pytest.raises(PrefkitError, match="unknown model 'z'"):
        c.index("z")


def test_win_rate():
    c = BattleCounts.from_arrays(
        ["a", "a", "a", "b"], ["b", "b", "b", "c"], ["model_a", "tie", "model_b", "tie"]
    )
    half = c.win_rate("half")
    assert half[0, 1] == pytest.approx(0.5) and half[1, 2] == pytest.approx(0.5)
    assert np.isnan(half[0, 2])
    drop = c.win_rate("drop")
    assert drop[0, 1] == pytest.approx(0.5) and np.isnan(drop[1, 2])


@pytest.mark.shared_data
def test_vicuna80_counts(shared_data):
    ds = prefkit.load(shared_data / "vicuna80_human_battles")
    c = BattleCounts.from_dataset(ds)
    assert c.n_battles == 7040 and c.n_ties == 804 and c.n_models == 9
    assert c.is_connected
    assert c.battles_per_model().sum() == 2 * 7040
    battles = ds.to_battles(ties="keep")
    assert BattleCounts.coerce(battles).count.sum() == 7040
