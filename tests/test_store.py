"""Tests for robustnas.store: idempotent writes, resume, merge, export, concurrency, crash safety."""
from __future__ import annotations

import math
import multiprocessing
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from robustnas.spaces.nb201 import all_archs
from robustnas.store import Key, MergeReport, Result, Store, StoreError, config_hash

CONFIG = {"proxy": "synflow", "batch_size": 64, "dataset": "cifar10"}
CFG = config_hash(CONFIG)
ARCH_A = "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|avg_pool_3x3~0|nor_conv_1x1~1|none~2|"
ARCH_B = "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|"


@pytest.fixture
def store(tmp_path: Path) -> Store:
    with Store(tmp_path / "results.sqlite") as opened:
        opened.ensure_run("zc", {"argv": ["robustnas", "score", "--proxy", "synflow"]})
        yield opened


# ---- config hash ---------------------------------------------------------------------------------
def test_config_hash_is_pinned_and_order_free() -> None:
    # sha256(b'{"batch_size":64,"dataset":"cifar10","proxy":"synflow"}')[:16]; must never change,
    # or every stored run would stop resuming.
    assert CFG == "dd6d635344555fd4"
    assert config_hash({"proxy": "synflow", "dataset": "cifar10", "batch_size": 64}) == CFG
    assert config_hash({"eps": [1, 2]}) == config_hash({"eps": (1, 2)})
    assert config_hash({"batch_size": 65, "dataset": "cifar10", "proxy": "synflow"}) != CFG


@pytest.mark.parametrize("bad", [[1, 2], {"eps": math.nan}, {"eps": {1, 2}}])
def test_config_hash_rejects_non_json(bad: object) -> None:
    with pytest.raises(StoreError, match="config"):
        config_hash(bad)


def test_config_is_recorded_and_looked_up(store: Store) -> None:
    assert store.add_config(CONFIG) == CFG
    assert store.config(CFG) == CONFIG
    with pytest.raises(StoreError, match="not recorded"):
        store.config("0000000000000000")


# ---- writing and reading ---------------------------------------------------------------------------
def test_first_write_wins_and_overwrite_replaces(store: Store) -> None:
    key = Key(ARCH_A, "synflow", 0, CFG)
    assert store.put("zc", Result(*key, 12.5)) is True
    assert store.put("zc", Result(*key, 99.0)) is False
    assert store.get("zc", key) == Result(*key, 12.5)
    assert store.put("zc", Result(*key, 13.0, "fixed bug"), overwrite=True) is True
    assert store.get("zc", key) == Result(*key, 13.0, "fixed bug")
    assert store.runs()[0].rows == 1


def test_put_many_counts_new_rows_and_first_duplicate_wins(store: Store) -> None:
    batch = [
        Result(ARCH_A, "snip", 0, CFG, 1.0),
        Result(ARCH_A, "snip", 0, CFG, 2.0),
        Result(ARCH_B, "snip", 0, CFG, 3.0),
    ]
    assert store.put_many("zc", batch) == 2
    assert store.put_many("zc", batch + [Result(ARCH_B, "snip", 1, CFG, 4.0)]) == 1
    assert store.get("zc", Key(ARCH_A, "snip", 0, CFG)).value == 1.0


def test_nan_is_null_with_its_reason_and_inf_survives(store: Store, tmp_path: Path) -> None:
    store.put_many(
        "zc",
        [Result(ARCH_A, "jacov", 0, CFG, math.nan, "NaN gradient"), Result(ARCH_A, "synflow", 0, CFG, -math.inf)],
    )
    raw = sqlite3.connect(tmp_path / "results.sqlite").execute(
        "SELECT quantity, value, note FROM results ORDER BY quantity"
    ).fetchall()
    assert raw == [("jacov", None, "NaN gradient"), ("synflow", -math.inf, None)]
    nan_result = store.get("zc", Key(ARCH_A, "jacov", 0, CFG))
    assert math.isnan(nan_result.value) and nan_result.note == "NaN gradient"
    assert store.get("zc", Key(ARCH_A, "missing", 0, CFG)) is None


