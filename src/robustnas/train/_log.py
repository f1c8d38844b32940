"""The per-epoch log: RUN_DIR/log.csv and RUN_DIR/curves.png, both rewritten whole every epoch
from the rows kept in the checkpoint, so they always agree with it (also after a kill)."""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from robustnas._files import replace_file

COLUMNS = ("epoch", "lr", "train_loss", "train_acc", "val_clean_acc", "val_pgd_acc", "seconds")


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    """One row per epoch (1-based); val_* empty for epochs without evaluation; accuracies in [0,1]."""
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: "" if row[key] is None else row[key] for key in COLUMNS})
    replace_file(path, text.getvalue())


def read_csv(path: Path) -> list[dict[str, float | int | None]]:
    """The rows of a log.csv with numbers parsed (empty cells -> None)."""
    with open(path, newline="") as handle:
        return [{key: _parse(key, value) for key, value in row.items()} for row in csv.DictReader(handle)]


def _parse(key: str, value: str) -> float | int | None:
    return None if value == "" else int(value) if key == "epoch" else float(value)


def plot_curves(path: Path, rows: list[dict[str, Any]], title: str, train_label: str) -> None:
    """Two panels against the epoch: training loss; train (``train_label``), clean and PGD held-out accuracy (%)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(9, 3.6), layout="constrained")
    FigureCanvasAgg(figure)
    loss_axes, acc_axes = figure.subplots(1, 2)
    epochs = [row["epoch"] for row in rows]
    loss_axes.plot(epochs, [row["train_loss"] for row in rows], marker="o", ms=3)
    loss_axes.set(xlabel="epoch", ylabel="training loss", title="loss")
    for key, label in (("train_acc", train_label), ("val_clean_acc", "held-out clean"),
                       ("val_pgd_acc", "held-out PGD")):
        points = [(row["epoch"], 100 * row[key]) for row in rows if row[key] is not None]
        if points:
            acc_axes.plot(*zip(*points), marker="o", ms=3, label=label)
    acc_axes.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    acc_axes.legend(fontsize=8)
    for axes in (loss_axes, acc_axes):
        axes.grid(alpha=0.3)
        if len(epochs) < 12:
            axes.set_xticks(epochs)
    figure.suptitle(title, fontsize=10)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    replace_file(path, buffer.getvalue())

