"""robustnas.report._stats and robustnas.report._figures on small hand-checkable inputs."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from robustnas.errors import RobustnasError
from robustnas.report import _figures as figures
from robustnas.report._stats import (
    correlation_matrix,
    correlations,
    greedy_subset,
    harmonic_robustness,
    learning_curve,
    training_sizes,
)


def _one(table: pd.DataFrame, proxy: str, target: str) -> pd.Series:
    return table[(table.proxy == proxy) & (table.target == target)].iloc[0]


# ---- correlations -------------------------------------------------------------------------------
def test_correlations_monotone_reversed_and_ties():
    features = pd.DataFrame({"up": [1.0, 2, 3, 4], "tied": [1.0, 1, 2, 3]})
    targets = pd.DataFrame({"same": [10.0, 20, 30, 40], "rev": [4.0, 3, 2, 1], "t": [1.0, 2, 2, 1]})
    table = correlations(features, targets)
    assert list(table.columns) == ["proxy", "target", "kendall", "spearman", "n"]
    assert list(zip(table.proxy, table.target)) == [
        ("up", "same"), ("up", "rev"), ("up", "t"), ("tied", "same"), ("tied", "rev"), ("tied", "t")
    ]
    assert _one(table, "up", "same")[["kendall", "spearman"]].tolist() == [1.0, 1.0]
    assert _one(table, "up", "rev")[["kendall", "spearman"]].tolist() == [-1.0, -1.0]
    # x = 1,1,2,3 vs y = 1,2,2,1 over the 6 pairs: (1,2) tied in x; (1,3) concordant; (1,4) and
    # (2,3) tied in y; (2,4), (3,4) discordant. tau-b = (C - D) / sqrt((6 - 1)(6 - 2)) = -1/sqrt(20).
    # Ranks x 1.5,1.5,3,4 and y 1.5,3.5,3.5,1.5: rho = -1 / sqrt(4.5 * 4) = -1/sqrt(18).
    tied = _one(table, "tied", "t")
    assert tied.kendall == pytest.approx(-1 / math.sqrt(20), abs=1e-12)
    assert tied.spearman == pytest.approx(-1 / math.sqrt(18), abs=1e-12)
    # x = 1,2,3,4 vs y = 1,2,2,1: C = 2 ((1,2),(1,3)), D = 2 ((2,4),(3,4)) -> 0.
    assert _one(table, "up", "t").kendall == pytest.approx(0.0, abs=1e-12)


def test_correlations_tau_b_with_ties_in_one_side():
    # x = 1,1,2,2 vs y = 1,2,3,4: C = 4, D = 0, 2 pairs tied in x -> tau-b = 4 / sqrt(4 * 6).
    # Ranks 1.5,1.5,3.5,3.5 vs 1..4: rho = 4 / sqrt(4 * 5).
    table = correlations(pd.DataFrame({"p": [1.0, 1, 2, 2]}), pd.DataFrame({"a": [1.0, 2, 3, 4]}))
    assert table.kendall[0] == pytest.approx(2 / math.sqrt(6), abs=1e-12)
    assert table.spearman[0] == pytest.approx(2 / math.sqrt(5), abs=1e-12)


def test_correlations_align_on_index_and_drop_non_finite():
    features = pd.DataFrame({"p": [1.0, 2, 3, 4, 5, 99]}, index=[0, 1, 2, 3, 4, 9])
    # Targets in another order, one row only here (7), one NaN (row 2), one inf (row 3).
    targets = pd.DataFrame({"a": [50.0, 40, np.inf, np.nan, 10, -5]}, index=[4, 3, 2, 1, 0, 7])
    row = correlations(features, targets).iloc[0]
    # Rows 0, 3, 4 remain: p = 1, 4, 5 and a = 10, 40, 50 -> perfectly monotone.
    assert (row.n, row.kendall, row.spearman) == (3, 1.0, 1.0)


def test_correlations_nan_when_constant_or_too_few_rows():
    features = pd.DataFrame({"const": [1.0, 1, 1], "p": [1.0, np.nan, np.nan]})
    table = correlations(features, pd.DataFrame({"a": [1.0, 2, 3]}))
    assert math.isnan(table.kendall[0]) and math.isnan(table.spearman[0]) and table.n[0] == 3
    assert math.isnan(table.kendall[1]) and table.n[1] == 1


def test_correlations_bad_input():
    good = pd.DataFrame({"a": [1.0, 2.0]})
    with pytest.raises(RobustnasError, match="share no index"):
        correlations(good, good.set_axis([5, 6]))
    with pytest.raises(RobustnasError, match="non-numeric columns name"):
        correlations(good.assign(name=["x", "y"]), good)
    with pytest.raises(RobustnasError, match="duplicate index"):
        correlations(good.set_axis([0, 0]), good)
    with pytest.raises(RobustnasError, match="targets is empty"):
        correlations(good, good.iloc[:0])


def test_correlation_matrix_keeps_order():
    features = pd.DataFrame({"z": [1.0, 2, 3], "a": [3.0, 2, 1]})
    targets = pd.DataFrame({"clean": [1.0, 2, 3], "b": [1.0, 3, 2]})
    matrix = correlation_matrix(correlations(features, targets))
    assert list(matrix.index) == ["z", "a"] and list(matrix.columns) == ["clean", "b"]
    assert matrix.loc["a", "clean"] == -1.0
    assert correlation_matrix(correlations(features, targets), "spearman").loc["z", "b"] == pytest.approx(0.5)
    with pytest.raises(RobustnasError, match="unknown correlation"):
        correlation_matrix(correlations(features, targets), "pearson")


# ---- HRS ----------------------------------------------------------------------
def test_harmonic_robustness():
    clean = pd.Series([0.9, 0.5, 0.0, 0.8], index=[0, 1, 2, 3])
    robust = pd.Series([0.1, 0.5, 0.0, 0.4], index=[0, 1, 2, 9])
    hrs = harmonic_robustness(clean, robust)
    assert list(hrs.index) == [0, 1, 2] and hrs.name == "hrs"
    assert hrs.tolist() == pytest.approx([2 * 0.9 * 0.1 / 1.0, 0.5, 0.0], abs=1e-15)


# ---- greedy subsets and learning curves -------------------------------------------------------
WEIGHTS = {"a": 0.5, "b": 0.25, "c": 0.25, "d": 0.125}


def test_greedy_subset_additive_score():
    calls = []

    def score(subset: list[str]) -> float:
        calls.append(list(subset))
        return sum(WEIGHTS[f] for f in subset)

    steps = greedy_subset(score, ["a", "b", "c", "d"], target_fraction=0.8)
    # all: 1.125, target 0.9: a (0.5), b ties c -> b first (0.75), c (1.0 >= 0.9).
    assert steps.to_dict("list") == {"step": [1, 2, 3], "feature": ["a", "b", "c"], "score": [0.5, 0.75, 1.0]}
    assert steps.attrs == {"full_score": 1.125, "target_score": pytest.approx(0.9, abs=1e-15)}
    assert calls[0] == ["a", "b", "c", "d"]
    assert calls[1:5] == [["a"], ["b"], ["c"], ["d"]] and calls[5:8] == [["a", "b"], ["a", "c"], ["a", "d"]]


def test_greedy_subset_tie_break_follows_candidate_order_and_cap():
    def capped(subset: list[str]) -> float:
        return min(sum(WEIGHTS[f] for f in subset), 0.75)

    steps = greedy_subset(capped, ["d", "c", "a", "b"])
    # all: 0.75, target 0.7125: a (0.5), then c before b in candidate order (0.75).
    assert steps.feature.tolist() == ["a", "c"] and steps.score.tolist() == [0.5, 0.75]
    # fraction 1 with a score that only counts features: all are added, each tie in candidate order.
    every = greedy_subset(len, ["z", "x", "y"], target_fraction=1.0)
    assert every.feature.tolist() == ["z", "x", "y"] and every.score.tolist() == [1, 2, 3]
    # below-target subsets until the last candidate; a negative full score gets a target below it.
    assert greedy_subset(lambda s: 0.0 if len(s) < 2 else 1.0, ["x", "y"]).feature.tolist() == ["x", "y"]
    negative = greedy_subset(lambda s: -1.0, ["x", "y"], target_fraction=0.9)
    assert negative.feature.tolist() == ["x"] and negative.attrs["target_score"] == pytest.approx(-1.1)


def test_greedy_subset_bad_input():
    with pytest.raises(RobustnasError, match="distinct"):
        greedy_subset(len, ["a", "a"])
    with pytest.raises(RobustnasError, match="target_fraction"):
        greedy_subset(len, ["a"], target_fraction=1.5)
    with pytest.raises(RobustnasError, match="finite"):
        greedy_subset(lambda s: float("nan"), ["a"])


def test_training_sizes_and_learning_curve():
    assert training_sizes(400) == [50, 100, 200, 400]
    assert training_sizes(5172) == [50, 100, 200, 400, 800, 1600, 3200, 5172]
    assert training_sizes(10, start=3) == [3, 6, 10]
    with pytest.raises(RobustnasError, match="start <= n_train"):
        training_sizes(40)
    calls = []

    def fit_score(n: int, seed: int) -> float:
        calls.append((n, seed))
        return 1 - 1 / n + seed / 10

    curve = learning_curve(fit_score, [1, 2, 4], repeats=3)
    # sizes 1 and 2: seeds 0, 1, 2 -> mean +0.1, sd 0.1; the last size (all data) once with seed 0.
    assert calls == [(1, 0), (1, 1), (1, 2), (2, 0), (2, 1), (2, 2), (4, 0)]
    assert curve["n"].tolist() == [1, 2, 4]
    assert curve["score"].tolist() == pytest.approx([0.1, 0.6, 0.75], abs=1e-15)
    assert curve["sd"].tolist() == pytest.approx([0.1, 0.1, 0.0], abs=1e-15)
    assert learning_curve(lambda n, seed: 1 - 1 / n, [1, 2])["sd"].tolist() == [0.0, 0.0]
    with pytest.raises(RobustnasError, match="positive integers"):
        learning_curve(lambda n, seed: 0.0, [0, 10])
    with pytest.raises(RobustnasError, match="repeats must be a positive integer"):
        learning_curve(lambda n, seed: 0.0, [1], repeats=0)


# ---- figures ----------------------------------------------------------------------------------
def _png_size(path) -> tuple[int, int]:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as image:
        return image.size


def test_family_labels():
    assert [figures.family_label(f) for f in ("jacov", "snip", "flops", "zen", "hessian_eig", "croze", "x")] == [
        "jacov ★", "snip ◆", "flops ■", "zen ▼", "hessian_eig ●", "croze ▲", "x"
    ]


def test_correlation_heatmap(tmp_path):
    table = pd.DataFrame([[0.5, -0.25], [np.nan, 1.0]], index=["jacov", "zen"], columns=["clean", "pgd@1.0"])
    out = figures.correlation_heatmap(table, tmp_path / "sub" / "heat.png", "tau")
    assert out == tmp_path / "sub" / "heat.png" and min(_png_size(out)) > 300
    big = pd.DataFrame(np.linspace(-1, 1, 13 * 109).reshape(13, 109))
    width, _ = _png_size(figures.correlation_heatmap(big, tmp_path / "big.png", "signed", absolute=False))
    assert width > 2000  # the figure widens with the number of targets
    with pytest.raises(RobustnasError, match="outside"):
        figures.correlation_heatmap(table * 2, tmp_path / "x.png", "bad")


def test_importance_bars_learning_curves_r2_bars(tmp_path):
    importances = pd.DataFrame(
        {"multi": [0.5, 0.2, 0.3], "clean": [0.4, 0.4, 0.2], "pgd@1.0": [0.1, 0.6, 0.3]}, index=["jacov", "snip", "zen"]
    )
    assert min(_png_size(figures.importance_bars(importances, tmp_path / "imp.png", "importance"))) > 300
    plain = figures.importance_bars(importances, tmp_path / "plain.png", "importance", decorate=False)
    decorated = figures.importance_bars(importances, tmp_path / "decorated.png", "importance")
    assert _png_size(plain) == _png_size(decorated) and plain.read_bytes() != decorated.read_bytes()  # symbols, key
    curves = pd.DataFrame({"n": [50, 100, 200] * 2, "score": [0.1, 0.3, 0.4, 0.0, 0.1, 0.15],
                           "series": ["clean"] * 3 + ["pgd@1.0"] * 3})
    assert min(_png_size(figures.learning_curves(curves, tmp_path / "lc.png", "curves", ylabel="R²"))) > 300
    banded = figures.learning_curves(curves.assign(sd=0.05), tmp_path / "band.png", "curves")
    assert banded.read_bytes() != (tmp_path / "lc.png").read_bytes()  # the sd band is drawn
    r2 = pd.DataFrame({"paper": [0.97, 0.65], "ours": [0.95, np.nan]}, index=["Clean", "PGD"])
    assert min(_png_size(figures.r2_bars(r2, tmp_path / "r2.png", "R²"))) > 300


@pytest.mark.parametrize("plot", [figures.correlation_heatmap, figures.importance_bars, figures.r2_bars,
                                  figures.learning_curves])
def test_figures_refuse_empty_tables(tmp_path, plot):
    with pytest.raises(RobustnasError):
        plot(pd.DataFrame(), tmp_path / "empty.png", "empty")
    assert not (tmp_path / "empty.png").exists()