@pytest.mark.parametrize(
    ("result", "message"),
    [
        (Result(ARCH_A, "snip", 1.5, CFG, 1.0), "seed must be an integer"),
        (Result(ARCH_A, "snip", 0, CFG, None), "value a number"),
        (Result("", "snip", 0, CFG, 1.0), "arch must be a non-empty string"),
        (Result(ARCH_A, "snip", 0, CFG, 1.0, 7), "note must be text"),
        ((ARCH_A, "snip", 0, CFG), "give Result"),
    ],
)
def test_bad_results_are_rejected_and_nothing_is_written(store: Store, result: object, message: str) -> None:
    with pytest.raises(StoreError, match=message):
        store.put_many("zc", [Result(ARCH_B, "snip", 0, CFG, 1.0), result])
    assert store.runs()[0].rows == 0


def test_unknown_run_is_named(store: Store) -> None:
    with pytest.raises(StoreError, match=r"run 'other' is not in .*runs: zc.*ensure_run"):
        store.put("other", Result(ARCH_A, "snip", 0, CFG, 1.0))


# ---- runs --------------------------------------------------------------------------------------------
def test_runs_list_counts_and_keep_first_metadata(store: Store) -> None:
    store.put_many("zc", [Result(ARCH_A, "snip", 0, CFG, 1.0), Result(ARCH_B, "snip", 0, CFG, 2.0)])
    again = store.ensure_run("zc", {"argv": ["changed"]})
    assert again.metadata == {"argv": ["robustnas", "score", "--proxy", "synflow"]}
    store.ensure_run("attack", {"eps": 8 / 255})
    listed = store.runs()
    assert [(run.name, run.rows) for run in listed] == [("zc", 2), ("attack", 0)]
    assert listed[1].metadata == {"eps": 8 / 255}
    assert listed[0].created_utc.utcoffset().total_seconds() == 0


# ---- resume --------------------------------------------------------------------------------------------
def test_missing_and_done_over_the_full_nb201_grid(store: Store) -> None:
    archs = [arch.to_string() for arch in all_archs()]
    quantities = [f"proxy{i:02d}" for i in range(16)]
    keys = [Key(arch, quantity, 0, CFG) for arch in archs for quantity in quantities]
    assert len(set(keys)) == 15_625 * 16
    stored = keys[::2]
    store.put_many("zc", (Result(*key, float(i)) for i, key in enumerate(stored)))
    assert store.missing("zc", keys) == keys[1::2]
    assert store.done("zc", keys) == set(stored)


# ---- export --------------------------------------------------------------------------------------------
def _fill(store: Store) -> None:
    store.put_many(
        "zc",
        [
            Result(ARCH_A, "synflow", 0, CFG, 40.5),
            Result(ARCH_A, "jacov", 0, CFG, math.nan, "NaN gradient"),
            Result(ARCH_B, "synflow", 0, CFG, 7.25),
            Result(ARCH_B, "jacov", 0, CFG, -61.0),
        ],
    )


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_long_export_round_trips(store: Store, tmp_path: Path, suffix: str) -> None:
    _fill(store)
    path = store.export(tmp_path / f"out/long{suffix}", "zc")
    table = pd.read_parquet(path) if suffix == ".parquet" else pd.read_csv(path)
    assert list(table.columns) == ["run", "arch", "quantity", "seed", "config", "value", "note", "written_utc"]
    assert table["quantity"].tolist() == ["jacov", "synflow", "jacov", "synflow"]
    assert table["value"].tolist()[1:] == [40.5, -61.0, 7.25] and math.isnan(table["value"][0])
    assert table["note"][0] == "NaN gradient"


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_wide_export_has_one_row_per_arch(store: Store, tmp_path: Path, suffix: str) -> None:
    _fill(store)
    path = store.export(tmp_path / f"wide{suffix}", "zc", wide=True)
    table = pd.read_parquet(path) if suffix == ".parquet" else pd.read_csv(path, index_col="arch")
    assert list(table.columns) == ["jacov", "synflow"]
    assert table.loc[ARCH_B].tolist() == [-61.0, 7.25]
    assert math.isnan(table.loc[ARCH_A, "jacov"]) and table.loc[ARCH_A, "synflow"] == 40.5


