"""Proxy speed on NB201 / CIFAR-10, as ratios to one plain forward+backward (the floor), one process.

For each architecture (batch 64, float32, CPU unless --device): the floor (one cross-entropy
forward + backward), every proxy alone, the 13 NAS-Bench-Suite-Zero proxies + CRoZe fused, and the
one-call-per-proxy baseline that rebuilds the network for each proxy as the reference code does.

    python benchmarks/proxy_speed.py --archs 50

Writes docs/results/proxy-speed.{md,json}.
"""
from __future__ import annotations

import argparse
import json
import platform
import random
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from robustnas.data import load_dataset, normalization, sample_batch
from robustnas.proxies import resolve, score
from robustnas.report import markdown_table
from robustnas.spaces import build
from robustnas.spaces.nb201 import NB201Arch, unique_indices

ROOT = Path(__file__).resolve().parents[1]
SUITE = ["epe_nas", "fisher", "flops", "grad_norm", "grasp", "jacov", "l2_norm", "nwot", "params", "plain",
         "snip", "synflow", "zen"]
FUSED = SUITE + ["croze"]


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def floor_pass(net, x, y) -> None:
    net.zero_grad()
    F.cross_entropy(net(x), y).backward()


def measure(arch: str, x: torch.Tensor, y: torch.Tensor, device: str) -> dict[str, float]:
    def fresh():
        torch.manual_seed(0)
        return build("nb201", arch).to(device)

    net = fresh()
    row = {"floor": timed(lambda: floor_pass(net, x, y))}
    for proxy in resolve("all"):
        row[proxy] = timed(lambda: score(net, x, y, proxies=[proxy]))
    row["fused_13_croze"] = timed(lambda: score(net, x, y, proxies=FUSED))
    row["baseline_one_call_per_proxy"] = sum(timed(lambda: score(fresh(), x, y, proxies=[p])) for p in FUSED)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", type=int, default=50)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    images = load_dataset()
    x, y = sample_batch(images, 64, seed=0, augment=True)
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in normalization("cifar10"))
    x, y = ((x - mean) / std).to(args.device), y.to(args.device)
    archs = [NB201Arch.from_index(int(i)).to_string() for i in random.Random(0).sample(list(unique_indices()), args.archs)]
    measure(archs[0], x, y, args.device)  # warm-up
    rows = [measure(arch, x, y, args.device) for arch in archs]
    keys = list(rows[0])
    mean_s = {k: sum(r[k] for r in rows) / len(rows) for k in keys}
    ratio = {k: sum(r[k] / r["floor"] for r in rows) / len(rows) for k in keys}
    speedup = sum(r["baseline_one_call_per_proxy"] / r["fused_13_croze"] for r in rows) / len(rows)
    command = f"python benchmarks/proxy_speed.py --archs {args.archs} --device {args.device}"
    result = {"command": command, "machine": platform.processor() or platform.machine(),
              "threads": torch.get_num_threads(), "archs": len(rows), "mean_seconds": mean_s,
              "mean_ratio_to_floor": ratio, "baseline_over_fused": speedup}
    out = ROOT / "docs" / "results"
    (out / "proxy-speed.json").write_text(json.dumps(result, indent=2) + "\n")
    import pandas as pd

    table = pd.DataFrame({"what": keys, "mean s": [mean_s[k] for k in keys], "x floor": [ratio[k] for k in keys]})
    lines = ["# Proxy speed, NB201 on CIFAR-10, batch 64", "",
             f"Command: `{command}` ({len(rows)} unique architectures, {result['threads']} threads, one process). "
             "Ratios are per architecture, then averaged.", "",
             markdown_table(table, "{:.3f}"), "",
             f"One-call-per-proxy baseline / fused (13 suite proxies + CRoZe): **{speedup:.2f}x**."]
    (out / "proxy-speed.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
