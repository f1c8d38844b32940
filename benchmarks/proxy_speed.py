"""Proxy speed on NB201 / CIFAR-10, as ratios to one plain forward+backward (the floor), one process.

For each architecture (batch 64, float32 network, CPU unless --device), all in one process:
- the floor: one cross-entropy forward + backward of the network;
- the one-call-per-proxy baseline, as the reference code runs: for each of the 13
  NAS-Bench-Suite-Zero proxies + CRoZe, rebuild the network, then compute that proxy alone. The
  compute part of each call is also reported as that proxy's time alone;
- the 13 suite proxies + CRoZe fused (one ``score`` call), and the 7 proxies whose reference
  timings the issue quotes (grad_norm, snip, plain, fisher, jacov, synflow, grasp) fused;
- CRoZe official mode in float32 (the registered proxy runs float64, like the released code);
- jacob_fro (exact, C backwards) and hessian_eig (docs/results/proxy-speed.md predates Lanczos: power iteration),
  reported on their own: they need many passes by nature. hessian_eig takes 30-60 s per network on
  CPU, so it is timed on the first --hessian-archs architectures only.

    python benchmarks/proxy_speed.py --archs 50

Rows are appended to runs/speed/<device>.jsonl as each architecture finishes, so an interrupted
run resumes. Writes docs/results/proxy-speed[-cuda].{md,json}; on CPU also the per-proxy seconds the study
reports as proxy costs (src/robustnas/_embedded/proxy_seconds.json).
"""
from __future__ import annotations

import argparse
import json
import platform
import random
import time
from pathlib import Path
from typing import Callable

import pandas as pd
import torch
import torch.nn.functional as F

from robustnas.data import load_dataset, normalization, sample_batch
from robustnas.proxies import score
from robustnas.proxies.croze import croze_score
from robustnas.proxies.robustness import hessian_eig_details
from robustnas.report import markdown_table
from robustnas.spaces import build
from robustnas.spaces.nb201 import NB201Arch, unique_indices

ROOT = Path(__file__).resolve().parents[1]
EMBEDDED = ROOT / "src" / "robustnas" / "_embedded" / "proxy_seconds.json"
SUITE = ["epe_nas", "fisher", "flops", "grad_norm", "grasp", "jacov", "l2_norm", "nwot", "params", "plain",
         "snip", "synflow", "zen"]
FUSED = SUITE + ["croze"]
REFERENCE_SEVEN = ["grad_norm", "snip", "plain", "fisher", "jacov", "synflow", "grasp"]
# Seconds measured with the released reference code on these machines (issue 3, section 5).
REFERENCE_SECONDS = {"floor": 0.31, "grad_norm": 0.50, "snip": 0.49, "plain": 0.48, "fisher": 0.56,
                     "jacov": 0.48, "synflow": 0.20, "grasp": 1.64, "croze": 1.07}


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start


def measure(arch: str, x: torch.Tensor, y: torch.Tensor, device: str, hessian: bool) -> dict[str, float]:
    """All timings of one architecture, in seconds."""

    def fresh() -> torch.nn.Module:
        torch.manual_seed(0)
        return build("nb201", arch).to(device)

    net = fresh()
    row: dict[str, float] = {"floor": timed(lambda: F.cross_entropy(net(x), y).backward())}
    net.zero_grad(set_to_none=True)
    baseline = 0.0
    for proxy in FUSED:
        holder = {}
        baseline += timed(lambda: holder.update(net=fresh()))
        row[proxy] = timed(lambda: score(holder["net"], x, y, proxies=[proxy]))
        baseline += row[proxy]
    row["baseline_one_call_per_proxy"] = baseline
    row["fused_13_croze"] = timed(lambda: score(net, x, y, proxies=FUSED))
    row["fused_reference_7"] = timed(lambda: score(net, x, y, proxies=REFERENCE_SEVEN))
    row["croze_float32"] = timed(lambda: croze_score(net, x, y, dtype=torch.float32))
    row["jacob_fro"] = timed(lambda: score(net, x, y, proxies=["jacob_fro"]))
    if hessian:
        details = {}
        row["hessian_eig"] = timed(lambda: details.update(result=hessian_eig_details(net, x, y)))
        row["hessian_iterations"] = details["result"].iterations
        row["hessian_converged"] = details["result"].converged
    return row


def batch(device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """One augmented, normalised CIFAR-10 batch of 64 from the embedded sample (seed 0)."""
    x, y = sample_batch(load_dataset(), 64, seed=0, augment=True)
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in normalization("cifar10"))
    return ((x - mean) / std).to(device), y.to(device)


def run(archs: list[str], x: torch.Tensor, y: torch.Tensor, device: str, log: Path, hessian_archs: int
        ) -> list[dict]:
    """Measure every architecture not yet in ``log`` (one JSON row per line), appending as it goes."""
    rows = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    done = {row["arch"] for row in rows}
    if any(arch not in done for arch in archs):
        measure(archs[0], x, y, device, hessian=False)  # warm-up: first-call allocations and kernel selection
    for position, arch in enumerate(archs, 1):
        if arch in done:
            continue
        row = {"arch": arch, **measure(arch, x, y, device, hessian=position <= hessian_archs)}
        with log.open("a") as handle:
            handle.write(json.dumps(row) + "\n")
        rows.append(row)
        print(f"{position}/{len(archs)} {arch}: fused {row['fused_13_croze'] / row['floor']:.2f}x floor", flush=True)
    return [row for row in rows if row["arch"] in set(archs)]


