"""Fault injection on the real command (issue 16): kill -9, SIGTERM and Ctrl-C at a moment when work
is half done, and a full disk. Every command stops with one line and status 130/143/2, keeps what it
stored, leaves no process behind, and the same command afterwards finishes the run."""
from __future__ import annotations

import os
import resource
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from robustnas.cli import main

ROBUSTNAS = [sys.executable, "-m", "robustnas.cli"]
DEADLINE_S = 240.0  # a loaded 2-core machine is slow; the conditions below are reached in seconds otherwise


def start(*argv: object, **options) -> subprocess.Popen:
    """The command in its own process group (as a shell starts a job), output captured."""
    return subprocess.Popen(
        [*ROBUSTNAS, *map(str, argv)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True, **options,
    )


def finish(*argv: object) -> subprocess.CompletedProcess:
    return subprocess.run([*ROBUSTNAS, *map(str, argv)], capture_output=True, text=True, timeout=600)


def wait_until(condition, what: str, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        if process is not None and process.poll() is not None:
            pytest.fail(f"the command ended (status {process.returncode}) before {what}: {process.stderr.read()}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def children(pid: int) -> list[int]:
    """Live child processes of ``pid`` (from /proc: Linux)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found


def alive(pid: int) -> bool:
    """Running (an exited process is gone or a zombie nobody reaped)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def rows(store: Path, run: str | None = None) -> int:
    if not store.exists():
        return 0
    with sqlite3.connect(store, timeout=30) as conn:
        try:
            where, args = ("WHERE run = ?", (run,)) if run else ("", ())
            return conn.execute(f"SELECT count(*) FROM results {where}", args).fetchone()[0]
        except sqlite3.OperationalError:  # the schema is not there yet
            return 0


def per_key_counts(store: Path) -> set[int]:
    with sqlite3.connect(store) as conn:
        return {n for (n,) in conn.execute("SELECT count(*) FROM results GROUP BY run, arch, quantity, seed, config")}


SCORE = ("score", "--proxies", "croze,synflow", "--archs", "sample:16", "--workers", "2")


# ---- finding 1: workers of a killed command ------------------------------------------------------
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from /proc (Linux)")
def test_workers_exit_when_their_command_is_killed_and_the_rerun_stores_each_value_once(tmp_path):
    """Issue 16, finding 1: after kill -9 of `score --workers 2` both workers stayed alive for an hour."""
    out = tmp_path / "run"
    command = start(*SCORE, "--out", out)
    wait_until(lambda: len(children(command.pid)) == 2 and rows(out / "store.sqlite") >= 2, "2 workers and a value", command)
    workers = children(command.pid)
    command.kill()
    command.wait()
    deadline = time.monotonic() + 10
    while any(map(alive, workers)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(map(alive, workers)), "worker processes outlived their killed command"
    kept = rows(out / "store.sqlite")
    assert 0 < kept < 32, "the kill must land midway"
    assert finish(*SCORE, "--out", out).returncode == 0
    assert rows(out / "store.sqlite") == 16 * 2 and per_key_counts(out / "store.sqlite") == {1}


# ---- SIGTERM and Ctrl-C, per command -------------------------------------------------------------
@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A finished tiny training run (the checkpoint evaluate reads)."""
    out = tmp_path_factory.mktemp("trained") / "run"
    assert main([*TRAIN, "--epochs", "1", "--out", str(out)]) == 0
    return out


TRAIN = ("train", "--arch", "13433", "--batch-size", "32", "--holdout", "32", "--limit", "96", "--seed", "1")


def command_cases(trained: Path, tmp_path: Path):
    """name -> (argv, condition meaning 'work is half done and stored', count of what is stored)."""
    out = tmp_path / "out"
    store = out / "store.sqlite"
    evaluation = tmp_path / "evaluation"
    return {
        "score": ((*SCORE, "--out", out), lambda: rows(store) >= 2, lambda: rows(store)),
        "search": (
            ("search", "--strategy", "random", "--objective", "croze", "--budget", "6", "--out", out),
            lambda: rows(store, "search") >= 1, lambda: rows(store, "search"),
        ),
        "train": (
            (*TRAIN, "--epochs", "2", "--out", out),
            lambda: (out / "log.csv").exists(),  # written after the epoch's checkpoint
            lambda: len((out / "log.csv").read_text().splitlines()),
        ),
        "evaluate": (
            ("evaluate", "--checkpoint", trained, "--suite", "clean,fgsm,pgd20", "--n", "32", "--out", evaluation),
            lambda: rows(evaluation / "store.sqlite") >= 1, lambda: rows(evaluation / "store.sqlite"),
        ),
    }


@pytest.mark.parametrize("command_name", ["score", "search", "train", "evaluate"])
@pytest.mark.parametrize("stop, status, message", [
    ("ctrl-c", 130, "robustnas: interrupted (Ctrl-C); what was already stored is kept; the same command resumes"),
    ("sigterm", 143, "robustnas: terminated (SIGTERM); what was already stored is kept; the same command resumes"),
], ids=["ctrl-c", "sigterm"])
def test_a_stopped_command_says_one_line_keeps_its_work_and_resumes(
    trained, tmp_path, command_name, stop, status, message
):
    argv, half_done, stored = command_cases(trained, tmp_path)[command_name]
    command = start(*argv)
    wait_until(half_done, "half the work stored", command)
    if stop == "ctrl-c":  # the terminal sends SIGINT to the whole foreground process group
        os.killpg(command.pid, signal.SIGINT)
    else:
        command.terminate()
    kept_at_stop = stored()
    _, err = command.communicate(timeout=60)
    assert command.returncode == status, err
    assert err.splitlines()[-1] == message and "Traceback" not in err, err
    assert stored() >= kept_at_stop > 0
    assert not children(command.pid)
    resumed = finish(*argv)
    assert resumed.returncode == 0, resumed.stderr


# ---- a full disk ------------------------------------------------------------------------------------
def _file_size_limit(limit: int):
    def apply() -> None:  # in the child: writes past ``limit`` bytes fail (EFBIG) like a full disk
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_a_full_disk_is_one_line_naming_the_store_and_the_run_resumes(tmp_path):
    out = tmp_path / "run"
    argv = ("score", "--proxies", "params", "--archs", "sample:60", "--out", out)
    full = subprocess.run(
        [*ROBUSTNAS, *map(str, argv)], capture_output=True, text=True, preexec_fn=_file_size_limit(100_000)
    )
    assert full.returncode == 2 and full.stderr.count("\n") == 1, full.stderr
    assert full.stderr.startswith(f"robustnas: error: cannot write {out / 'store.sqlite'} (")
    kept = rows(out / "store.sqlite")
    assert 0 < kept < 60
    with sqlite3.connect(out / "store.sqlite") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert finish(*argv).returncode == 0
    assert rows(out / "store.sqlite") == 60


def test_a_full_disk_while_writing_a_file_names_the_file(tmp_path):
    """An atomic write that fails names its target (a failed write named no file: 'No space left on device: None')."""
    target = tmp_path / "result.json"
    target.write_text("old")
    code = (
        "import errno, sys\n"
        "from robustnas._files import replace_file\n"
        "try:\n"
        f"    replace_file({str(target)!r}, 'x' * 100)\n"
        "except OSError as error:\n"
        "    sys.exit(0 if (error.filename, error.errno) == (sys.argv[1], errno.EFBIG) else 1)\n"
        "sys.exit(2)\n"
    )
    child = subprocess.run([sys.executable, "-c", code, str(target)], preexec_fn=_file_size_limit(10))
    assert child.returncode == 0
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["result.json"]


def test_a_full_disk_while_saving_a_checkpoint_is_one_line_naming_it(tmp_path):
    """torch.save on a full disk raised a RuntimeError traceback ('unexpected pos ...', exit 1)."""
    out = tmp_path / "run"
    full = subprocess.run(
        [*ROBUSTNAS, *map(str, TRAIN), "--epochs", "1", "--out", str(out)], capture_output=True, text=True,
        preexec_fn=_file_size_limit(20_000),
    )
    assert full.returncode == 2, full.stderr
    assert full.stderr.splitlines()[-1] == f"robustnas: error: File too large: {out / 'checkpoint.pt'}"
    assert "Traceback" not in full.stderr and not list(out.glob(".*partial"))


def test_a_reader_that_stops_early_is_not_an_error():
    """`robustnas ... | head -1` printed 'robustnas: error: Broken pipe' with status 2."""
    command = subprocess.Popen([*ROBUSTNAS, "arch", "sample", "-n", "20000"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    assert command.stdout.readline().startswith("|")
    command.stdout.close()
    assert command.wait(timeout=120) == 141 and command.stderr.read() == ""


def test_a_second_command_on_a_busy_folder_is_one_line_and_the_first_finishes(tmp_path):
    """Two searches on one --out: the second failed with 'table studies already exists' and advice to install PostgreSQL."""
    out = tmp_path / "run"
    argv = ("search", "--strategy", "nsga2", "--objective", "croze,synflow", "--budget", "6", "--out", out)
    first = start(*argv)
    wait_until(lambda: rows(out / "store.sqlite", "search") >= 1, "the first search's first evaluation", first)
    second = finish(*argv)
    assert second.returncode == 2
    assert second.stderr == f"robustnas: error: {out} is in use by another robustnas command; wait for it to end or give another --out\n"
    assert first.wait(timeout=600) == 0
    assert finish(*argv).returncode == 0  # the lock went with the first command
