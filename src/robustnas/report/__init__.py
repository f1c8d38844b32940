"""Reports: tables and figures for people to read, and the robustness-prediction study.

    from robustnas.report import run_study, graph_frame, markdown_table
"""
from __future__ import annotations

import importlib
import math
from typing import Any

import pandas as pd

__all__ = ["format_cell", "graph_frame", "markdown_table", "run_study"]
_STUDY = ("graph_frame", "run_study")  # loaded on first use: the study imports scikit-learn and matplotlib


def __getattr__(name: str) -> Any:
    if name in _STUDY:
        return getattr(importlib.import_module("robustnas.report._study"), name)
    raise AttributeError(f"module 'robustnas.report' has no attribute {name!r}")


def format_cell(value: object, float_format: str = "{:.4g}") -> str:
    """A table cell: floats with ``float_format``, NaN as an en dash (no value), others as str."""
    if isinstance(value, float):
        return "–" if math.isnan(value) else float_format.format(value)
    return str(value)


def markdown_table(frame: pd.DataFrame, float_format: str = "{:.4g}") -> str:
    """A GitHub-flavoured markdown table of ``frame`` (index not included)."""
    header = "| " + " | ".join(str(c) for c in frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    rows = ["| " + " | ".join(format_cell(v, float_format) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *rows])
