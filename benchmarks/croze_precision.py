"""CRoZe official on NB201: float32 vs float64 (time and ranking), and ranking vs robustness.

For ``--archs`` architectures drawn (seeded) from the 9,445 NAS-Bench-Suite-Zero CIFAR-10 archs, each
NB201 network is initialised with ``torch.manual_seed(seed + i)`` and scored by
``croze_score(mode="official")`` on one augmented, normalised CIFAR-10 batch of ``--batch-size``
images from the embedded sample (CRoZe uses its first 8), in float64 and float32:

* seconds per architecture: process CPU time with 1 torch thread (robust to other load on the
  machine) and wall time with 1 and with ``--threads`` torch threads;
* Spearman / Kendall between the float32 and float64 scores, and how many archs give NaN in float32
  without the range guard (exact power-of-two rescaling, see croze.py);
* Spearman / Kendall of CRoZe with the robustness dataset's clean and FGSM (eps 8/255) accuracy
  (Jung et al. 2023), next to four NAS-Bench-Suite-Zero proxies of the same archs for context.

    .venv/bin/python benchmarks/croze_precision.py [--archs 50] [--seed 0] [--threads 2]

Writes docs/results/croze-precision.json and .md.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from scipy.stats import kendalltau, spearmanr

from robustnas.bench import Benchmark
from robustnas.data import load_dataset, normalization, sample_batch
from robustnas.proxies import croze as croze_module
from robustnas.proxies.croze import croze_score
from robustnas.spaces import build

ROOT = Path(__file__).resolve().parents[1]
SUITE_CONTEXT = ("synflow", "grad_norm", "snip", "params")


def normalised_batch(batch_size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = sample_batch(load_dataset(), batch_size, seed=seed, augment=True)
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in normalization("cifar10"))
    return (x - mean) / std, y


def timed(action, threads: int) -> tuple[float, float, float]:
    """(value, CPU seconds, wall seconds) of ``action()`` with ``threads`` torch threads."""
    torch.set_num_threads(threads)
    cpu, wall = time.process_time(), time.perf_counter()
    value = action()
    return value, time.process_time() - cpu, time.perf_counter() - wall


@contextmanager
def without_range_guard():
    """Plain float32: the guard's limit at infinity (how often would float32 overflow?)."""
    limit = croze_module._range_limit
    croze_module._range_limit = lambda dtype: math.inf
    try:
        yield
    finally:
        croze_module._range_limit = limit


def correlations(a, b) -> dict[str, float]:
    a, b = np.asarray(a, float), np.asarray(b, float)
    keep = np.isfinite(a) & np.isfinite(b)
    return {
        "spearman": round(float(spearmanr(a[keep], b[keep]).statistic), 4),
        "kendall": round(float(kendalltau(a[keep], b[keep]).statistic), 4),
        "n": int(keep.sum()),
    }


def measure(args: argparse.Namespace) -> dict:
    bench = Benchmark()
    suite = bench.suite_zero("cifar10")
    rng = np.random.default_rng(args.seed)
    archs = sorted(int(i) for i in rng.choice(suite.index.to_numpy(), size=args.archs, replace=False))
    x, y = normalised_batch(args.batch_size, args.seed)

    def network(i: int, arch: int) -> torch.nn.Module:
        torch.manual_seed(args.seed + i)
        return build("nb201", arch, "cifar10")

    warm = network(-1, archs[0])
    for dtype in (torch.float64, torch.float32):
        croze_score(warm, x, y, dtype=dtype)
    rows = []
    for i, arch in enumerate(archs):
        net = network(i, arch)
        f64, cpu64, wall64 = timed(lambda: croze_score(net, x, y, dtype=torch.float64), 1)
        f32, cpu32, wall32 = timed(lambda: croze_score(net, x, y, dtype=torch.float32), 1)
        _, _, wall32_threads = timed(lambda: croze_score(net, x, y, dtype=torch.float32), args.threads)
        with without_range_guard():
            plain32 = croze_score(net, x, y, dtype=torch.float32)
        rows.append({
            "nb201_index": arch, "croze_float64": f64, "croze_float32": f32,
            "plain_float32_finite": math.isfinite(plain32),
            "cpu_s_float64": cpu64, "cpu_s_float32": cpu32, "wall_s_float64_1thread": wall64,
            "wall_s_float32_1thread": wall32, f"wall_s_float32_{args.threads}threads": wall32_threads,
            "clean": bench.query(arch, "cifar10", "clean"), "fgsm8": bench.query(arch, "cifar10", "fgsm", eps=8.0),
            **{f"suite_{name}": float(suite.at[arch, name]) for name in SUITE_CONTEXT},
        })  # fmt: skip
        print(json.dumps(rows[-1]), flush=True)
    return {"archs": archs, "rows": rows}


