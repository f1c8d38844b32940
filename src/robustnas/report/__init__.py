"""Reports: tables and figures for people to read."""
from __future__ import annotations

import math

import pandas as pd


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
