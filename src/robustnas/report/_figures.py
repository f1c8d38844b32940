"""Figures of the proxy-vs-robustness study, one PNG per call (spec zero-cost-proxies-and-rf-study.md §4).

Each function takes a DataFrame, writes a PNG at ``path`` (parent folders created) and returns the
path. Rendering uses matplotlib's Agg backend, so no display is needed.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib import ticker  # noqa: E402

from robustnas.errors import RobustnasError  # noqa: E402

DPI = 150
MAX_ANNOTATED_CELLS = 600  # heatmaps with more cells (or > 40 columns) get no numbers in the cells
MAX_LABELLED_BARS = 60
# Proxy families of the seed paper's importance plot (spec §4.3) plus robustnas's extra proxies.
PROXY_FAMILIES: dict[str, str] = {
    **dict.fromkeys(("epe_nas", "grad_norm", "jacob_fro", "nwot", "jacov"), "Jacobian"),
    **dict.fromkeys(("grasp", "fisher", "snip", "synflow"), "pruning"),
    **dict.fromkeys(("plain", "l2_norm", "params", "flops"), "baseline"),
    "zen": "piecewise-linear",
    **dict.fromkeys(("hessian", "hessian_eig"), "Hessian"),
    "croze": "robustness",
}
FAMILY_SYMBOLS: dict[str, str] = {
    "Jacobian": "★", "pruning": "◆", "baseline": "■", "piecewise-linear": "▼", "Hessian": "●",
    "robustness": "▲",
}


def family_label(feature: str) -> str:
    """``feature`` followed by its family symbol (e.g. ``jacov ★``, ``suite_jacov ★``); unknown
    features unchanged."""
    family = PROXY_FAMILIES.get(feature.removeprefix("suite_"))
    return f"{feature} {FAMILY_SYMBOLS[family]}" if family else feature


def correlation_heatmap(table: pd.DataFrame, path: str | Path, title: str, absolute: bool = True) -> Path:
    """Proxies (rows) x targets (columns) heatmap of correlations in [-1, 1].

    ``absolute``: plot |value| on a sequential 0..1 scale (the seed paper's Fig. 1 shows |Kendall
    tau|, spec §4.4); otherwise signed values on a diverging scale centred at 0. Cells carry the
    value (2 decimals) up to ``MAX_ANNOTATED_CELLS`` cells and 40 columns; NaN cells are grey.
    """
    values = _numeric(table, "correlation table")
    finite = values[np.isfinite(values)]
    if finite.size and np.abs(finite).max() > 1:
        raise RobustnasError("correlation table has values outside [-1, 1]; pass correlation coefficients")
    if absolute:
        values, cmap, vmin, label = np.abs(values), "viridis", 0.0, "|correlation|"
    else:
        cmap, vmin, label = "RdBu_r", -1.0, "correlation"
    rows, cols = values.shape
    annotate = rows * cols <= MAX_ANNOTATED_CELLS and cols <= 40
    cell_w, cell_h = (0.55, 0.4) if annotate else (0.22, 0.3)
    fig, ax = plt.subplots(figsize=(max(4.0, 2.8 + cols * cell_w), max(3.0, 2.0 + rows * cell_h)))
    colormap = plt.get_cmap(cmap).with_extremes(bad="lightgrey")
    image = ax.imshow(np.ma.masked_invalid(values), cmap=colormap, vmin=vmin, vmax=1.0, aspect="auto")
    fig.colorbar(image, ax=ax, label=label, fraction=0.04, pad=0.02)
    ax.set_xticks(range(cols), [str(c) for c in table.columns], rotation=90, fontsize=8)
    ax.set_yticks(range(rows), [str(r) for r in table.index], fontsize=8)
    ax.set_xlabel(str(table.columns.name or "target"))
    ax.set_ylabel(str(table.index.name or "proxy"))
    ax.set_title(title)
    if annotate:
        for (i, j), value in np.ndenumerate(values):
            if np.isfinite(value):
                ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=6,
                        color=_text_colour(image.cmap(image.norm(value))))
    return _save(fig, path)


def importance_bars(importances: pd.DataFrame, path: str | Path, title: str, decorate: bool = True) -> Path:
    """Grouped horizontal bars of feature importances, one bar series per column.

    Features are sorted ascending by the first column (largest at the top), as in the seed
    paper's importance plots (spec §4.3: multi-objective, target 1, target 2). ``decorate`` adds
    the family symbols of ``FAMILY_SYMBOLS`` to the feature labels and a key below the plot.
    """
    _numeric(importances, "importance table")
    ordered = importances.sort_values(importances.columns[0], kind="stable")
    features, series = [str(f) for f in ordered.index], list(ordered.columns)
    height = 0.8 / len(series)
    fig, ax = plt.subplots(figsize=(7.0, max(3.0, 1.5 + len(features) * (0.15 + 0.12 * len(series)))))
    positions = np.arange(len(features))
    for k, name in enumerate(series):
        offset = (k - (len(series) - 1) / 2) * height
        ax.barh(positions + offset, ordered[name].to_numpy(float), height=height, label=str(name))
    ax.set_yticks(positions, [family_label(f) if decorate else f for f in features])
    ax.set_xlabel("importance")
    ax.set_title(title)
    ax.legend(loc="best", fontsize=8)
    if decorate:
        present = dict.fromkeys(PROXY_FAMILIES[f] for f in (f.removeprefix("suite_") for f in features) if f in PROXY_FAMILIES)
        key = "   ".join(f"{FAMILY_SYMBOLS[family]} {family}" for family in present)
        fig.text(0.5, 0.005, key, ha="center", va="bottom", fontsize=8)
    return _save(fig, path, bottom=0.04 if decorate else 0.0)


def learning_curves(curves: pd.DataFrame, path: str | Path, title: str, ylabel: str = "test R²") -> Path:
    """Score against training-set size ``n`` (log x), one line with markers per ``series``; where
    the table has an ``sd`` column (repeated subsamples), a band of +- one sd around each line."""
    needed = {"n", "score", "series"}
    if curves.empty or not needed <= set(curves.columns):
        raise RobustnasError("learning curves need a non-empty table with columns n, score, series")
    if (curves["n"] <= 0).any():
        raise RobustnasError("learning curves need positive training-set sizes n (the x axis is logarithmic)")
    fig, ax = plt.subplots(figsize=(7.0, 4.5))
    for name in dict.fromkeys(curves["series"]):
        line = curves[curves["series"] == name].sort_values("n")
        (drawn,) = ax.plot(line["n"], line["score"], marker="o", label=str(name))
        if "sd" in line:
            ax.fill_between(line["n"], line["score"] - line["sd"], line["score"] + line["sd"],
                            color=drawn.get_color(), alpha=0.15, linewidth=0)
    ax.set_xscale("log")
    sizes = sorted(set(curves["n"]))
    ax.set_xticks(sizes, [f"{n:g}" for n in sizes])
    ax.xaxis.set_minor_formatter(ticker.NullFormatter())
    ax.set_xlabel("training-set size n")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def r2_bars(table: pd.DataFrame, path: str | Path, title: str) -> Path:
    """Grouped vertical bars: one group per row (e.g. target), one bar per column (e.g. paper, ours).

    Bars carry their value (2 decimals) up to ``MAX_LABELLED_BARS`` bars; NaN bars are left out.
    """
    values = _numeric(table, "R² table")
    groups, series = values.shape
    width = 0.8 / series
    fig, ax = plt.subplots(figsize=(max(5.0, 1.5 + groups * (0.35 + 0.3 * series)), 4.5))
    positions = np.arange(groups)
    for k, name in enumerate(table.columns):
        bars = ax.bar(positions + (k - (series - 1) / 2) * width, values[:, k], width=width, label=str(name))
        if groups * series <= MAX_LABELLED_BARS:
            ax.bar_label(bars, labels=[f"{v:.2f}" if np.isfinite(v) else "" for v in values[:, k]], fontsize=7)
    ax.axhline(0, color="black", linewidth=0.8)
    rotate = groups > 6
    ax.set_xticks(
        positions, [str(i) for i in table.index], rotation=30 if rotate else 0, ha="right" if rotate else "center"
    )
    ax.set_ylabel("test R²")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return _save(fig, path)


def _numeric(table: pd.DataFrame, name: str) -> np.ndarray:
    if table.empty:
        raise RobustnasError(f"{name} is empty; nothing to plot")
    bad = [str(c) for c in table.columns if not pd.api.types.is_numeric_dtype(table[c])]
    if bad:
        raise RobustnasError(f"{name} has non-numeric columns {', '.join(bad)}; pass numbers only")
    return table.to_numpy(dtype=float)


def _text_colour(rgba: tuple[float, float, float, float]) -> str:
    red, green, blue = rgba[:3]
    return "white" if 0.299 * red + 0.587 * green + 0.114 * blue < 0.5 else "black"


def _save(fig: plt.Figure, path: str | Path, bottom: float = 0.0) -> Path:
    """Tight layout (leaving ``bottom`` of the figure free), write the PNG, free the figure."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout(rect=(0, bottom, 1, 1))
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path
