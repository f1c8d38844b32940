"""Full-archive data checks and load timings (too slow for the test suite).

* Loads all 60,000 images of cifar10-jpeg.zip twice into a fresh cache: first load (list, decode,
  write the cache) and second load (cache hit); checks 50,000 train + 10,000 test, 5,000 / 1,000
  per class.
* Compares single-process decoding with 2-worker process and thread pools on the 10,000 test
  JPEGs, which decided that the reader decodes in one process.
* Matches every image of the raw CIFAR-10 subset (exact pixels, original order) to its nearest
  JPEG of the same class and checks that the zip numbers each class's files in original order
  (file NNNN = the NNNN-th image of that class), and the JPEG error of matched pairs.
* Recomputes Tiny-ImageNet channel statistics on the 20,000-image train subset.

    .venv/bin/python benchmarks/bench_data_load.py [--data ../shared/data]

Writes docs/results/data-load.json and .md.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path

import numpy as np

from robustnas.data import load_dataset, normalization
from robustnas.data._folders import ZipContainer, decode_images
from robustnas.data._imageset import ImageSet

ROOT = Path(__file__).resolve().parents[1]
JPEG = "cifar10/cifar10-jpeg.zip"


def timed_loads(archive: Path) -> tuple[dict, dict[str, ImageSet]]:
    """First (cold cache) and second (cached) load of both splits."""
    results, loaded = {}, {}
    for split in ("train", "test"):
        start = time.perf_counter()
        first = load_dataset(archive, split=split)
        first_seconds = time.perf_counter() - start
        start = time.perf_counter()
        second = load_dataset(archive, split=split)
        second_seconds = time.perf_counter() - start
        start = time.perf_counter()
        in_memory = np.array(second.images)
        copy_seconds = time.perf_counter() - start
        assert np.array_equal(first.images, in_memory)
        results[split] = {
            "images": len(first),
            "per_class": first.class_counts(),
            "first_load_s": round(first_seconds, 3),
            "second_load_s": round(second_seconds, 4),
            "copy_cached_pixels_to_memory_s": round(copy_seconds, 3),
        }
        loaded[split] = second
    return results, loaded


@lru_cache(maxsize=None)
def _container(archive: str, process: int) -> ZipContainer:
    """One open archive per process: a forked worker must not share its parent's file offset."""
    return ZipContainer(Path(archive))


def _decode_chunk(args: tuple[str, list[str]]) -> np.ndarray:
    archive, names = args
    return decode_images(_container(archive, os.getpid()), names)


def decode_strategies(archive: Path, repeats: int = 3) -> dict:
    """Best-of-``repeats`` seconds to decode the 10,000 test JPEGs (chunks of 1,250): one process
    vs 2-worker process and thread pools (pool start-up included, as a reader would pay it)."""
    names = [n for n in _container(str(archive), os.getpid()).names if n.startswith("test/")]
    chunks = [(str(archive), names[i : i + 1250]) for i in range(0, len(names), 1250)]
    reference = np.concatenate([_decode_chunk(chunk) for chunk in chunks])

    def single() -> np.ndarray:
        return np.concatenate([_decode_chunk(chunk) for chunk in chunks])

    def pooled(pool_type: type) -> np.ndarray:
        with pool_type(2) as pool:
            return np.concatenate(list(pool.map(_decode_chunk, chunks)))

    strategies = {
        "single_process_s": single,
        "process_pool_2_s": lambda: pooled(ProcessPoolExecutor),
        "thread_pool_2_s": lambda: pooled(ThreadPoolExecutor),
    }
    timings = {}
    for label, run in strategies.items():
        seconds = []
        for _ in range(repeats):
            start = time.perf_counter()
            assert np.array_equal(run(), reference)
            seconds.append(time.perf_counter() - start)
        timings[label] = round(min(seconds), 3)
    return timings


def _busy_loop(iterations: int) -> int:
    total = 0
    for i in range(iterations):
        total += i
    return total


def cpu_parallel_speedup() -> float:
    """Throughput of 2 processes running a pure-Python loop relative to 1 (2.0 = two free cores)."""
    start = time.perf_counter()
    _busy_loop(10_000_000)
    single = time.perf_counter() - start
    with ProcessPoolExecutor(2) as pool:
        list(pool.map(_busy_loop, [1000, 1000]))  # start the workers outside the timing
        start = time.perf_counter()
        list(pool.map(_busy_loop, [10_000_000, 10_000_000]))
        double = time.perf_counter() - start
    return round(2 * single / double, 2)


