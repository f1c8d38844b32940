"""User-facing names of the NB201 ground-truth datasets, metrics and table columns.

The robustness dataset of Jung et al. (ICLR 2023) stores one file per measure, named by a key such
as ``pgd@Linf`` or ``gaussian_noise`` (spec zero-cost-proxies-and-rf-study.md §4.1). Users name the
same measures with short metric names; this module maps between the two and builds column names.
"""
from __future__ import annotations

from robustnas.errors import RobustnasError

DATASETS: tuple[str, ...] = ("cifar10", "cifar100", "ImageNet16-120")
CLEAN = "clean"
NATS_TEST = "nats_test"
# User metric name -> the key of the robustness dataset's file and epsilon list.
ATTACK_KEYS: dict[str, str] = {
    "fgsm": "fgsm@Linf",
    "pgd": "pgd@Linf",
    "apgd-ce": "aa_apgd-ce@Linf",
    "square": "aa_square@Linf",
}
# The 15 CIFAR-C corruptions (Hendrycks & Dietterich 2019), evaluated for CIFAR-10/100 only.
CORRUPTIONS: tuple[str, ...] = (
    "brightness", "contrast", "defocus_blur", "elastic_transform", "fog", "frost", "gaussian_noise",
    "glass_blur", "impulse_noise", "jpeg_compression", "motion_blur", "pixelate", "shot_noise", "snow",
    "zoom_blur",
)
CORRUPTION_DATASETS: tuple[str, ...] = ("cifar10", "cifar100")
SEVERITIES: tuple[int, ...] = (1, 2, 3, 4, 5)


def check_dataset(dataset: str) -> str:
    if dataset not in DATASETS:
        raise RobustnasError(f"unknown dataset {dataset!r}; choose one of: {', '.join(DATASETS)}")
    return dataset


def measure_keys(dataset: str) -> tuple[str, ...]:
    """File keys of the robustness dataset for ``dataset``: clean, 4 attacks, corruptions (CIFAR)."""
    corruptions = CORRUPTIONS if check_dataset(dataset) in CORRUPTION_DATASETS else ()
    return (CLEAN, *ATTACK_KEYS.values(), *corruptions)


def metrics(dataset: str) -> tuple[str, ...]:
    """Metric names accepted by ``Benchmark.query`` for ``dataset``."""
    corruptions = CORRUPTIONS if check_dataset(dataset) in CORRUPTION_DATASETS else ()
    return (CLEAN, *ATTACK_KEYS, *corruptions, NATS_TEST)


def attack_column(metric: str, eps: float) -> str:
    """Column of an attack at ``eps`` (units of 1/255), e.g. ``pgd@1.0``, ``fgsm@255.0``."""
    return f"{metric}@{float(eps)!r}"


def corruption_column(corruption: str, severity: int) -> str:
    """Column of a corruption at a severity 1..5, e.g. ``gaussian_noise@3``."""
    return f"{corruption}@{int(severity)}"
