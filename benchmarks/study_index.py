"""Index of the committed study reports: seed 003's Table 1 next to ours for every report.

    python benchmarks/study_index.py

Reads docs/results/study/*/r2.csv (written by `robustnas study`) and writes
docs/results/study/README.md.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from robustnas.report import markdown_table
from robustnas.report.study import graph_table, paper_value

ROOT = Path(__file__).resolve().parents[1]
STUDY = ROOT / "docs" / "results" / "study"
GAP = 0.05  # the tolerance for reproducing Table 1


def table1(report: Path) -> pd.DataFrame:
    r2 = pd.read_csv(report / "r2.csv")
    rows = r2[(r2["features"] == "all")].pivot_table(index=["target", "objective"], columns="model", values="r2")
    dataset = r2["dataset"].iloc[0]
    rows["paper"] = [paper_value(dataset, target, objective, "all") for target, objective in rows.index]
    rows["rf - paper"] = rows["rf"] - rows["paper"]
    rows["within 0.05"] = rows["rf - paper"].abs() <= GAP
    order = sorted(rows.index, key=lambda key: (key[1] != "single", r2["target"].drop_duplicates().tolist().index(key[0])))
    return rows.loc[order].reset_index()


def beyond(report: Path) -> pd.DataFrame:
    """The forests on the proxies, on the cell graph and on both, next to the paper (rf, test R²)."""
    r2 = pd.read_csv(report / "r2.csv")
    return graph_table(r2, r2["dataset"].iloc[0]).reset_index()


def main() -> None:
    lines = ["# Robustness-prediction study reports", "",
             "Each directory holds `report.md` / `report.html` (with the command that made it), figures, "
             "`r2.csv`, `correlations.csv`, `croze-table.csv`, `learning-curves.csv` and `proxy-subset.csv`. "
             "The fitted `predictor.npz` and `predictor-graph.npz` are not committed (up to 17 MB); "
             "the report's command rebuilds them.", "",
             "Made by `python benchmarks/study_index.py`. Table 1 of seed 003 (test R², eps 1/255, random "
             f"forest) against ours; `within 0.05` is the reproduction tolerance.", "",
             "Gaps larger than 0.05 are measured in [table1-gaps.md](table1-gaps.md): on CIFAR-10 the 322 "
             "classes missing from the suite copy (5 of them disconnected, clean accuracy 10 %) raise R² by "
             "about 0.03 (Square 0.688 -> 0.719 over 10 splits, PGD and APGD reach the paper's 0.65/0.66); "
             "ImageNet16-120 FGSM is 0.611 +- 0.023 over 10 splits, within 0.05 of the paper (0.594 is its "
             "split). CIFAR-100 has no suite copy: our proxies on the 1,000-architecture sample; on CIFAR-10 "
             "the same sample instead of all 6,144 classes costs 0.06-0.14 R² (Square most), which with the "
             "split spread (sd up to 0.09) accounts for most CIFAR-100 gaps; Square stays about 0.12 (1.3 sd) "
             "below the paper after both.", ""]
    for report in sorted(p for p in STUDY.iterdir() if (p / "r2.csv").exists()):
        lines += [f"## [{report.name}]({report.name}/report.md)", "", markdown_table(table1(report), "{:.3f}"), "",
                  "Beyond the paper: the same forest on the cell-graph features (`graph`) and on both:", "",
                  markdown_table(beyond(report), "{:.3f}"), ""]
    (STUDY / "README.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
