"""Scoring runs: stored values equal direct computation, resume after kill -9, shards, export."""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from robustnas.cli import main
from robustnas.data import load_dataset, normalization, sample_batch
from robustnas.proxies import score
from robustnas.scoring import arch_seed
from robustnas.spaces import build

CHEAP = "params,flops,grad_norm,snip"


def run_cli(*argv: str) -> int:
    return main([str(a) for a in argv])


def exported(run_dir: Path, tmp_path: Path) -> pd.DataFrame:
    out = tmp_path / f"{run_dir.name}.csv"
    assert run_cli("export", run_dir, "--out", out) == 0
    return pd.read_csv(out).set_index("arch").sort_index()


def test_stored_values_equal_direct_computation(tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert run_cli("score", "--archs", "sample:3", "--proxies", CHEAP, "--batch-size", "8", "--seed", "5", "--out", run_dir) == 0
    table = exported(run_dir, tmp_path)
    assert list(table.columns) == ["params", "flops", "grad_norm", "snip"]
    x, y = sample_batch(load_dataset(), 8, seed=5, augment=True)
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in normalization("cifar10"))
    for arch, row in table.iterrows():
        torch.manual_seed(arch_seed(5, arch))
        values = score(build("nb201", arch), (x - mean) / std, y, proxies=CHEAP, seed=5)
        assert [values[p] for p in table.columns] == pytest.approx(list(row), rel=1e-12)
    assert "3 architectures, 3 computed now" in capsys.readouterr().out


def test_runs_are_deterministic_and_shards_merge_to_the_full_run(tmp_path):
    common = ["score", "--archs", "sample:6", "--proxies", CHEAP, "--batch-size", "8"]
    assert run_cli(*common, "--out", tmp_path / "full") == 0
    assert run_cli(*common, "--out", tmp_path / "again") == 0
    for i in range(3):
        assert run_cli(*common, "--shard", f"{i}/3", "--out", tmp_path / f"shard{i}") == 0
    assert run_cli("merge", *(tmp_path / f"shard{i}" for i in range(3)), "--out", tmp_path / "merged") == 0
    full = exported(tmp_path / "full", tmp_path)
    pd.testing.assert_frame_equal(full, exported(tmp_path / "again", tmp_path), check_exact=True)
    pd.testing.assert_frame_equal(full, exported(tmp_path / "merged", tmp_path), check_exact=True)
    assert len(full) == 6


def _stored_rows(store: Path) -> int:
    try:
        with sqlite3.connect(store) as db:
            return db.execute("SELECT COUNT(*) FROM results").fetchone()[0]
    except sqlite3.Error:
        return 0


