"""NAS-Bench-201 ground truth: robustness dataset, NATS-Bench, Suite-Zero proxies, HW-NAS-Bench."""
from __future__ import annotations

from robustnas.bench._benchmark import Benchmark, read_naslib_zc_json
from robustnas.bench._names import ATTACK_KEYS, CORRUPTIONS, DATASETS, SEVERITIES

__all__ = ["ATTACK_KEYS", "CORRUPTIONS", "DATASETS", "SEVERITIES", "Benchmark", "read_naslib_zc_json"]
