"""Speed of the 15 corruptions x 5 severities (CIFAR table) on real CIFAR-10 test images.

Runs the 75 settings in 2 worker processes (one BLAS thread each), each setting one
``corrupt(images, name, severity)`` call on all N images, and extrapolates linearly to the
10,000 CIFAR-10 test images (conservative: fixed per-call costs are scaled up too). Images are the
1,017 exact test images of ../shared/data/cifar10/cifar10-raw-subset.npz (``x_test``), repeated
when N is larger. Each worker first builds the frost textures once (reported separately).

    .venv/bin/python benchmarks/corruption_speed.py --images 200

Writes docs/results/corruption-speed.{md,json}.
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # 2 processes on 2 cores: no extra BLAS threads

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ProcessPoolExecutor  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from robustnas.bench._names import CORRUPTIONS, SEVERITIES  # noqa: E402
from robustnas.corruptions import corrupt  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RAW = ROOT.parent / "shared" / "data" / "cifar10" / "cifar10-raw-subset.npz"
OUT = ROOT / "docs" / "results"
TARGET_IMAGES, WORKERS, BUDGET_S = 10_000, 2, 600.0
_images: np.ndarray | None = None


def _init(images: np.ndarray) -> None:
    global _images
    _images = images


def _warm_up(_: int) -> float:
    """Build this worker's frost textures (cached per process); seconds taken."""
    start = time.perf_counter()
    corrupt(_images[:1], "frost", 1)
    return time.perf_counter() - start


def _run(setting: tuple[str, int]) -> dict:
    name, severity = setting
    start = time.perf_counter()
    out = corrupt(_images, name, severity, seed=0)
    seconds = time.perf_counter() - start
    change = float(np.abs(out.astype(np.int16) - _images).mean())
    return {"corruption": name, "severity": severity, "seconds": seconds, "mean_abs_change": change}


def measure(images: np.ndarray) -> dict:
    settings = [(name, s) for name in CORRUPTIONS for s in SEVERITIES]
    start = time.perf_counter()
    with ProcessPoolExecutor(WORKERS, initializer=_init, initargs=(images,)) as pool:
        warm = list(pool.map(_warm_up, range(WORKERS)))
        warm_wall = time.perf_counter() - start
        rows = list(pool.map(_run, settings))
    wall = time.perf_counter() - start
    scale = TARGET_IMAGES / len(images)
    cpu = sum(r["seconds"] for r in rows)
    return {
        "images": len(images),
        "settings": len(rows),
        "workers": WORKERS,
        "pool_start_and_warm_up_s": round(warm_wall, 2),
        "frost_texture_build_s_per_worker": [round(s, 2) for s in warm],
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "extrapolated_10k_cpu_s": round(cpu * scale, 1),
        "extrapolated_10k_wall_s": round((wall - warm_wall) * scale + warm_wall, 1),
        "budget_s": BUDGET_S,
        "rows": [{**r, "seconds": round(r["seconds"], 4), "mean_abs_change": round(r["mean_abs_change"], 2)}
                 for r in rows],
    }


def write_markdown(path: Path, result: dict) -> None:
    scale = TARGET_IMAGES / result["images"]
    wall, cpu = result["extrapolated_10k_wall_s"], result["extrapolated_10k_cpu_s"]
    header = [f"s{s} (s)" for s in SEVERITIES] + ["ms / image / setting", "10k, all 5 (s)"]
    header += [f"change s{s}" for s in SEVERITIES]
    lines = [
        "# Corruption speed (CIFAR-10, 15 corruptions x 5 severities)",
        "",
        f"Command: `{result['command']}` on {result['machine']}"
        f" (load average {result['load_average']} at start).",
        "",
        f"{result['images']} CIFAR-10 test images ({result['image_note']}), each setting one `corrupt` call"
        f" on all of them, {result['workers']} worker processes with one BLAS thread each. Extrapolation to"
        f" {TARGET_IMAGES:,} images is linear in the number of images (conservative: per-call overheads"
        " are scaled too).",
        "",
        "| | measured | extrapolated to 10,000 images |",
        "|---|---|---|",
        f"| wall, 2 workers (s) | {result['wall_s']} | **{wall}** (budget {result['budget_s']:.0f}) |",
        f"| CPU, sum over the 75 settings (s) | {result['cpu_s']} | {cpu} |",
        "",
        f"Pool start and frost texture build: {result['pool_start_and_warm_up_s']} s wall (textures"
        f" {result['frost_texture_build_s_per_worker']} s per worker, once per process; not scaled).",
        "",
        "Seconds per setting for the measured images, then ms per image, and the mean absolute change"
        " vs the clean images (grey levels, 0..255):",
        "",
        "| corruption | " + " | ".join(header) + " |",
        "|---|" + "---|" * len(header),
    ]
    for name in CORRUPTIONS:
        rows = [r for r in result["rows"] if r["corruption"] == name]
        seconds = [r["seconds"] for r in rows]
        per_image = 1000 * sum(seconds) / len(seconds) / result["images"]
        lines.append(
            f"| {name} | " + " | ".join(f"{s:.3f}" for s in seconds)
            + f" | {per_image:.3f} | {sum(seconds) * scale:.1f} | "
            + " | ".join(f"{r['mean_abs_change']:.1f}" for r in rows) + " |"
        )
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=1017, help="number of test images (repeated past 1,017)")
    args = parser.parse_args()
    with np.load(RAW) as raw:
        pool = raw["x_test"]
    images = np.resize(pool, (args.images, *pool.shape[1:])) if args.images > len(pool) else pool[: args.images]
    result = {
        "command": "python benchmarks/corruption_speed.py " + " ".join(sys.argv[1:]),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "load_average": [round(v, 2) for v in os.getloadavg()],
        "image_note": "exact pixels" if args.images <= len(pool) else f"the {len(pool)} exact images repeated",
        **measure(np.ascontiguousarray(images)),
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "corruption-speed.json").write_text(json.dumps(result, indent=1) + "\n")
    write_markdown(OUT / "corruption-speed.md", result)
    print(
        f"{result['images']} images: wall {result['wall_s']} s, cpu {result['cpu_s']} s; "
        f"extrapolated to 10,000 images: wall {result['extrapolated_10k_wall_s']} s on {WORKERS} workers "
        f"(budget {BUDGET_S:.0f} s), cpu {result['extrapolated_10k_cpu_s']} s"
    )


if __name__ == "__main__":
    main()