def test_wide_needs_one_seed_and_config_per_quantity(store: Store) -> None:
    _fill(store)
    store.put("zc", Result(ARCH_A, "synflow", 1, CFG, 41.0))
    with pytest.raises(StoreError, match=r"'synflow' for several \(seed, config\) pairs.*seed="):
        store.wide_frame("zc")
    assert store.wide_frame("zc", seed=1).loc[ARCH_A, "synflow"] == 41.0


def test_export_rejects_unknown_format_and_wide_without_run(store: Store, tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=r"\.parquet or \.csv"):
        store.export(tmp_path / "out.json")
    with pytest.raises(StoreError, match="wide export needs one run"):
        store.export(tmp_path / "out.csv", wide=True)


# ---- merge ---------------------------------------------------------------------------------------------
def test_merge_shards_without_duplicates(tmp_path: Path) -> None:
    shard_rows = {
        "shard0": [Result(ARCH_A, "synflow", 0, CFG, 1.0), Result(ARCH_B, "synflow", 0, CFG, 2.0)],
        "shard1": [Result(ARCH_B, "synflow", 0, CFG, 20.0), Result(ARCH_B, "snip", 0, CFG, 3.0)],
    }
    for name, rows in shard_rows.items():
        with Store(tmp_path / f"{name}.sqlite") as shard:
            shard.ensure_run("zc", {"shard": name})
            shard.add_config(CONFIG)
            shard.put_many("zc", rows)
    with Store(tmp_path / "all.sqlite") as merged:
        assert merged.merge(tmp_path / "shard0.sqlite") == MergeReport(added=2, skipped=0)
        assert merged.merge(tmp_path / "shard1.sqlite") == MergeReport(added=1, skipped=1)
        assert merged.merge(tmp_path / "shard1.sqlite") == MergeReport(added=0, skipped=2)
        assert [(run.name, run.metadata, run.rows) for run in merged.runs()] == [("zc", {"shard": "shard0"}, 3)]
        assert merged.get("zc", Key(ARCH_B, "synflow", 0, CFG)).value == 2.0
        assert merged.config(CFG) == CONFIG


def test_merge_refuses_itself_and_non_stores(store: Store, tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="into itself"):
        store.merge(tmp_path / "results.sqlite")
    with pytest.raises(StoreError, match="no such store file"):
        store.merge(tmp_path / "absent.sqlite")
    (tmp_path / "notes.txt").write_text("not a database " * 100)
    with pytest.raises(StoreError, match="not a robustnas store"):
        store.merge(tmp_path / "notes.txt")