def _nearest(queries: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """Index of the nearest candidate (L2) of each query image."""
    q = queries.reshape(len(queries), -1).astype(np.float32)
    c = candidates.reshape(len(candidates), -1).astype(np.float32)
    distances = (c * c).sum(1)[None, :] - 2 * q @ c.T
    return distances.argmin(1)


def order_check(raw_file: Path, jpeg: dict[str, ImageSet]) -> dict:
    """Nearest same-class JPEG file number of every raw image; numbering follows original order iff
    the numbers of each class are consecutive within each contiguous run of original indices."""
    with np.load(raw_file) as raw:
        raw_sets = {
            "train": (raw["x_train"], raw["y_train"], raw["train_index"]),
            "test": (raw["x_test"], raw["y_test"], np.arange(len(raw["x_test"]))),
        }
    report = {}
    for split, (images, labels, index) in raw_sets.items():
        target = jpeg[split]
        runs = np.split(np.arange(len(index)), np.flatnonzero(np.diff(index) != 1) + 1)
        consecutive, first_run_from_zero, errors = True, True, []
        for cls in range(10):
            members = np.flatnonzero(target.labels == cls)  # in file-number order
            matched = _nearest(images[labels == cls], target.images[members])
            errors.append(
                np.abs(
                    images[labels == cls].astype(np.int16) - target.images[members[matched]].astype(np.int16)
                ).mean(axis=(1, 2, 3))
            )
            run_of = np.concatenate([np.full(len(run), r) for r, run in enumerate(runs)])[labels == cls]
            for r in np.unique(run_of):
                numbers = matched[run_of == r]
                consecutive &= bool(np.all(np.diff(numbers) == 1))
                if r == 0:
                    first_run_from_zero &= bool(numbers[0] == 0)
        errors = np.concatenate(errors)
        report[split] = {
            "raw_images": int(len(index)),
            "runs_of_original_indices": [[int(index[run[0]]), int(index[run[-1]])] for run in runs],
            "numbers_consecutive_within_runs": consecutive,
            "first_run_starts_at_file_0000": first_run_from_zero,
            "mean_abs_error_255": round(float(errors.mean()), 3),
            "max_image_mean_abs_error_255": round(float(errors.max()), 3),
        }
    return report


def tiny_statistics(archive: Path) -> dict:
    start = time.perf_counter()
    train = load_dataset(archive)
    seconds = time.perf_counter() - start
    pixels = train.images.reshape(-1, 3) / 255.0
    mean, std = normalization("tiny-imagenet-200")
    return {
        "images": len(train),
        "first_load_s": round(seconds, 3),
        "subset_mean": [round(float(v), 4) for v in pixels.mean(0)],
        "subset_std": [round(float(v), 4) for v in pixels.std(0)],
        "constants_mean": list(mean),
        "constants_std": list(std),
    }


def write_markdown(path: Path, result: dict) -> None:
    loads, strategies, order, tiny = (
        result["jpeg_loads"],
        result["decode_strategies"],
        result["order"],
        result["tiny"],
    )
    lines = [
        "# Data loading: timings and full-archive checks",
        "",
        f"Command: `{result['command']}` on {result['machine']} (fresh cache directory).",
        "",
        "## cifar10-jpeg.zip (all 60,000 JPEGs)",
        "",
        "| split | images | per class | first load (s) | second load (s) | + copy pixels to RAM (s) |",
        "|---|---|---|---|---|---|",
    ]
    for split, row in loads.items():
        per_class = f"{min(row['per_class'])}..{max(row['per_class'])}"
        lines.append(
            f"| {split} | {row['images']} | {per_class} | {row['first_load_s']} | {row['second_load_s']} "
            f"| {row['copy_cached_pixels_to_memory_s']} |"
        )
    lines += [
        "",
        "First load = read the zip listing, decode with Pillow, write the cache; second load = cache hit "
        "(memory-mapped .npy, no listing or decoding; pages are read on first use, the last column reads them all).",
        "",
        "Decoding the 10,000 test JPEGs (chunks of 1,250, best of 3): "
        f"one process {strategies['single_process_s']} s, 2-process pool {strategies['process_pool_2_s']} s, "
        f"2-thread pool {strategies['thread_pool_2_s']} s. The reader therefore decodes in one process. "
        f"(On this machine 2 processes of pure-Python work run {result['cpu_parallel_speedup_2_processes']}x "
        "as fast as one.)",
        "",
        "## File numbering vs original order",
        "",
        "Each raw-subset image (exact pixels, known original index) matched to its nearest same-class JPEG. "
        "Consecutive numbers within every run of original indices, starting at 0000 for the run that starts at "
        "index 0, mean that file NNNN of a class is the NNNN-th image of that class in the original order:",
        "",
        "| split | raw images | runs of original indices | numbers consecutive in runs | first run from 0000 | mean abs error (/255) | worst image |",
        "|---|---|---|---|---|---|---|",
    ]
    for split, row in order.items():
        runs = ", ".join(f"{a}-{b}" for a, b in row["runs_of_original_indices"])
        lines.append(
            f"| {split} | {row['raw_images']} | {runs} | {row['numbers_consecutive_within_runs']} | "
            f"{row['first_run_starts_at_file_0000']} | {row['mean_abs_error_255']} | {row['max_image_mean_abs_error_255']} |"
        )
    lines += [
        "",
        "## Tiny-ImageNet-200 train subset (20,000 images) channel statistics",
        "",
        f"First load {tiny['first_load_s']} s. Mean {tiny['subset_mean']} vs constants {tiny['constants_mean']}; "
        f"std {tiny['subset_std']} vs constants {tiny['constants_std']}.",
        "",
    ]
    path.write_text("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as cache:
        os.environ["ROBUSTNAS_CACHE"] = cache
        loads, jpeg = timed_loads(args.data / JPEG)
        result = {
            "command": "python benchmarks/bench_data_load.py",
            "machine": f"{platform.machine()}, {len(os.sched_getaffinity(0))} CPUs, Python {platform.python_version()}",
            "jpeg_loads": loads,
            "decode_strategies": decode_strategies(args.data / JPEG),
            "cpu_parallel_speedup_2_processes": cpu_parallel_speedup(),
            "order": order_check(args.data / "cifar10" / "cifar10-raw-subset.npz", jpeg),
            "tiny": tiny_statistics(args.data / "tiny-imagenet-200" / "tiny-imagenet-200-subset.zip"),
        }
    out = ROOT / "docs" / "results"
    (out / "data-load.json").write_text(json.dumps(result, indent=2) + "\n")
    write_markdown(out / "data-load.md", result)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
