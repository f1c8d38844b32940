"""hessian_eig by Lanczos vs the power iteration it replaced: Hessian-vector products and values.

    python benchmarks/hessian_lanczos.py --archs 8

Same networks, batch and preprocessing as benchmarks/hessian_cost.py (CIFAR-10 embedded sample,
batch 64, train-mode BatchNorm, one thread). Power iteration stops when the Rayleigh quotient
changes by less than 1e-4 (relative) or after 100 products (the old default); Lanczos is
``hessian_eig_details`` with its defaults (both extreme Ritz values' residual bounds below 1e-4
relative). Products are the cost (each is one double backward); seconds are reported too but the
machine is shared. Rows go to runs/hessian-lanczos.jsonl as each network finishes (resumable).
Writes docs/results/hessian-lanczos.{md,json}.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from robustnas.data import load_dataset, normalization, sample_batch
from robustnas.proxies.robustness import hessian_eig_details
from robustnas.report import markdown_table
from robustnas.spaces import build
from robustnas.spaces.nb201 import NB201Arch, unique_indices

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hessian_cost import trajectory  # noqa: E402  (the power iteration, as benchmarked there)

ROOT = Path(__file__).resolve().parents[1]


def measure(arch: str, x: torch.Tensor, y: torch.Tensor) -> dict:
    torch.manual_seed(0)
    net = build("nb201", arch).train()
    started = time.perf_counter()
    estimates, _ = trajectory(net, x, y, 100, 1e-4)
    power_seconds = time.perf_counter() - started
    started = time.perf_counter()
    lanczos = hessian_eig_details(net, x, y)
    return {"arch": arch, "power products": len(estimates), "power value": estimates[-1],
            "power s": power_seconds, "lanczos products": lanczos.iterations, "lanczos value": lanczos.value,
            "lanczos converged": lanczos.converged, "lanczos bound": lanczos.relative_change,
            "lanczos s": time.perf_counter() - started}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", type=int, default=8)
    args = parser.parse_args()
    torch.set_num_threads(1)
    x, y = sample_batch(load_dataset(), 64, seed=0, augment=True)
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in normalization("cifar10"))
    x = (x - mean) / std
    order = random.Random(1).sample(list(unique_indices()), len(unique_indices()))  # as hessian_cost.py
    archs = [NB201Arch.from_index(int(i)).to_string() for i in order[: args.archs]]
    log = ROOT / "runs" / "hessian-lanczos.jsonl"
    log.parent.mkdir(exist_ok=True)
    done = {row["arch"]: row for row in map(json.loads, log.read_text().splitlines())} if log.exists() else {}
    with log.open("a") as sink:
        for arch in archs:
            if arch not in done:
                done[arch] = measure(arch, x, y)
                sink.write(json.dumps(done[arch]) + "\n")
                sink.flush()
                print(done[arch], flush=True)
    rows = [done[arch] for arch in archs]
    table = [{"arch": r["arch"], "power products": r["power products"], "lanczos products": r["lanczos products"],
              "power value": r["power value"], "lanczos value": r["lanczos value"],
              "relative difference": abs(r["power value"] - r["lanczos value"]) / abs(r["lanczos value"]),
              "lanczos bound": r["lanczos bound"]} for r in rows]
    power = np.array([r["power products"] for r in rows])
    lanczos = np.array([r["lanczos products"] for r in rows])
    command = f"python benchmarks/hessian_lanczos.py --archs {args.archs}"
    summary = {"archs": len(rows), "power products total": int(power.sum()), "lanczos products total": int(lanczos.sum()),
               "power products median": float(np.median(power)), "lanczos products median": float(np.median(lanczos)),
               "power unconverged (100)": int((power >= 100).sum()),
               "lanczos converged": int(sum(r["lanczos converged"] for r in rows)),
               "same sign": int(sum(np.sign(r["power value"]) == np.sign(r["lanczos value"]) for r in rows))}
    (ROOT / "docs" / "results" / "hessian-lanczos.json").write_text(
        json.dumps({"command": command, "summary": summary, "rows": rows}, indent=1))
    text = "\n".join([
        "# hessian_eig: Lanczos vs power iteration", "", f"Reproduce: `{command}`", "",
        f"{len(rows)} unique NB201 architectures, CIFAR-10 embedded sample, batch 64, train-mode BatchNorm, "
        "one thread. The cost is the number of Hessian-vector products (one double backward each).", "",
        markdown_table(pd.DataFrame([summary]), "{:.4g}"), "", markdown_table(pd.DataFrame(table), "{:.4g}"), "",
        "Power iteration stops on a relative change of the Rayleigh quotient below 1e-4, which is not an "
        "error bound; Lanczos stops when the residual bounds of both extreme Ritz values are below 1e-4 "
        "relative (an error bound), so the differences above are mostly the old method's error.", ""])
    (ROOT / "docs" / "results" / "hessian-lanczos.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
