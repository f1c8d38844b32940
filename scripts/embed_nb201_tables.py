"""Build the compact NB201 ground-truth copy shipped in src/robustnas/_embedded/nb201_*.npz.

Reads the original files (layout of ../shared/data/nb201, see its README) with the package's own
readers and stores them losslessly: robustness accuracies as uint16 thousandths (refused unless
every value has at most 3 decimals), everything else as float64. See robustnas.bench.shipped.

    python scripts/embed_nb201_tables.py ../shared/data/nb201
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from robustnas.bench import original
from robustnas.bench.names import DATASETS
from robustnas.bench.shipped import (
    HW_NAS_BENCH_FILE, NATS_FILE, ROBUSTNESS_FILE, SUITE_ZERO_FILE, THOUSANDTHS, key,
)

OUT = Path(__file__).resolve().parents[1] / "src" / "robustnas" / "_embedded"


def main(nb201_dir: str) -> None:
    root = Path(nb201_dir)
    _save(ROBUSTNESS_FILE, _robustness_arrays(root / "robustness-dataset"))
    _save(NATS_FILE, {"test_accuracy": original.read_nats(root / "nats-bench-test-accuracy.csv")})
    suite_zero = root / "suite-zero"
    _save(SUITE_ZERO_FILE, {
        k: v
        for dataset in original.suite_zero_csv_datasets(suite_zero)
        for k, v in _frame_arrays(dataset, original.read_suite_zero_csv(suite_zero, dataset), True).items()
    })
    hw = root / "hw-nas-bench"
    _save(HW_NAS_BENCH_FILE, {
        k: v for dataset in DATASETS
        for k, v in _frame_arrays(dataset, original.read_hw_nas_bench(hw, dataset), False).items()
    })


def _robustness_arrays(directory: Path) -> dict[str, np.ndarray]:
    isomorph, epsilons = original.read_meta(directory)
    representatives = np.flatnonzero(isomorph == np.arange(len(isomorph)))
    arrays = {"isomorph": isomorph.astype(np.uint16)}
    arrays.update({key("eps", m): np.array(e, dtype=np.float64) for m, e in epsilons.items()})
    for dataset in DATASETS:
        for name, values in original.read_robustness(directory, dataset, representatives, epsilons).items():
            arrays[key(dataset, name)] = _thousandths(values, f"{directory}/{dataset}/{name}")
    return arrays


def _thousandths(values: np.ndarray, where: str) -> np.ndarray:
    """Exact uint16 thousandths of accuracies in [0, 1] with at most 3 decimals, else stop."""
    scaled = np.rint(values * THOUSANDTHS)
    if not (np.all((scaled >= 0) & (scaled <= THOUSANDTHS)) and np.array_equal(scaled / THOUSANDTHS, values)):
        raise SystemExit(f"{where}: values with more than 3 decimals or outside [0, 1]; store them as float64")
    return scaled.astype(np.uint16)


def _frame_arrays(dataset: str, frame, with_index: bool) -> dict[str, np.ndarray]:
    arrays = {
        key(dataset, "values"): frame.to_numpy(np.float64),
        key(dataset, "columns"): np.array(frame.columns, dtype=str),
    }
    if with_index:
        arrays[key(dataset, "index")] = frame.index.to_numpy().astype(np.uint16)
    elif not np.array_equal(frame.index, np.arange(len(frame))):
        raise SystemExit(f"{dataset}: expected rows in NB201 index order 0..{len(frame) - 1}")
    return arrays


def _save(name: str, arrays: dict[str, np.ndarray]) -> None:
    path = OUT / name
    np.savez_compressed(path, **arrays)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main(sys.argv[1])
