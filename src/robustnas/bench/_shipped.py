"""The compact copy of the NB201 ground truth shipped in ``robustnas/_embedded`` (no network needed).

Built by ``scripts/embed_nb201_tables.py`` from the original files and returned here in the same
form and units as the readers in ``robustnas.bench._original``, value for value:

* ``nb201_robustness.npz``: ``isomorph`` (uint16 [15625]), ``eps__<metric>`` (float64) and
  ``<dataset>__<file key>`` accuracies as uint16 thousandths (every source value has at most 3
  decimals, so ``thousandths / 1000`` restores the parsed float exactly);
* ``nb201_nats.npz``: ``test_accuracy`` float64 [15625, 3] (percent);
* ``nb201_suite_zero.npz``: ``<dataset>__index`` / ``__values`` (float64) / ``__columns``;
* ``nb201_hw_nas_bench.npz``: ``<dataset>__values`` (float64, NB201 index order) / ``__columns``.
"""
from __future__ import annotations

from functools import lru_cache
from importlib import resources

import numpy as np
import pandas as pd

from robustnas.bench._names import ATTACK_KEYS, DATASETS, measure_keys
from robustnas.bench._original import INDEX_NAME

ROBUSTNESS_FILE = "nb201_robustness.npz"
NATS_FILE = "nb201_nats.npz"
SUITE_ZERO_FILE = "nb201_suite_zero.npz"
HW_NAS_BENCH_FILE = "nb201_hw_nas_bench.npz"
THOUSANDTHS = 1000.0


def key(dataset: str, name: str) -> str:
    return f"{dataset}__{name}"


def load_meta() -> tuple[np.ndarray, dict[str, tuple[float, ...]]]:
    arrays = _load(ROBUSTNESS_FILE)
    epsilons = {m: tuple(arrays[key("eps", m)].tolist()) for m in ATTACK_KEYS}
    return arrays["isomorph"].astype(np.int64), epsilons


def load_robustness(dataset: str) -> dict[str, np.ndarray]:
    arrays = _load(ROBUSTNESS_FILE)
    return {k: arrays[key(dataset, k)].astype(np.float64) / THOUSANDTHS for k in measure_keys(dataset)}


def load_nats() -> np.ndarray:
    return _load(NATS_FILE)["test_accuracy"]


def suite_zero_datasets() -> tuple[str, ...]:
    arrays = _load(SUITE_ZERO_FILE)
    return tuple(d for d in DATASETS if key(d, "values") in arrays)


def load_suite_zero(dataset: str) -> pd.DataFrame:
    arrays = _load(SUITE_ZERO_FILE)
    index = pd.Index(arrays[key(dataset, "index")].astype(np.int64), name=INDEX_NAME)
    columns = arrays[key(dataset, "columns")].tolist()
    return pd.DataFrame(arrays[key(dataset, "values")], index=index, columns=columns)


def load_hw_nas_bench(dataset: str) -> pd.DataFrame:
    arrays = _load(HW_NAS_BENCH_FILE)
    values = arrays[key(dataset, "values")]
    index = pd.RangeIndex(len(values), name=INDEX_NAME)
    return pd.DataFrame(values, index=index, columns=arrays[key(dataset, "columns")].tolist())


@lru_cache(maxsize=None)
def _load(name: str) -> dict[str, np.ndarray]:
    """All arrays of one shipped file, read once and made read-only (they are shared)."""
    with (resources.files("robustnas") / "_embedded" / name).open("rb") as handle, np.load(handle) as npz:
        arrays = {k: npz[k] for k in npz.files}
    for array in arrays.values():
        array.setflags(write=False)
    return arrays