def summarise(result: dict, args: argparse.Namespace) -> dict:
    rows = result["rows"]
    column = lambda key: [row[key] for row in rows]  # noqa: E731
    seconds = {
        key: {"mean": round(statistics.mean(column(key)), 4), "median": round(statistics.median(column(key)), 4),
              "max": round(max(column(key)), 4)}
        for key in rows[0] if key.startswith(("cpu_s", "wall_s"))
    }  # fmt: skip
    targets = {"clean": column("clean"), "fgsm8": column("fgsm8")}
    f64, f32 = column("croze_float64"), column("croze_float32")
    proxies = {"croze_float64": f64, "croze_float32": f32} | {f"suite_{n}": column(f"suite_{n}") for n in SUITE_CONTEXT}
    return {
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "settings": {key: str(value) if isinstance(value, Path) else value for key, value in vars(args).items()},
        "machine": {
            "platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
            "cpus": os.cpu_count(), "load_average_at_end": os.getloadavg(),
        },  # fmt: skip
        "seconds_per_arch": seconds,
        "float32_vs_float64": correlations(f32, f64)
        | {"max_relative_difference": max(abs(a - b) / abs(b) if b else abs(a) for a, b in zip(f32, f64)),
           "plain_float32_nan": sum(not row["plain_float32_finite"] for row in rows)},  # fmt: skip
        "vs_robustness": {p: {t: correlations(v, target) for t, target in targets.items()} for p, v in proxies.items()},
        **result,
    }


def markdown(summary: dict) -> str:
    s, c = summary["seconds_per_arch"], summary["float32_vs_float64"]
    threads = summary["settings"]["threads"]
    lines = [
        "# CRoZe (official) on NB201: float32 vs float64, and ranking vs robustness",
        "",
        f"Command: `{summary['command']}` on {summary['machine']['platform']}, {summary['machine']['cpus']} CPUs, "
        f"torch {summary['machine']['torch']}; load average at the end "
        f"{', '.join(f'{v:.2f}' for v in summary['machine']['load_average_at_end'])} "
        "(the machine is shared: CPU seconds are the robust number, wall seconds include waiting for other jobs).",
        "",
        f"{len(summary['rows'])} NB201 architectures drawn with seed {summary['settings']['seed']} from the 9,445 "
        "NAS-Bench-Suite-Zero CIFAR-10 archs; PyTorch default init (seed + position); one augmented CIFAR-10 "
        f"batch of {summary['settings']['batch_size']} from the embedded sample, of which CRoZe official uses the "
        "first 8.",
        "",
        "## Seconds per architecture",
        "",
        "| measure | mean | median | max |",
        "|---|---|---|---|",
    ]
    lines += [f"| {key} | {v['mean']} | {v['median']} | {v['max']} |" for key, v in s.items()]
    lines += [
        "",
        f"`cpu_s_*`: process CPU time with 1 torch thread; `wall_s_*_1thread` / `_{threads}threads`: wall time. "
        "Wall times depend on other jobs on this shared machine (load average above): with the cores busy, "
        f"{threads} torch threads mostly wait for each other.",
        "",
        "## float32 vs float64",
        "",
        f"Spearman {c['spearman']}, Kendall {c['kendall']} over {c['n']} archs; largest relative difference "
        f"{c['max_relative_difference']:.2e}. Without the range guard (plain float32), "
        f"{c['plain_float32_nan']} of {len(summary['rows'])} archs give NaN: |W| without BN grows activations "
        "past float32's 3.4e38 (the official code runs in float64 for this reason).",
        "",
        "## Rank correlation with robustness (Jung et al. 2023, CIFAR-10, standard-trained)",
        "",
        "| proxy | Spearman clean | Kendall clean | Spearman FGSM 8/255 | Kendall FGSM 8/255 |",
        "|---|---|---|---|---|",
    ]
    for proxy, by_target in summary["vs_robustness"].items():
        clean, fgsm = by_target["clean"], by_target["fgsm8"]
        lines.append(f"| {proxy} | {clean['spearman']} | {clean['kendall']} | {fgsm['spearman']} | {fgsm['kendall']} |")
    lines += [
        "",
        "`suite_*`: NAS-Bench-Suite-Zero values of the same archs (other batches and inits), for context.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "results" / "croze-precision")
    args = parser.parse_args()
    summary = summarise(measure(args), args)
    args.out.with_suffix(".json").write_text(json.dumps(summary, indent=1))
    args.out.with_suffix(".md").write_text(markdown(summary))
    print(markdown(summary))


if __name__ == "__main__":
    main()