def test_kill_9_midway_then_resume_loses_and_duplicates_nothing(tmp_path):
    archs = 24
    argv = [sys.executable, "-m", "robustnas.cli", "score", "--archs", f"sample:{archs}", "--proxies", CHEAP,
            "--batch-size", "8", "--out"]
    killed = tmp_path / "killed"
    child = subprocess.Popen([*argv, str(killed)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while _stored_rows(killed / "store.sqlite") < 4 * 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    partial = _stored_rows(killed / "store.sqlite")
    assert 0 < partial < archs * 4, "the kill must land midway"
    assert subprocess.run([*argv, str(killed)], capture_output=True).returncode == 0
    assert subprocess.run([*argv, str(tmp_path / "clean")], capture_output=True).returncode == 0
    assert _stored_rows(killed / "store.sqlite") == archs * 4
    pd.testing.assert_frame_equal(exported(killed, tmp_path), exported(tmp_path / "clean", tmp_path), check_exact=True)


def test_archs_file_accepts_every_form_and_names_the_bad_line(tmp_path, capsys):
    good = tmp_path / "archs.txt"
    good.write_text("# my picks\n13433\n(0, 2, 3, 2, 3, 1)\n|nor_conv_3x3~0|+|none~0|skip_connect~1|+|skip_connect~0|none~1|nor_conv_1x1~2|\n13433\n")
    assert run_cli("score", "--archs", good, "--proxies", "params", "--out", tmp_path / "run") == 0
    assert len(exported(tmp_path / "run", tmp_path)) == 3
    bad = tmp_path / "bad.txt"
    bad.write_text("13433\n(0, 2)\n")
    assert run_cli("score", "--archs", bad, "--proxies", "params", "--out", tmp_path / "bad") == 2
    assert f"{bad}:2:" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--archs", "sample:0"], "positive N"),
        (["--archs", "nothing.txt"], "not all, unique, sample:N or an existing file"),
        (["--shard", "3/3"], "0 <= i < N"),
        (["--proxies", "snipp"], "unknown proxy snipp"),
        (["--dataset", "cifar100"], "give --data for cifar100"),
        (["--space", "darts", "--archs", "unique"], "only for enumerable spaces"),
        (["--workers", "0"], "--workers must be >= 1"),
    ],
)
def test_bad_arguments_are_one_line_errors(tmp_path, capsys, argv, message):
    assert run_cli("score", "--archs", "sample:1", "--proxies", "params", "--out", tmp_path / "r", *argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_changed_settings_on_resume_are_refused(tmp_path, capsys):
    assert run_cli("score", "--archs", "sample:1", "--proxies", "params", "--out", tmp_path / "r") == 0
    assert run_cli("score", "--archs", "sample:1", "--proxies", "params", "--batch-size", "32", "--out", tmp_path / "r") == 2
    assert "batch_size 64 -> 32" in capsys.readouterr().err


def test_export_and_merge_errors(tmp_path, capsys):
    assert run_cli("export", tmp_path, "--out", tmp_path / "x.csv") == 2
    assert "is not a scoring run directory" in capsys.readouterr().err
    assert run_cli("score", "--archs", "sample:1", "--proxies", "params", "--out", tmp_path / "r") == 0
    assert run_cli("export", tmp_path / "r", "--out", tmp_path / "x.xlsx") == 2
    assert ".csv or .parquet" in capsys.readouterr().err
    assert run_cli("score", "--archs", "sample:1", "--proxies", "params", "--seed", "1", "--out", tmp_path / "s") == 0
    assert run_cli("merge", tmp_path / "r", tmp_path / "s", "--out", tmp_path / "m") == 2
    assert "differ in seed (run.json)" in capsys.readouterr().err


def test_parquet_export_and_darts_sampling(tmp_path):
    assert run_cli("score", "--space", "darts", "--archs", "sample:1", "--proxies", "params", "--out", tmp_path / "d") == 0
    out = tmp_path / "d.parquet"
    assert run_cli("export", tmp_path / "d", "--out", out) == 0
    table = pd.read_parquet(out)
    assert table["arch"].iloc[0].startswith("Genotype(normal=") and 1.0 < table["params"].iloc[0] < 6.0


def test_worker_processes_give_the_same_values(tmp_path):
    common = ["score", "--archs", "sample:4", "--proxies", CHEAP, "--batch-size", "8"]
    assert run_cli(*common, "--out", tmp_path / "one") == 0
    assert run_cli(*common, "--workers", "2", "--out", tmp_path / "two") == 0
    # other thread counts may change float rounding, never the values beyond it
    pd.testing.assert_frame_equal(exported(tmp_path / "one", tmp_path), exported(tmp_path / "two", tmp_path), rtol=1e-5)


def test_failed_start_leaves_no_run_directory_behind(tmp_path, capsys):
    # a batch larger than the embedded sample fails before RUN_DIR is created
    assert run_cli("score", "--archs", "sample:1", "--proxies", "params", "--batch-size", "100000", "--out", tmp_path / "r") == 2
    assert not (tmp_path / "r").exists()
    assert run_cli("score", "--archs", "sample:1", "--proxies", "params", "--seed", "-1", "--out", tmp_path / "r") == 2
    assert "--seed must be in 0..4294967295, got -1" in capsys.readouterr().err
    assert run_cli("score", "--archs", "sample:1", "--proxies", "params", "--out", tmp_path / "r") == 0


def test_merge_refuses_an_out_holding_another_run(tmp_path, capsys):
    assert run_cli("score", "--archs", "sample:1", "--proxies", "params", "--out", tmp_path / "a") == 0
    assert run_cli("score", "--archs", "sample:1", "--proxies", "params", "--seed", "2", "--out", tmp_path / "b") == 0
    assert run_cli("merge", tmp_path / "a", "--out", tmp_path / "b") == 2
    assert "differ in seed (run.json)" in capsys.readouterr().err


def test_unreadable_files_are_one_line_errors(tmp_path, capsys):
    binary = tmp_path / "archs.bin"
    binary.write_bytes(b"\xff\xfe\x00\x81")
    assert run_cli("score", "--archs", binary, "--proxies", "params", "--out", tmp_path / "r") == 2
    assert "not a UTF-8 text file" in capsys.readouterr().err
    assert run_cli("score", "--archs", "sample:1", "--proxies", "params", "--out", tmp_path / "r") == 0
    (tmp_path / "r" / "run.json").write_text("{broken")
    assert run_cli("score", "--archs", "sample:1", "--proxies", "params", "--out", tmp_path / "r") == 2
    assert "unreadable settings" in capsys.readouterr().err
    a_file = tmp_path / "file"
    a_file.write_text("x")
    assert run_cli("score", "--archs", "sample:1", "--proxies", "params", "--out", a_file) == 2
    err = capsys.readouterr().err
    assert err.startswith("robustnas: error: ") and str(a_file) in err and err.count("\n") == 1


def test_progress_logs_lines_when_not_a_terminal(capsys, monkeypatch):
    from robustnas._progress import LoopProgress

    monkeypatch.setattr(LoopProgress, "LOG_EVERY_S", 0.0)
    with LoopProgress("scoring", total=4, done=1) as advance:
        advance()
        advance()
    with LoopProgress("search", total=2, unit="eval", enabled=False) as advance:
        advance()
    err = capsys.readouterr().err
    assert "scoring: 2/4 (" in err and "scoring: 3/4 (" in err and "arch/s, about" in err and " s left)" in err
    assert "search" not in err  # disabled: silent


@pytest.mark.parametrize(
    "items, seconds, text",
    [
        (5, 2.0, "2.50 arch/s"),
        (1, 1.0, "1.00 arch/s"),
        (3, 7.0, "2.3 s/arch"),  # below one per second: seconds per item (issue 16: was "0.43 arch/s")
        (1, 386.0, "386 s/arch"),  # was "0.00 arch/s"
        (20, 2580.0, "129 s/arch"),
    ],
)
def test_rate_reads_as_seconds_per_item_below_one_per_second(items, seconds, text):
    from robustnas._progress import format_rate

    assert format_rate(items, seconds, "arch") == text


@pytest.mark.parametrize(
    "seconds, text", [(0.4, "0 s"), (89.4, "89 s"), (300, "5 min"), (2580, "43 min"), (8100, "2 h 15 min"), (7199, "2 h 00 min")]
)
def test_durations_read_in_seconds_minutes_or_hours(seconds, text):
    from robustnas._progress import format_duration

    assert format_duration(seconds) == text


def test_cost_notice_names_the_dominant_proxy_and_stays_quiet_for_short_runs():
    from robustnas.scoring import cost_notice

    passes = {"croze": 1.22, "hessian_eig": 168.5, "synflow": 0.15}
    # 2 archs x 169.87 passes x 0.4 s = 135.9 s; without hessian_eig 1.1 s
    assert cost_notice(passes, 2, 1, 0.4) == (
        "scoring 2 architectures x 3 proxies will take about 2 min on 1 worker (one forward+backward here: "
        "0.40 s; hessian_eig alone is ~168.5 of them per network: without it about 1 s)"
    )
    assert cost_notice(passes, 2, 2, 0.4) is None  # 68 s on 2 workers: short, nothing said
    assert cost_notice({"croze": 1.22, "synflow": 0.15}, 1000, 4, 0.4).endswith("on 4 workers (one forward+backward here: 0.40 s)")


def test_all_proxies_say_their_cost_before_they_start(tmp_path, capsys, monkeypatch):
    """Issue 16, finding 3: --proxies all on 2 NB201 networks took 773 s without a word up front."""
    import robustnas.scoring as scoring
    from robustnas.executors import LocalExecutor

    monkeypatch.setattr(scoring, "pass_seconds", lambda *args: 0.4)  # this machine's speed does not matter
    monkeypatch.setattr(LocalExecutor, "map_unordered", lambda *args: (result for result in ()))  # stop before computing
    assert run_cli("score", "--proxies", "all", "--archs", "sample:2", "--out", tmp_path / "run") == 0
    err = capsys.readouterr().err
    assert err.startswith("robustnas: scoring 2 architectures x 16 proxies will take about 2 min on 1 worker")
    assert "hessian_eig alone is ~168.5 of them per network" in err
