"""Exhaustive check: params/FLOPs of every NAS-Bench-Suite-Zero architecture, one real network each.

Builds the full NB201 network of each of the 9,445 suite architectures (CIFAR-10 and
ImageNet16-120), counts it with robustnas.spaces._counting on real modules, and compares with the
suite's ``params``/``flops`` columns (tolerance 1e-6 in the suite's units of millions).

    .venv/bin/python benchmarks/check_nb201_counts.py [--data ../shared/data/nb201] [--workers 2]

Writes docs/results/nb201-counts.json and .md.
"""
from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pandas as pd
import torch

from robustnas.spaces._counting import count
from robustnas.spaces.nb201 import NB201Arch
from robustnas.spaces import INPUT_SIZE, build

ROOT = Path(__file__).resolve().parents[1]


def _count_chunk(args: tuple[str, list[str]]) -> list[tuple[int, int]]:
    torch.set_num_threads(1)
    dataset, nets = args
    size = INPUT_SIZE[dataset]
    out = []
    for net in nets:
        counts = count(build("nb201", NB201Arch.parse(net), dataset), (1, 3, size, size))
        out.append((counts.params, counts.flops))
    return out


def check(data: Path, dataset: str, workers: int) -> dict:
    table = pd.read_csv(data / "suite-zero" / f"zc-proxies-{dataset}.csv")
    nets = table["net"].tolist()
    chunks = [(dataset, nets[i : i + 250]) for i in range(0, len(nets), 250)]
    start = time.perf_counter()
    with ProcessPoolExecutor(workers) as pool:
        counted = [c for chunk in pool.map(_count_chunk, chunks) for c in chunk]
    seconds = time.perf_counter() - start
    params = pd.Series([c[0] / 1e6 for c in counted])
    flops = pd.Series([c[1] / 1e6 for c in counted])
    return {
        "dataset": dataset,
        "architectures": len(nets),
        "params_max_abs_diff": float((params - table["params"]).abs().max()),
        "flops_max_abs_diff": float((flops - table["flops"]).abs().max()),
        "params_matches": int(((params - table["params"]).abs() <= 1e-6).sum()),
        "flops_matches": int(((flops - table["flops"]).abs() <= 1e-6).sum()),
        "seconds": round(seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "nb201")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    results = [check(args.data, d, args.workers) for d in ("cifar10", "ImageNet16-120")]
    out = ROOT / "docs" / "results"
    out.mkdir(parents=True, exist_ok=True)
    command = "python benchmarks/check_nb201_counts.py --workers %d" % args.workers
    (out / "nb201-counts.json").write_text(json.dumps({"command": command, "results": results}, indent=2) + "\n")
    lines = [
        "# NB201 parameter and FLOP counts vs NAS-Bench-Suite-Zero",
        "",
        f"Command: `{command}` (one full network per architecture, counted on real modules).",
        "",
        "| dataset | architectures | params equal (1e-6) | flops equal (1e-6) | max abs diff params / flops | time (s) |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['dataset']} | {r['architectures']} | {r['params_matches']} | {r['flops_matches']} | "
            f"{r['params_max_abs_diff']:.1e} / {r['flops_max_abs_diff']:.1e} | {r['seconds']} |"
        )
    (out / "nb201-counts.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