# ---- file checks -----------------------------------------------------------------------------------------
def test_files_that_are_not_stores_are_refused(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a database " * 100)
    with pytest.raises(StoreError, match=r"notes.txt is not a robustnas store"):
        Store(tmp_path / "notes.txt")
    with sqlite3.connect(tmp_path / "other.db") as conn:
        conn.execute("CREATE TABLE trials (x)")
    with pytest.raises(StoreError, match=r"other.db is not a robustnas store"):
        Store(tmp_path / "other.db")
    with pytest.raises(StoreError, match="is a directory"):
        Store(tmp_path)


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    Store(tmp_path / "new.sqlite").close()
    with sqlite3.connect(tmp_path / "new.sqlite") as conn:
        conn.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    with pytest.raises(StoreError, match="schema version 2, this robustnas reads version 1: upgrade"):
        Store(tmp_path / "new.sqlite")


# ---- concurrency -----------------------------------------------------------------------------------------
WORKERS, OWN_ROWS, SHARED_ROWS = 4, 500, 100


def _write_rows(path: str, worker: int, barrier: multiprocessing.Barrier, written: multiprocessing.Queue) -> None:
    """One row per transaction: own keys, plus keys every worker tries to write."""
    with Store(path) as store:
        store.ensure_run("zc")
        barrier.wait(timeout=60)
        count = 0
        for i in range(OWN_ROWS):
            count += store.put("zc", Result(ARCH_A, f"q{worker}", i, CFG, float(i)))
            if i < SHARED_ROWS:
                count += store.put("zc", Result(ARCH_B, "shared", i, CFG, float(worker)))
        written.put(count)


def test_concurrent_writers_store_every_row_exactly_once(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.sqlite")
    context = multiprocessing.get_context("spawn")
    barrier, written = context.Barrier(WORKERS), context.Queue()
    workers = [context.Process(target=_write_rows, args=(path, w, barrier, written)) for w in range(WORKERS)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    for worker in workers:
        if worker.is_alive():
            worker.terminate()
    assert [worker.exitcode for worker in workers] == [0] * WORKERS
    counts = [written.get(timeout=10) for _ in workers]
    assert sum(counts) == WORKERS * OWN_ROWS + SHARED_ROWS
    with Store(path) as store:
        table = store.frame("zc")
    assert len(table) == WORKERS * OWN_ROWS + SHARED_ROWS
    per_quantity = {"shared": SHARED_ROWS, **{f"q{w}": OWN_ROWS for w in range(WORKERS)}}
    assert table.groupby("quantity").size().to_dict() == per_quantity
    assert not table.duplicated(["arch", "quantity", "seed", "config"]).any()


def test_a_locked_store_is_retried_then_reported(store: Store, tmp_path: Path) -> None:
    with Store(tmp_path / "results.sqlite", timeout=0.05) as impatient:
        blocker = sqlite3.connect(tmp_path / "results.sqlite", isolation_level=None, check_same_thread=False)
        blocker.execute("BEGIN IMMEDIATE")
        release = threading.Timer(0.15, blocker.execute, args=("COMMIT",))
        release.start()
        assert impatient.put("zc", Result(ARCH_A, "snip", 0, CFG, 1.0)) is True
        release.join()
        blocker.execute("BEGIN IMMEDIATE")
        with pytest.raises(StoreError, match="stayed locked by another process"):
            impatient.put("zc", Result(ARCH_B, "snip", 0, CFG, 1.0))
        blocker.execute("ROLLBACK")
        blocker.close()


# ---- crash safety ----------------------------------------------------------------------------------------
BATCH = 500
CRASH_CHILD = f"""
import sys
from robustnas.store import Result, Store
with Store(sys.argv[1]) as store:
    store.ensure_run("zc")
    for batch in range(10**6):
        store.put_many("zc", [Result("arch", "q", batch * {BATCH} + i, "cfg", float(i)) for i in range({BATCH})])
        print(batch, flush=True)
"""


def test_sigkill_mid_run_loses_no_committed_row(tmp_path: Path) -> None:
    path = tmp_path / "crash.sqlite"
    child = subprocess.Popen([sys.executable, "-c", CRASH_CHILD, str(path)], stdout=subprocess.PIPE, text=True)
    committed = [int(child.stdout.readline()) for _ in range(20)]
    time.sleep(0.005)  # let the child get inside its next transaction
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    with Store(path) as store:
        seeds = set(store.frame("zc")["seed"])
        assert len(seeds) % BATCH == 0  # whole transactions only
        assert {batch * BATCH + i for batch in committed for i in range(BATCH)} <= seeds
        resumed = store.missing("zc", [Key("arch", "q", seed, "cfg") for seed in range(len(seeds) + BATCH)])
        assert resumed == [Key("arch", "q", seed, "cfg") for seed in range(len(seeds), len(seeds) + BATCH)]
