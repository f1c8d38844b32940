"""Throughput of `robustnas score` on the local pool and on Ray, 1 and 2 workers (issue 19).

The same NB201 architectures are scored (run_scoring, a fresh run directory each time) by four
executors, interleaved over ``--rounds`` so that a noisy machine slows all of them alike:
local 1 worker, Ray 1 worker, local 2 workers, Ray 2 workers. Ray is started once before the
timings (``ray.init``; its start-up is reported on its own, as a cluster is started once per
session, not per command); a warm-up run first starts its worker processes. Each timing is the
whole run_scoring call: the local pool's process start-up is included, as a user sees it.
Reported: seconds per run (median), architectures per second, Ray's overhead per architecture
against the local pool at equal workers, and whether both engines stored the same values (bit
for bit: equal workers means equal torch threads per worker).

    python benchmarks/ray_scaling.py --write            # 100 archs, CRoZe proxy, 2 rounds
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results"
CONFIGS = [("local", 1), ("ray", 1), ("local", 2), ("ray", 2)]


def score_once(settings, archs, engine: str, workers: int, folder: Path):
    """(seconds, stored values) of one scoring run in a fresh directory."""
    from robustnas.scoring import run_scoring, scores

    out = folder / f"{engine}-{workers}-{time.monotonic_ns()}"
    start = time.perf_counter()
    run_scoring(settings, archs, out, workers=workers, engine=engine)
    return time.perf_counter() - start, scores(out).sort_index()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", type=int, default=100)
    parser.add_argument("--proxies", default="croze")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--write", action="store_true", help="write docs/results/ray-scaling.{md,json}")
    args = parser.parse_args()

    import ray

    from robustnas.proxies import resolve
    from robustnas.scoring import ScoreSettings, select_archs

    settings = ScoreSettings("nb201", "cifar10", None, tuple(resolve(args.proxies)), args.batch_size, 0)
    archs = select_archs("nb201", f"sample:{args.archs}", 0)
    cpus = os.cpu_count() or 1
    start = time.perf_counter()
    ray.init(num_cpus=cpus, include_dashboard=False, logging_level="WARNING")
    ray_start_s = time.perf_counter() - start
    seconds: dict[str, list[float]] = {f"{engine} {workers}": [] for engine, workers in CONFIGS}
    values: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as folder:
        for engine, workers in CONFIGS:  # warm-up: Ray's worker processes import torch once
            score_once(settings, archs[:4], engine, workers, Path(folder))
        for round_ in range(args.rounds):
            for engine, workers in CONFIGS:
                name = f"{engine} {workers}"
                elapsed, values[name] = score_once(settings, archs, engine, workers, Path(folder))
                seconds[name].append(elapsed)
                print(f"round {round_} {name}: {elapsed:.2f} s", file=sys.stderr, flush=True)
    ray.shutdown()
    median = {name: statistics.median(times) for name, times in seconds.items()}
    record = {
        "command": " ".join(["python", "benchmarks/ray_scaling.py", *sys.argv[1:]]),
        "archs": args.archs, "proxies": list(settings.proxies), "batch_size": args.batch_size, "rounds": args.rounds,
        "cpus": cpus, "python": platform.python_version(), "ray": ray.__version__, "ray_start_s": ray_start_s,
        "seconds": seconds, "median_s": median,
        "archs_per_s": {name: args.archs / value for name, value in median.items()},
        "ray_overhead": overhead(seconds, args.archs),
        "identical_values": {
            str(workers): bool(values[f"ray {workers}"].equals(values[f"local {workers}"])) for workers in (1, 2)
        },
    }
    print(json.dumps(record, indent=2))
    if args.write:
        write(record)


def overhead(seconds: dict[str, list[float]], archs: int) -> dict[str, dict[str, float]]:
    """Ray against the local pool at equal workers: the median of the per-round ratios (each round
    runs the two back to back, so a machine that slows down for a while slows both), the ratio of
    the medians, and the difference of the medians per architecture."""
    result = {}
    for workers in (1, 2):
        ray_s, local_s = seconds[f"ray {workers}"], seconds[f"local {workers}"]
        result[str(workers)] = {
            "paired_ratio": statistics.median(r / l for r, l in zip(ray_s, local_s)),
            "round_ratios": [r / l for r, l in zip(ray_s, local_s)],
            "ratio_of_medians": statistics.median(ray_s) / statistics.median(local_s),
            "ms_per_arch": 1000 * (statistics.median(ray_s) - statistics.median(local_s)) / archs,
        }
    return result


def write(record: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "ray-scaling.json").write_text(json.dumps(record, indent=2) + "\n")
    lines = [
        "# Scoring on the local pool and on Ray (issue 19)",
        "",
        f"Command: `{record['command']}`; {record['archs']} NB201 architectures, proxies "
        f"{', '.join(record['proxies'])}, batch {record['batch_size']}, CPU ({record['cpus']} cores), Ray "
        f"{record['ray']}, medians of {record['rounds']} interleaved rounds. Each time is a whole `run_scoring` call "
        f"into a new run directory (local pool start-up included); Ray was started once before "
        f"({record['ray_start_s']:.1f} s, not included) and warmed up.",
        "",
        "| engine | workers | median s | architectures / s | Ray / local, same workers: per round (median) | ratio of medians |",
        "|---|---|---|---|---|---|",
    ]
    for name, seconds in record["median_s"].items():
        engine, workers = name.split()
        cost = record["ray_overhead"][workers]
        rounds = ", ".join(f"{ratio:.3f}" for ratio in cost["round_ratios"])
        paired = f"{rounds} (**{cost['paired_ratio']:.3f}x**)" if engine == "ray" else "-"
        medians = f"{cost['ratio_of_medians']:.3f}x ({cost['ms_per_arch']:+.1f} ms/arch)" if engine == "ray" else "-"
        lines.append(f"| {engine} | {workers} | {seconds:.2f} | {record['archs_per_s'][name]:.2f} | {paired} | {medians} |")
    same = ", ".join(f"{w} worker{'s' if w != '1' else ''}: {'yes' if v else 'NO'}"
                     for w, v in record["identical_values"].items())
    lines += ["", f"Same stored values on both engines, bit for bit (equal workers): {same}.", ""]
    (RESULTS / "ray-scaling.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