def summary(rows: list[dict]) -> tuple[pd.DataFrame, dict[str, float]]:
    """Mean seconds and mean per-architecture ratio to the floor of every timing."""
    frame = pd.DataFrame(rows).set_index("arch")
    timings = [c for c in frame.columns if not c.startswith("hessian_") or c == "hessian_eig"]
    ratios = frame[timings].div(frame["floor"], axis=0)
    table = pd.DataFrame({"what": timings, "archs": frame[timings].notna().sum().values,
                          "mean s": frame[timings].mean().values, "median s": frame[timings].median().values,
                          "max s": frame[timings].max().values, "mean x floor": ratios.mean().values})
    table["reference s"] = [REFERENCE_SECONDS.get(t) for t in timings]
    facts = {
        "baseline_over_fused": float((frame["baseline_one_call_per_proxy"] / frame["fused_13_croze"]).mean()),
        "fused_over_floor": float(ratios["fused_13_croze"].mean()),
        "reference_7_fused_over_floor": float(ratios["fused_reference_7"].mean()),
        "croze_float32_mean_s": float(frame["croze_float32"].mean()),
        "hessian_archs": int(frame["hessian_eig"].notna().sum()),
        "hessian_median_iterations": float(frame["hessian_iterations"].median()),
        "hessian_unconverged": int((frame["hessian_converged"] == False).sum()),  # noqa: E712 (NaN: not timed)
    }
    return table, facts


def write(table: pd.DataFrame, facts: dict, command: str, device: str, archs: int) -> None:
    suffix = "" if device == "cpu" else f"-{device}"
    out = ROOT / "docs" / "results"
    machine = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
               "threads": torch.get_num_threads(), "torch": torch.__version__,
               "gpu": torch.cuda.get_device_name() if device == "cuda" else None}
    (out / f"proxy-speed{suffix}.json").write_text(json.dumps(
        {"command": command, "machine": machine, "archs": archs, "facts": facts,
         "table": table.to_dict(orient="records")}, indent=2) + "\n")
    lines = [
        f"# Proxy speed, NB201 on CIFAR-10, batch 64 ({device})", "",
        f"Command: `{command}`; {archs} unique NB201 architectures (seed 0), one augmented batch of the "
        f"embedded CIFAR-10 sample, one process; {machine['platform']}, {machine['threads']} torch threads, "
        f"torch {machine['torch']}{', ' + machine['gpu'] if machine['gpu'] else ''}.", "",
        "`floor`: one cross-entropy forward+backward. A proxy's own row: that proxy computed alone on a fresh "
        "build (its build time is not included there, but is in the baseline). Ratios are per architecture, "
        "then averaged. `reference s`: the released reference code on these machines (issue 3 §5), for "
        "context only: other runs, other load.", "",
        markdown_table(table, "{:.3f}"), "",
        f"- 13 suite proxies + CRoZe fused: **{facts['fused_over_floor']:.2f}x** the floor (target <= 7x).",
        f"- One-call-per-proxy baseline / fused: **{facts['baseline_over_fused']:.2f}x** (target >= 2x).",
        f"- The 7 reference proxies fused: {facts['reference_7_fused_over_floor']:.2f}x the floor "
        "(reference code: 4.4 s, about 14x its floor).",
        f"- CRoZe official in float32: {facts['croze_float32_mean_s']:.3f} s per architecture (target <= 0.2 s; "
        "float32 vs float64 Spearman: docs/results/croze-precision.md).",
        f"- hessian_eig (timed on the first {facts['hessian_archs']} architectures): median "
        f"{facts['hessian_median_iterations']:.0f} Hessian-vector products, {facts['hessian_unconverged']} of "
        f"{facts['hessian_archs']} stopped at 100 without reaching tol 1e-4 (docs/results/hessian-cost.md).",
    ]
    (out / f"proxy-speed{suffix}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    if device == "cpu":  # the study's proxy costs (robustnas.report._study.proxy_seconds)
        alone = table.set_index("what")["mean s"]
        seconds = {proxy: round(float(alone[proxy]), 4) for proxy in [*FUSED, "jacob_fro", "hessian_eig"]}
        EMBEDDED.write_text(json.dumps({"command": command, "archs": archs, "seconds": seconds}, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", type=int, default=50, help="number of unique NB201 architectures")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--log", type=Path, default=None, help="JSONL of measured rows (resume)")
    parser.add_argument("--hessian-archs", type=int, default=10,
                        help="time hessian_eig on the first N architectures only (30-60 s each on CPU)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    log = args.log or ROOT / "runs" / "speed" / f"{args.device}.jsonl"
    log.parent.mkdir(parents=True, exist_ok=True)
    x, y = batch(args.device)
    archs = [NB201Arch.from_index(int(i)).to_string() for i in random.Random(0).sample(list(unique_indices()), args.archs)]
    rows = run(archs, x, y, args.device, log, args.hessian_archs)
    table, facts = summary(rows)
    threads = f" --threads {args.threads}" if args.threads else ""
    write(table, facts, f"python benchmarks/proxy_speed.py --archs {args.archs} --device {args.device} "
          f"--hessian-archs {args.hessian_archs}{threads}",
          args.device, len(rows))


if __name__ == "__main__":
    main()
