"""Faults on the Ray engine (issue 19), on the real command: a Ray worker, the driver or a whole node
killed with kill -9 mid-run, and Ctrl-C. The run completes (or resumes with the same command), no
value is lost or stored twice, and no Ray process outlives the command that started it.

Each test starts its own Ray: the command's own (``--engine ray``), or a two-node cluster made of
``ray start --head`` and ``ray start --address`` on this machine. Ray is the optional extra
``robustnas[ray]``: skipped without it, a failure under CI=true.
"""
from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from robustnas.cli import main
from robustnas.scoring import scores

from test_engines import _require_ray
from test_faults import alive, finish, per_key_counts, rows, start, wait_until

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from /proc (Linux)")

FAULT_SCORE = ("score", "--proxies", "croze,synflow", "--archs", "sample:12", "--batch-size", "16", "--engine", "ray")


def ray_processes(name: str) -> list[int]:
    """Pids of live processes whose command line holds ``name`` (Ray names its task workers ``ray::TASK``)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if name in text and alive(int(cmdline.parent.name)):
            found.append(int(cmdline.parent.name))
    return found


def assert_no_ray_left(before: set[int], wait_s: float = 30.0) -> None:
    """No raylet but those in ``before`` within ``wait_s``: the Ray a command started ended with it."""
    deadline = time.monotonic() + wait_s
    while set(ray_processes("raylet")) - before and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not set(ray_processes("raylet")) - before, "the Ray the command started outlived it"


def ray_cli() -> str:
    _require_ray()
    return str(Path(sys.executable).with_name("ray"))


def start_scoring(tmp_path: Path, stored: int, running: str = "raylet") -> tuple[Path, set[int], subprocess.Popen]:
    """`robustnas score --engine ray` (a Ray of its own), returned once ``stored`` values are stored
    and a process named ``running`` lives: (run directory, the raylets that ran before, the command)."""
    _require_ray()
    out = tmp_path / "run"
    before = set(ray_processes("raylet"))
    command = start(*FAULT_SCORE, "--workers", "2", "--out", out)
    wait_until(lambda: rows(out / "store.sqlite") >= stored and ray_processes(running), f"{stored} stored values", command)
    return out, before, command


def test_a_killed_ray_worker_is_retried_and_the_run_stores_every_value_once(tmp_path):
    out, before, command = start_scoring(tmp_path, 2, running="ray::_run_chunk")
    os.kill(ray_processes("ray::_run_chunk")[0], signal.SIGKILL)
    assert command.wait(timeout=600) == 0, command.stderr.read()
    assert rows(out / "store.sqlite") == 12 * 2 and per_key_counts(out / "store.sqlite") == {1}
    assert_no_ray_left(before)


def test_a_killed_driver_leaves_no_ray_behind_and_the_rerun_computes_only_the_rest(tmp_path):
    out, before, command = start_scoring(tmp_path, 4)
    command.kill()
    command.wait()
    assert_no_ray_left(before)
    kept = rows(out / "store.sqlite")
    assert 0 < kept < 24 and kept % 2 == 0  # an architecture's values are stored together
    rerun = finish(*FAULT_SCORE, "--workers", "2", "--out", out)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{12 - kept // 2} computed now ({kept // 2} already stored)" in rerun.stdout
    assert rows(out / "store.sqlite") == 24 and per_key_counts(out / "store.sqlite") == {1}


@pytest.fixture
def two_node_cluster():
    """`ray start --head` plus a second `ray start --address` node of 1 CPU each, with token
    authentication as on a real cluster (one RAY_AUTH_TOKEN for the nodes and the driver); yields
    (address, the environment the driver needs, the second node's raylet pid); `ray stop --force`
    afterwards, so it does not run where another Ray runs."""
    ray = ray_cli()
    port = 6390 + os.getpid() % 500
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16)}
    before = set(ray_processes("raylet"))
    if before:
        message = "a Ray is running on this machine; the multi-node test would stop it (ray stop)"
        pytest.fail(message) if os.environ.get("CI", "").lower() == "true" else pytest.skip(message)

    def ray_start(*argv: str) -> None:
        started = subprocess.run([ray, "start", *argv], capture_output=True, text=True, env=env, timeout=180)
        assert started.returncode == 0, started.stderr[-2000:]

    try:
        ray_start("--head", f"--port={port}", "--num-cpus=1", "--include-dashboard=false", "--disable-usage-stats")
        head = set(ray_processes("raylet")) - before
        ray_start(f"--address=127.0.0.1:{port}", "--num-cpus=1")
        second = set(ray_processes("raylet")) - before - head
        assert len(second) == 1
        yield f"127.0.0.1:{port}", env, second.pop()
    finally:
        subprocess.run([ray, "stop", "--force"], capture_output=True, env=env, timeout=180)


def test_a_node_killed_mid_run_is_survived_on_the_other_node(two_node_cluster, tmp_path):
    address, env, second_raylet = two_node_cluster
    out = tmp_path / "run"
    command = start(*FAULT_SCORE, "--workers", "2", "--ray-address", address, "--out", out, env=env)
    wait_until(lambda: rows(out / "store.sqlite") >= 2, "stored values", command)
    os.kill(second_raylet, signal.SIGKILL)  # the node's workers die with their raylet
    assert command.wait(timeout=600) == 0, command.stderr.read()
    assert rows(out / "store.sqlite") == 24 and per_key_counts(out / "store.sqlite") == {1}
    assert not scores(out).isna().any().any()


def test_ctrl_c_stops_a_ray_run_at_once_keeping_what_is_stored(tmp_path):
    out, before, command = start_scoring(tmp_path, 2)
    os.killpg(command.pid, signal.SIGINT)  # the terminal's Ctrl-C goes to the whole process group
    code = command.wait(timeout=60)
    assert code == 130, command.stderr.read()[-3000:]
    kept = rows(out / "store.sqlite")
    assert 0 < kept < 24 and per_key_counts(out / "store.sqlite") == {1}
    assert command.stderr.read().strip().splitlines()[-1].startswith("robustnas: interrupted (Ctrl-C)")
    assert_no_ray_left(before)


def test_an_unreachable_cluster_is_one_line_at_once_and_creates_no_run(tmp_path, capsys):
    _require_ray()
    out = tmp_path / "run"
    assert main(["score", "--archs", "sample:1", "--proxies", "params", "--engine", "ray", "--ray-address",
                 "127.0.0.1:1", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("robustnas: error: cannot reach the Ray cluster at 127.0.0.1:1 (") and err.count("\n") == 1
    assert not out.exists()
