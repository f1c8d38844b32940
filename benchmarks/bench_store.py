"""Results-store timings on the full NB201 grid (15,625 cells x 16 quantities = 250,000 rows).

Measures ``put_many`` throughput for 100,000 new and 100,000 already-stored rows, one-row ``put``
transactions, ``missing`` over all 250,000 keys, merging two 125,000-row shards, exports, and
4 processes writing 1,000-row batches at once.

    .venv/bin/python benchmarks/bench_store.py

Prints one JSON object (seconds and rows/s).
"""
from __future__ import annotations

import json
import multiprocessing
import platform
import sqlite3
import tempfile
import time
from pathlib import Path

from robustnas.spaces.nb201 import all_archs
from robustnas.store import Key, Result, Store, config_hash

CONFIG = config_hash({"benchmark": "store"})
QUANTITIES = [f"proxy{i:02d}" for i in range(16)]
PROCESSES, PROCESS_ROWS, PROCESS_BATCH = 4, 25_000, 1_000


def grid() -> list[Result]:
    archs = [arch.to_string() for arch in all_archs()]
    return [Result(arch, q, 0, CONFIG, float(i)) for i, arch in enumerate(archs) for q in QUANTITIES]


def timed(action) -> tuple[float, object]:
    start = time.perf_counter()
    value = action()
    return time.perf_counter() - start, value


def fill(path: Path, rows: list[Result]) -> None:
    with Store(path) as store:
        store.ensure_run("bench")
        store.put_many("bench", rows)


def write_share(path: str, worker: int) -> None:
    rows = [Result(f"arch{worker}-{i}", "proxy", 0, CONFIG, float(i)) for i in range(PROCESS_ROWS)]
    with Store(path) as store:
        store.ensure_run("bench")
        for start in range(0, PROCESS_ROWS, PROCESS_BATCH):
            store.put_many("bench", rows[start : start + PROCESS_BATCH])


def main() -> None:
    rows = grid()
    keys = [Key(*row[:4]) for row in rows]
    out: dict[str, object] = {"python": platform.python_version(), "sqlite": sqlite3.sqlite_version}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        with Store(root / "main.sqlite") as store:
            store.ensure_run("bench")
            seconds, written = timed(lambda: store.put_many("bench", rows[:100_000]))
            assert written == 100_000
            out["put_many_100k_new_rows_per_s"] = round(100_000 / seconds)
            seconds, written = timed(lambda: store.put_many("bench", rows[:100_000]))
            assert written == 0
            out["put_many_100k_present_rows_per_s"] = round(100_000 / seconds)
            store.put_many("bench", rows[100_000:])
            seconds, _ = timed(lambda: [store.put("bench", row._replace(seed=1)) for row in rows[:2_000]])
            out["put_single_row_transactions_per_s"] = round(2_000 / seconds)
            seconds, left = timed(lambda: store.missing("bench", keys))
            assert left == []
            out["missing_250k_keys_s"] = round(seconds, 3)
            out["export_long_parquet_252k_rows_s"] = round(timed(lambda: store.export(root / "long.parquet"))[0], 3)
            out["export_wide_parquet_s"] = round(
                timed(lambda: store.export(root / "wide.parquet", "bench", wide=True, seed=0))[0], 3
            )
        out["file_mib_252k_rows"] = round((root / "main.sqlite").stat().st_size / 2**20, 1)

        fill(root / "shard0.sqlite", rows[0::2])
        fill(root / "shard1.sqlite", rows[1::2])
        with Store(root / "merged.sqlite") as merged:
            seconds, reports = timed(lambda: [merged.merge(root / f"shard{i}.sqlite") for i in (0, 1)])
        assert sum(report.added for report in reports) == len(rows)
        out["merge_2x125k_shards_s"] = round(seconds, 3)

        path = str(root / "parallel.sqlite")
        Store(path).close()
        context = multiprocessing.get_context("spawn")
        workers = [context.Process(target=write_share, args=(path, w)) for w in range(PROCESSES)]
        start = time.perf_counter()
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        seconds = time.perf_counter() - start
        with Store(path) as store:
            assert store.runs()[0].rows == PROCESSES * PROCESS_ROWS
        out["4_processes_1k_batches_rows_per_s_incl_startup"] = round(PROCESSES * PROCESS_ROWS / seconds)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
