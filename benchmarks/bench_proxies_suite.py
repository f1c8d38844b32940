"""jacov, epe_nas, nwot, zen, synflow against NAS-Bench-Suite-Zero on sampled NB201 architectures.

For ``--archs`` architectures drawn (fixed seed) from the suite's CIFAR-10 table, builds the full
NB201 network, draws an augmented batch of 64 from the CIFAR-10 raw subset (suite protocol,
spec zero-cost-proxies-and-rf-study.md §1.1: one batch and one initialisation per arch and proxy),
computes each proxy alone and reports the Spearman rank correlation with the suite's column.
Also times each proxy alone on one network at batch 64 (median of ``--repeats``).

    .venv/bin/python benchmarks/bench_proxies_suite.py [--data ../shared/data] [--archs 30 (0: timings only)]
"""
from __future__ import annotations

import argparse
import math
import statistics
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy.stats import spearmanr

from robustnas.data import load_dataset, normalization, sample_batch
from robustnas.proxies import score
from robustnas.spaces import build

PROXIES = ["jacov", "epe_nas", "nwot", "zen", "synflow"]
ROOT = Path(__file__).resolve().parents[1]


def normalised_batch(images, seed: int, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = sample_batch(images, 64, seed=seed, augment=True)
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in normalization("cifar10"))
    return ((x - mean) / std).to(device), y.to(device)


def spearman(data: Path, archs: int, device: str) -> dict[str, tuple[float, int]]:
    table = pd.read_csv(data / "nb201" / "suite-zero" / "zc-proxies-cifar10.csv")
    sample = table.sample(n=archs, random_state=0)
    images = load_dataset(data / "cifar10" / "cifar10-raw-subset.npz", "cifar10")
    ours: dict[str, list[float]] = {name: [] for name in PROXIES}
    for row, net_text in enumerate(sample["net"]):
        for column, name in enumerate(PROXIES):
            torch.manual_seed(1000 * row + column)  # a fresh default initialisation per (arch, proxy)
            net = build("nb201", net_text, "cifar10").to(device)
            x, y = normalised_batch(images, 1000 * row + column, device)
            ours[name].append(score(net, x, y, proxies=[name], seed=row)[name])
    result = {}
    for name in PROXIES:
        values = np.array(ours[name])
        defined = ~np.isnan(values)
        rho = spearmanr(values[defined], sample[name].to_numpy()[defined]).statistic
        result[name] = (float(rho), int(defined.sum()))
    return result


def timings(data: Path, repeats: int, device: str) -> dict[str, tuple[float, float]]:
    """Median (wall, process CPU) seconds per proxy alone; CPU time is the steadier on a shared machine."""
    images = load_dataset(data / "cifar10" / "cifar10-raw-subset.npz", "cifar10")
    torch.manual_seed(0)
    net = build("nb201", (2, 4, 0, 0, 3, 2), "cifar10").to(device)
    x, y = normalised_batch(images, 0, device)
    seconds: dict[str, list[tuple[float, float]]] = {name: [] for name in PROXIES}
    for _ in range(repeats):
        for name in PROXIES:
            wall, cpu = time.perf_counter(), time.process_time()
            value = score(net, x, y, proxies=[name])[name]
            if device == "cuda":
                torch.cuda.synchronize()
            seconds[name].append((time.perf_counter() - wall, time.process_time() - cpu))
            assert math.isfinite(value), name
    return {
        name: (statistics.median(w for w, _ in values), statistics.median(c for _, c in values))
        for name, values in seconds.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--archs", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}")
    if args.archs:
        for name, (rho, count) in spearman(args.data, args.archs, args.device).items():
            print(f"spearman {name:8s} {rho:+.3f}  ({count} of {args.archs} archs defined)")
    for name, (wall, cpu) in timings(args.data, args.repeats, args.device).items():
        print(f"time     {name:8s} wall {wall * 1000:8.1f} ms, CPU {cpu * 1000:8.1f} ms  (alone, NB201, batch 64)")


if __name__ == "__main__":
    main()
