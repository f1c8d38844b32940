"""Statistics for the proxy-vs-robustness study: rank correlations, HRS, CRoZe's corruption groups,
greedy feature subsets and learning curves. Pure functions, DataFrames in and out.

Spec zero-cost-proxies-and-rf-study.md §4 (the seed paper's study on NAS-Bench-201) and
crose-and-arnas.md §A.7 (CRoZe's correlation protocol).
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from robustnas.errors import RobustnasError

# CRoZe's corr.py grouping (crose-and-arnas.md §A.7): brightness counted as digital,
# elastic_transform and pixelate left out.
CROZE_GROUPS: dict[str, tuple[str, ...]] = {
    "noise": ("gaussian_noise", "shot_noise", "impulse_noise"),
    "blur": ("defocus_blur", "glass_blur", "motion_blur", "zoom_blur"),
    "weather": ("snow", "frost", "fog"),
    "digital": ("contrast", "brightness", "jpeg_compression"),
}


def correlations(features: pd.DataFrame, targets: pd.DataFrame) -> pd.DataFrame:
    """Kendall tau-b and Spearman rho of every feature (proxy) with every target, signs kept.

    Rows are matched on the index (rows present in only one frame are dropped); each pair uses
    the rows where both values are finite (``n``). NaN where fewer than two rows remain or one
    side is constant. The seed paper's Fig. 1 plots |tau-b| (spec §4.4); CRoZe reports Spearman
    only (crose-and-arnas.md §A.7).
    Columns: ``proxy, target, kendall, spearman, n``, in feature-major order.
    """
    _check_numeric(features, "features")
    _check_numeric(targets, "targets")
    common = features.index.intersection(targets.index)
    if len(common) == 0:
        raise RobustnasError("features and targets share no index values; index both by architecture (nb201_index)")
    x_all = features.loc[common].to_numpy(dtype=float)
    y_all = targets.loc[common].to_numpy(dtype=float)
    rows = []
    for i, proxy in enumerate(features.columns):
        for j, target in enumerate(targets.columns):
            kendall, spearman, n = _pair(x_all[:, i], y_all[:, j])
            rows.append((proxy, target, kendall, spearman, n))
    return pd.DataFrame(rows, columns=["proxy", "target", "kendall", "spearman", "n"])


def correlation_matrix(table: pd.DataFrame, value: str = "kendall") -> pd.DataFrame:
    """``correlations`` output as a proxy x target matrix of ``value``, in first-seen order."""
    if value not in ("kendall", "spearman"):
        raise RobustnasError(f"unknown correlation {value!r}; choose 'kendall' or 'spearman'")
    wide = table.pivot(index="proxy", columns="target", values=value)
    return wide.loc[table["proxy"].unique(), table["target"].unique()]


def harmonic_robustness(clean: pd.Series, robust: pd.Series) -> pd.Series:
    """HRS = 2CR/(C+R) per architecture (CRoZe, crose-and-arnas.md §A.7), 0 where C+R == 0.

    The two series are matched on their index (rows in only one are dropped).
    """
    clean, robust = clean.align(robust, join="inner")
    total = clean + robust
    with np.errstate(divide="ignore", invalid="ignore"):
        hrs = (2 * clean * robust / total).where(total != 0, 0.0)
    return hrs.rename("hrs")


def greedy_subset(
    score_fn: Callable[[list[str]], float], candidates: Sequence[str], target_fraction: float = 0.95
) -> pd.DataFrame:
    """Forward selection until the subset scores >= ``target_fraction`` x the score of all candidates.

    Each step adds the candidate that maximises ``score_fn(chosen + [candidate])`` (ties: the
    earlier candidate). Columns ``step, feature, score``; ``attrs`` holds ``full_score`` (all
    candidates, computed first) and ``target_score`` = full - (1 - fraction) |full|, which is
    fraction x full for a positive full score and stays below a negative one (e.g. R² < 0).
    Stops at the target or when no candidate is left.
    """
    candidates = list(candidates)
    if not candidates or len(set(candidates)) != len(candidates):
        raise RobustnasError("greedy_subset needs a non-empty list of distinct candidate features")
    if not 0 < target_fraction <= 1:
        raise RobustnasError(f"target_fraction must be in (0, 1], got {target_fraction}")
    full = _score(score_fn, candidates)
    target = full - (1 - target_fraction) * abs(full)
    chosen: list[str] = []
    rows = []
    while len(chosen) < len(candidates):
        best, best_score = None, -math.inf
        for candidate in candidates:
            if candidate not in chosen:
                value = _score(score_fn, [*chosen, candidate])
                if value > best_score:
                    best, best_score = candidate, value
        chosen.append(best)
        rows.append((len(chosen), best, best_score))
        if best_score >= target:
            break
    steps = pd.DataFrame(rows, columns=["step", "feature", "score"])
    steps.attrs.update(full_score=full, target_score=target)
    return steps


def training_sizes(n_train: int, start: int = 50) -> list[int]:
    """Doubling training-set sizes ``start, 2 start, 4 start, ...`` below ``n_train``, then ``n_train``."""
    if start < 1 or n_train < start:
        raise RobustnasError(f"need 1 <= start <= n_train, got start={start}, n_train={n_train}")
    sizes = []
    n = start
    while n < n_train:
        sizes.append(n)
        n *= 2
    return [*sizes, n_train]


def learning_curve(fit_score_fn: Callable[[int, int], float], sizes: Sequence[int], repeats: int = 1) -> pd.DataFrame:
    """Mean and sd of the score of a model trained on ``n`` examples, for each ``n`` in ``sizes``
    (columns ``n, score, sd``).

    ``fit_score_fn(n, seed)`` draws the subsample of size ``n`` with ``seed``, fits and scores
    (e.g. test R² on a fixed test split). Every size but the last is drawn ``repeats`` times
    (seeds 0..repeats-1); the last is the whole training set, fitted once (seed 0, sd 0).
    """
    sizes = [int(n) for n in sizes]
    if not sizes or min(sizes) < 1:
        raise RobustnasError(f"sizes must be a non-empty list of positive integers, got {sizes}")
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise RobustnasError(f"repeats must be a positive integer, got {repeats!r}")
    rows = []
    for i, n in enumerate(sizes):
        scores = [float(fit_score_fn(n, seed)) for seed in range(repeats if i < len(sizes) - 1 else 1)]
        rows.append((n, float(np.mean(scores)), float(np.std(scores, ddof=1)) if len(scores) > 1 else 0.0))
    return pd.DataFrame(rows, columns=["n", "score", "sd"])


def _pair(x: np.ndarray, y: np.ndarray) -> tuple[float, float, int]:
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    n = int(keep.sum())
    if n < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan, math.nan, n
    return float(stats.kendalltau(x, y).statistic), float(stats.spearmanr(x, y).statistic), n


def _score(score_fn: Callable[[list[str]], float], subset: list[str]) -> float:
    value = float(score_fn(subset))
    if not math.isfinite(value):
        raise RobustnasError(f"score_fn returned {value} for {subset}; it must return a finite number")
    return value


def _check_numeric(frame: pd.DataFrame, name: str) -> None:
    if frame.empty:
        raise RobustnasError(f"{name} is empty; pass a DataFrame with one row per architecture")
    bad = [str(c) for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
    if bad:
        raise RobustnasError(f"{name} has non-numeric columns {', '.join(bad)}; drop them first")
    if not frame.index.is_unique:
        raise RobustnasError(f"{name} has duplicate index values; use one row per architecture")
