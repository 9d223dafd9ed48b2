"""`leaderboard` and `prefkit arena`: the pieces fit together on simulated and real battles."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from scipy.stats import spearmanr

import prefkit
from prefkit.cli.main import cli
from prefkit.errors import PrefkitError
from prefkit.ratings.arena import leaderboard


@pytest.fixture(scope="module")
def sim() -> prefkit.Dataset:
    return prefkit.synth.simulate(kind="battles", n_models=6, n_prompts=6000, seed=3, tie_nu=0.3)


def _planted_skills(ds: prefkit.Dataset) -> dict[str, float]:
    return dict(ds.manifest.planted["models"]["skills"])


def test_leaderboard_recovers_planted_skill_order(sim: prefkit.Dataset) -> None:
    report = leaderboard(sim, rounds=200, seed=0)
    r = report.result
    planted = _planted_skills(sim)
    rho = spearmanr(r.rating, [planted[m] for m in r.models]).statistic
    assert rho > 0.9
    assert np.all(r.lower <= r.rating) and np.all(r.rating <= r.upper)
    assert report.battle_matrix.sum() == 2 * report.n_battles
    # the fitted win matrix is a probability matrix with p(i, j) + p(j, i) = 1
    p = report.predicted
    off = ~np.eye(len(p), dtype=bool)
    assert np.allclose((p + p.T)[off], 1.0, atol=1e-9)


def test_min_battles_and_anchor(sim: prefkit.Dataset) -> None:
    counts = leaderboard(sim, intervals="fisher").result.battles
    cut = int(np.sort(counts)[1]) + 1  # leaves out the two least-seen models
    report = leaderboard(sim, intervals="fisher", min_battles=cut)
    assert len(report.excluded) == 2 and len(report.result.models) == 4
    assert any("left out" in w for w in report.warnings)
    top = report.result.models[int(np.argmax(report.result.rating))]
    anchored = leaderboard(sim, intervals="fisher", min_battles=cut, anchor=(top, 1500.0)).result
    assert anchored.rating[anchored.models.index(top)] == pytest.approx(1500.0, abs=1e-6)


def test_bad_options_are_clear_errors(sim: prefkit.Dataset) -> None:
    with pytest.raises(PrefkitError, match="ties"):
        leaderboard(sim, ties="sometimes")
    with pytest.raises(PrefkitError, match="intervals"):
        leaderboard(sim, intervals="guess")
    with pytest.raises(PrefkitError, match="fewer than two models"):
        leaderboard(sim, min_battles=10**9)


def test_cli_arena_writes_html_csv_and_json(tmp_path: Path, sim: prefkit.Dataset) -> None:
    sim.save(tmp_path / "sim")
    html, csv = tmp_path / "arena.html", tmp_path / "board.csv"
    args = [
        "arena",
        str(tmp_path / "sim"),
        "--bootstrap",
        "50",
        "--html",
        str(html),
        "--csv",
        str(csv),
    ]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    page = html.read_text()
    assert page.count("data:image/png;base64,") == 3  # ratings plot + two heatmaps
    assert "<script" not in page and "http://" not in page and "https://" not in page  # offline
    assert len(csv.read_text().splitlines()) == 1 + 6
    result = CliRunner().invoke(
        cli, ["arena", str(tmp_path / "sim"), "--intervals", "sandwich", "--json"]
    )
    out = json.loads(result.stdout)
    assert out["method"] == "sandwich" and len(out["leaderboard"]) == 6
    assert len(out["observed_win_rate"]) == 6


def test_cli_bad_anchor_exits_2(tmp_path: Path, sim: prefkit.Dataset) -> None:
    sim.save(tmp_path / "sim")
    result = CliRunner().invoke(cli, ["arena", str(tmp_path / "sim"), "--anchor", "nonsense"])
    assert result.exit_code == 2 and "MODEL=VALUE" in result.stderr


@pytest.mark.shared_data
def test_vicuna_battles_with_style_control(shared_data: Path) -> None:
    ds = prefkit.load(shared_data / "vicuna80_human_battles")
    report = leaderboard(ds, intervals="sandwich", style=("length",))
    r = report.result
    assert report.n_battles == 7040 and report.n_ties == 804 and len(r.models) == 9
    # GPT-4 tops the human battles; Bard is last (QLoRA / PRD report the same order).
    order = [r.models[k] for k in r.order()]
    assert order[0] in ("gpt4", "claude") and order[-1] == "bard"
    s = report.style
    assert s is not None and s.features == ["length"]
    # The guanaco answers are not shipped: their 5,280 battles have no text.
    assert s.dropped_battles == 5280 and len(s.models) == 5
    assert s.coef[0] > 0 and s.coef_lower[0] > 0  # longer answers win more often


def test_cli_battle_file_fast_path_equals_the_full_load(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    names = ["m1", "m2", "m3", "m4"]
    rows = []
    for _ in range(400):
        a, b = rng.choice(4, 2, replace=False)
        rows.append(
            {
                "model_a": names[a],
                "model_b": names[b],
                "winner": str(rng.choice(["model_a", "model_b", "tie"])),
                "question_id": int(rng.integers(50)),
            }
        )
    path = tmp_path / "battles.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    fast = json.loads(
        CliRunner().invoke(cli, ["arena", str(path), "--intervals", "fisher", "--json"]).stdout
    )
    full = leaderboard(prefkit.load(path), intervals="fisher").result.to_dict()
    assert [(r["model"], round(r["rating"], 6)) for r in fast["leaderboard"]] == [
        (r["model"], round(r["rating"], 6)) for r in full["leaderboard"]
    ]
    # A bad record is still reported by line and field (the fast path steps aside).
    path.write_text(
        path.read_text()
        + json.dumps({"model_a": "m1", "model_b": "m2", "winner": "both", "question_id": 1})
        + "\n"
    )
    result = CliRunner().invoke(cli, ["arena", str(path), "--intervals", "fisher"])
    assert result.exit_code == 2 and "line 401" in result.stderr and "winner" in result.stderr


def test_style_control_on_a_numeric_responses_column(sim: prefkit.Dataset) -> None:
    # A meta column works as a style feature in the leaderboard as in StyleControl itself.
    import pyarrow as pa

    from prefkit.ratings.style import StyleControl

    noise = np.random.default_rng(0).normal(size=sim.responses.num_rows)
    ds = sim.with_tables(responses=sim.responses.append_column("meta_x", pa.array(noise)))
    s = leaderboard(ds, intervals="fisher", style=("meta_x",)).style
    direct = StyleControl(features=("meta_x",), missing="drop").fit(ds)
    assert s is not None and s.features == ["meta_x"]
    np.testing.assert_allclose(s.coef, direct.coef_)
    np.testing.assert_allclose(s.controlled, direct.ratings_)
