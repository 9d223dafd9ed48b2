"""Style control: counters, agreement with scikit-learn, planted length bias."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest
from sklearn.linear_model import LogisticRegression

import prefkit
from prefkit.errors import PrefkitError
from prefkit.ratings.style import (
    StyleControl,
    count_style,
    normalised_difference,
    strip_code_blocks,
    style_counts,
)
from prefkit.synth import simulate

MARKDOWN = """# Title
Some **bold** text and __more bold__.

## Section
- one
* two
  + nested
1. first
2. second

```python
# not a header
- not a list
**not bold**
```
After the code, a [1] citation and https://example.org/x.
"""


# --- counters ---------------------------------------------------------------------------------
def test_markdown_counts_outside_code_fences():
    counts = style_counts([MARKDOWN], ["header", "list", "bold", "citation"])
    assert {k: v.tolist() for k, v in counts.items()} == {
        "header": [2.0],
        "list": [5.0],
        "bold": [2.0],
        "citation": [2.0],
    }
    fenced = "```\n# h\n- l\n**b**\n[2] http://a.b\n```"
    for cov in ("header", "list", "bold", "citation"):
        assert count_style([fenced], cov).tolist() == [0.0]


def test_code_fences_removed_whole_and_unclosed_to_end():
    assert strip_code_blocks(["a\n```\n# x\n```\nb", "c ```# y"]).to_pylist() == ["a\n\nb", "c "]
    # two blocks: the prose between them still counts
    text = "```\n# in\n```\n# out\n```\n# in again\n```"
    assert count_style([text], "header").tolist() == [1.0]
    assert count_style(["```\n# in\n# never closed"], "header").tolist() == [0.0]


def test_counters_small_cases():
    assert count_style(["#no space", "####### seven", "###### six"], "header").tolist() == [
        0.0,
        0.0,
        1.0,
    ]
    assert count_style(["-not a list", "10. ten", "a - b"], "list").tolist() == [0.0, 1.0, 0.0]
    assert count_style(["**a** **b**", "** **", "**a\nb**"], "bold").tolist() == [2.0, 1.0, 0.0]
    assert count_style(["two  words\n", "", None], "length").tolist()[:2] == [2.0, 0.0]
    assert math.isnan(count_style([None], "length")[0])
    assert count_style(["héllo"], "length", length_unit="chars").tolist() == [5.0]


def test_normalised_difference():
    a, b = np.array([3.0, 0.0, 1.0]), np.array([1.0, 0.0, 0.0])
    assert normalised_difference(a, b).tolist() == [0.5, 0.0, 1.0]


# --- fits -------------------------------------------------------------------------------------
def _texts(ds):
    """Response id -> text and -> word count, computed here with plain Python."""
    resp = ds.responses.to_pydict()
    text = {
        rid: "\n\n".join(m["content"] for m in msgs)
        for rid, msgs in zip(resp["response_id"], resp["messages"], strict=True)
    }
    return text, {rid: len(t.split()) for rid, t in text.items()}


@pytest.fixture(scope="module")
def biased():
    ds = simulate(kind="battles", n_prompts=20_000, n_models=8, length_bias=0.5, tie_nu=0.3, seed=3)
    rng = np.random.default_rng(0)
    polite = rng.poisson(2.0, ds.num_rows("responses")).astype(float)
    return ds.with_tables(responses=ds.responses.append_column("polite", pa.array(polite)))


def test_matches_sklearn_logistic_regression(biased):
    fit = StyleControl(features=("length", "polite")).fit(biased)
    battles = biased.to_battles(ties="keep").to_pydict()
    _, words = _texts(biased)
    polite = dict(
        zip(
            biased.responses.column("response_id").to_pylist(),
            biased.responses.column("polite").to_pylist(),
            strict=True,
        )
    )
    columns = []
    for per in (words, polite):
        xa = np.array([per[r] for r in battles["a"]], float)
        xb = np.array([per[r] for r in battles["b"]], float)
        d = np.where(xa + xb == 0, 0.0, (xa - xb) / np.where(xa + xb == 0, 1, xa + xb))
        columns.append((d - d.mean()) / d.std())
    models = sorted(set(battles["model_a"]) | set(battles["model_b"]))
    idx = {m: i for i, m in enumerate(models)}
    n = len(battles["winner"])
    x = np.zeros((n, len(models) + 2))
    x[np.arange(n), [idx[m] for m in battles["model_a"]]] += 1
    x[np.arange(n), [idx[m] for m in battles["model_b"]]] -= 1
    x[:, len(models) :] = np.column_stack(columns)
    winner = np.array(battles["winner"])
    tie = np.isin(winner, ["tie", "tie (bothbad)"])
    # the Chatbot Arena recipe: a tie is a win and a loss at weight 1/2 each
    xx = np.vstack([x, x[tie]])
    yy = np.concatenate([(winner == "model_a") | tie, np.zeros(tie.sum(), bool)]).astype(int)
    ww = np.concatenate([np.where(tie, 0.5, 1.0), np.full(tie.sum(), 0.5)])
    # no penalty (C=inf is penalty=None since scikit-learn 1.8)
    lr = LogisticRegression(C=np.inf, fit_intercept=False, tol=1e-12, max_iter=10_000)
    lr.fit(xx, yy, sample_weight=ww)
    coef = lr.coef_[0]
    assert fit.items_ == models and fit.feature_names_ == ["length", "polite"]
    assert np.max(np.abs(fit.coef_ - coef[len(models) :])) < 1e-3  # measured 2e-9
    theta = (fit.ratings_ - 1000) * math.log(10) / 400
    sk_theta = coef[: len(models)] - coef[: len(models)].mean()
    assert np.max(np.abs(theta - sk_theta)) < 1e-3  # measured 3e-9
    assert fit.converged_ and fit.n_battles_ == n


def test_planted_length_bias_is_found_and_controlled(biased):
    fit = StyleControl(features=("length", "markdown")).fit(biased)
    length = fit.feature_names_.index("length")
    assert fit.coef_[length] > 0 and fit.coef_ci_[length, 0] > 0
    assert fit.coef_pvalue_[length] < 1e-6
    # synth texts have no markdown: constant covariates are reported, not fitted
    assert fit.constant_features_ == ["header", "list", "bold"]
    assert np.isnan(fit.coef_[1:]).all()
    skills = biased.manifest.planted["models"]["skills"]
    truth = np.array([skills[m] for m in fit.items_])
    truth -= truth.mean()

    def rmse(r):
        return float(np.sqrt(np.mean((r - r.mean() - truth) ** 2)))

    # leaving length out attenuates the ratings (logistic non-collapsibility)
    assert rmse(fit.ratings_) < rmse(fit.ratings_uncontrolled_)
    assert np.all(fit.ratings_ci_[:, 0] < fit.ratings_) and fit.ratings_ci_.shape == (8, 2)


def test_no_length_bias_no_coefficient():
    ds = simulate(kind="battles", n_prompts=20_000, n_models=8, length_bias=0.0, seed=4)
    fit = StyleControl(features=("length",)).fit(ds)
    assert abs(fit.coef_[0]) < 0.05
    assert fit.coef_ci_[0, 0] < 0 < fit.coef_ci_[0, 1]
    # without ties the sandwich and model-based errors agree closely
    fisher = StyleControl(features=("length",), se="fisher").fit(ds)
    assert fisher.coef_se_[0] == pytest.approx(fit.coef_se_[0], rel=0.1)
    assert fisher.coef_[0] == fit.coef_[0]


def test_table_input_matches_dataset(biased):
    small = biased.with_tables(judgments=biased.judgments.slice(0, 3000))
    by_dataset = StyleControl(features=("length",), ties="drop").fit(small)
    text, _ = _texts(small)
    battles = small.to_battles(ties="keep")
    table = battles.append_column(
        "text_a", pa.array([text[r] for r in battles.column("a").to_pylist()])
    ).append_column("text_b", pa.array([text[r] for r in battles.column("b").to_pylist()]))
    by_table = StyleControl(features=("length",), ties="drop").fit(table)
    np.testing.assert_allclose(by_table.ratings_, by_dataset.ratings_)
    np.testing.assert_allclose(by_table.coef_, by_dataset.coef_)
    counts = table.append_column(
        "length_a", pa.array(count_style(table.column("text_a"), "length"))
    ).append_column("length_b", pa.array(count_style(table.column("text_b"), "length")))
    by_counts = StyleControl(features=("length",), ties="drop").fit(
        counts.drop_columns(["text_a", "text_b"])
    )
    np.testing.assert_allclose(by_counts.coef_, by_dataset.coef_)


def test_bad_options():
    with pytest.raises(PrefkitError, match="ties="):
        StyleControl(ties="davidson").fit({})
    with pytest.raises(PrefkitError, match="features"):
        StyleControl(features="length").fit({})


@pytest.mark.shared_data
def test_vicuna_texts_missing_for_some_models(shared_data):
    ds = prefkit.load(shared_data / "vicuna80_human_battles")
    with pytest.raises(PrefkitError, match="missing='drop'"):
        StyleControl().fit(ds)
    fit = StyleControl(missing="drop").fit(ds)
    assert fit.n_dropped_ + fit.n_battles_ == 7040
    assert len(fit.items_) == 5  # texts exist for 5 of the 9 models
    assert fit.constant_features_ == ["header"]
    assert fit.coef_[0] > 0 and fit.coef_pvalue_[0] < 1e-6  # longer answers win
