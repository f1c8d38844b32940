"""The executor seam (robustnas.executors, issue 19): the local pool and Ray give the same values for
score, search and evaluate; a killed Ray worker, driver or node loses and duplicates nothing.

Ray is the optional extra ``robustnas[ray]``: these tests skip without it, except under CI=true
(``make test`` installs it), where its absence is a failure. The tests here share one local Ray
started in this process; the fault tests (test_engines_faults.py) start their own.
"""
from __future__ import annotations

import math
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from robustnas.errors import RobustnasError
from robustnas.executors import Failed, LocalExecutor, RayExecutor, chunk_size, make_executor
from robustnas.scoring import ScoreSettings, run_scoring, scores, select_archs


def _require_ray():
    try:
        import ray
    except ImportError:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("ray is not installed -- required under CI=true (make test installs robustnas[ray])")
        pytest.skip("ray is not installed (pip install 'robustnas[ray]')")
    return ray


def _square(shared: int, item: int) -> int:
    return shared * item * item


def _fail_on_three(shared: None, item: int) -> int:
    if item == 3:
        raise ValueError("three is not allowed")
    return item


# ---- the seam without Ray ------------------------------------------------------------------------
def test_chunks_shrink_towards_the_end_and_hold_at_most_eight_items():
    assert chunk_size(100, 2) == 8  # ceil(100 / 8) = 13, capped at 8
    assert chunk_size(16, 2) == 2
    assert chunk_size(3, 4) == 1
    sizes, remaining = [], 100
    while remaining:
        sizes.append(chunk_size(remaining, 2))
        remaining -= sizes[-1]
    assert sizes == [8] * 6 + [7, 6, 5, 5, 4, 4, 3, 3, 2, 2, 2, 2] + [1] * 7  # 25 tasks for 100 items


@pytest.mark.parametrize("workers", [1, 2])
def test_the_local_executor_yields_every_item_once_with_its_index(workers):
    with LocalExecutor(workers, threads=1) as executor:
        results = dict(executor.map_unordered(_square, list(range(7)), 3))
        assert results == {i: 3 * i * i for i in range(7)}
        assert dict(executor.map_unordered(_square, [5], 3)) == {0: 75}  # the same pool again


def test_engine_choices_are_one_line_errors():
    with pytest.raises(RobustnasError, match="unknown --engine 'dask'; choose local or ray"):
        make_executor("dask")
    with pytest.raises(RobustnasError, match="--ray-address needs --engine ray"):
        make_executor("local", address="auto")
    with pytest.raises(RobustnasError, match="--workers must be >= 1, got 0"):
        make_executor("local", 0)


def test_ray_missing_is_one_line_naming_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    with pytest.raises(RobustnasError, match=r"--engine ray needs Ray: pip install 'robustnas\[ray\]'"):
        make_executor("ray", 2)


def test_an_out_of_memory_network_is_stored_as_undefined_with_the_reason(tmp_path, monkeypatch):
    import robustnas.scoring as scoring

    def out_of_memory(settings, x, y, arch, proxies):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(scoring, "score_arch", out_of_memory)
    settings = ScoreSettings("nb201", "cifar10", None, ("params", "snip"), 8, 0)
    run_scoring(settings, select_archs("nb201", "sample:2", 0), tmp_path / "run")
    from robustnas.store import Store

    with Store(tmp_path / "run" / "store.sqlite", readonly=True) as store:
        frame = store.frame("score")
    assert len(frame) == 4 and frame["value"].isna().all()
    assert set(frame["note"]) == {"out of memory: CUDA out of memory. Tried to allocate 2.00 GiB"}


def test_a_parallel_evaluation_stores_an_out_of_memory_item_as_undefined(monkeypatch):
    import robustnas.evaluation as evaluation

    real = evaluation._corruption_accuracy

    def fog_runs_out_of_memory(model, pixels, settings, batch_size, name, severity):
        if name == "fog":
            raise torch.OutOfMemoryError("CUDA out of memory.")
        return real(model, pixels, settings, batch_size, name, severity)

    monkeypatch.setattr(evaluation, "_corruption_accuracy", fog_runs_out_of_memory)
    notes = {}
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 10))
    images, labels = np.zeros((4, 8, 8, 3), dtype=np.uint8), np.arange(4)
    result = evaluation.evaluate(model, images, labels, "clean,corruptions", progress=False, executor=LocalExecutor(1),
                                 on_value=lambda quantity, value, note: notes.update({quantity: note}))
    assert all(math.isnan(value) for value in result["corruption_accuracy"]["fog"].values())
    assert 0 <= result["corruption_accuracy"]["snow"]["1"] <= 1 and 0 <= result["clean"] <= 1  # the rest computed
    assert notes["corruption:fog:3"] == "out of memory: CUDA out of memory." and math.isnan(result["corruptions"])


# ---- Ray in this process -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ray_here():
    """A local Ray for this module (the executors use an initialised Ray as it is)."""
    ray = _require_ray()
    here = {"env_vars": {"PYTHONPATH": str(Path(__file__).parent)}}  # the workers import this module's tasks
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING", runtime_env=here)
    yield ray
    ray.shutdown()


def test_ray_yields_every_item_once_and_the_task_errors_stop_the_run(ray_here):
    with RayExecutor(2, threads=1) as executor:
        assert dict(executor.map_unordered(_square, list(range(19)), 2)) == {i: 2 * i * i for i in range(19)}
        with pytest.raises(ValueError, match="three is not allowed"):  # not retried, not swallowed
            list(executor.map_unordered(_fail_on_three, list(range(6)), None))
    assert ray_here.is_initialized()  # a Ray it did not start is left running


SCORE_ARCHS = 2


def test_score_on_ray_equals_the_local_pool_bit_for_bit_for_every_proxy(ray_here, tmp_path):
    from robustnas.proxies import resolve

    settings = ScoreSettings("nb201", "cifar10", None, tuple(resolve("all")), 8, 0)
    archs = select_archs("nb201", f"sample:{SCORE_ARCHS}", 0)
    local = run_scoring(settings, archs, tmp_path / "local", workers=2)
    on_ray = run_scoring(settings, archs, tmp_path / "ray", workers=2, engine="ray")
    assert (local["engine"], on_ray["engine"], on_ray["computed"]) == ("local", "ray", SCORE_ARCHS)
    expected, got = scores(tmp_path / "local"), scores(tmp_path / "ray")
    assert got.shape == (SCORE_ARCHS, 16)
    pd.testing.assert_frame_equal(got.sort_index(), expected.sort_index(), check_exact=True)


@pytest.mark.parametrize(
    "strategy, options", [("warmup-move", ["init_pool=4", "sample_pool=3"]), ("evolution", ["population=4", "sample=2"])]
)
def test_a_search_on_ray_equals_the_local_pool(ray_here, tmp_path, strategy, options):
    from robustnas.search._run import SearchSettings, run

    settings = SearchSettings("nb201", "cifar10", strategy, objective="croze", budget=8, seed=3, batch_size=8,
                              options={k: int(v) for k, v in (option.split("=") for option in options)})
    local = run(settings, tmp_path / "local", workers=2, progress=False)
    on_ray = run(settings, tmp_path / "ray", workers=2, engine="ray", progress=False)
    trajectory = [(tmp_path / name / "trajectory.csv").read_text() for name in ("local", "ray")]
    assert trajectory[0] == trajectory[1] and trajectory[0].count("\n") == 9
    assert (local["best_arch"], local["best_value"]) == (on_ray["best_arch"], on_ray["best_value"])
    assert on_ray["networks_built"] == 8


def test_evaluate_on_ray_equals_the_sequential_evaluation(ray_here):
    from robustnas.evaluation import evaluate

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                                torch.nn.Flatten(), torch.nn.Linear(4, 10))
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (12, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, 12)
    suite = "clean,fgsm,corruptions"
    sequential = evaluate(model, images, labels, suite, batch_size=6, progress=False)
    with make_executor("ray", 2) as executor:
        parallel = evaluate(model, images, labels, suite, batch_size=6, progress=False, executor=executor)
    assert parallel == sequential
    assert sequential["corruption_accuracy"]["fog"]["3"] is not None and sequential["sanity"] is not None


def test_a_chunk_killed_by_rays_memory_monitor_comes_back_as_failed_items(ray_here, monkeypatch):
    from ray import exceptions

    def killed(refs):
        raise exceptions.OutOfMemoryError("Task was killed due to the node running low on memory.")

    monkeypatch.setattr(ray_here, "get", killed)
    with RayExecutor(1, threads=1) as executor:
        results = dict(executor.map_unordered(_square, [1, 2], 1))
    reason = "out of memory: Task was killed due to the node running low on memory. (Ray's memory monitor stopped the worker)"
    assert results == {0: Failed(reason), 1: Failed(reason)}


# ---- the command line ----------------------------------------------------------------------------
def test_mgda_refuses_the_engine_options_in_one_line(capsys):
    from robustnas.cli import main

    for extra in (["--workers", "2"], ["--engine", "ray"], ["--ray-address", "auto"]):
        assert main(["search", "--strategy", "mgda", "--dry-run", "--out", "x", *extra]) == 2
        err = capsys.readouterr().err
        assert "--workers, --engine and --ray-address do not apply to --strategy mgda" in err and err.count("\n") == 1


def test_an_ask_tell_dry_run_names_the_engine_and_starts_nothing(capsys, monkeypatch):
    import json

    from robustnas.cli import main

    ray = _require_ray()
    monkeypatch.setattr(ray, "init", lambda *args, **kwargs: pytest.fail("a dry run started Ray"))
    assert main(["search", "--strategy", "evolution", "--engine", "ray", "--workers", "4", "--dry-run", "--json",
                 "--out", "x"]) == 0
    planned = json.loads(capsys.readouterr().out)
    assert (planned["engine"], planned["workers"], planned["address"]) == ("ray", 4, "local")


def test_evaluate_on_ray_stores_what_the_sequential_command_stores(tmp_path):
    from robustnas.cli import main
    from robustnas.store import Store

    _require_ray()
    run = tmp_path / "trained"
    assert main(["train", "--arch", "13433", "--batch-size", "32", "--holdout", "32", "--limit", "64", "--epochs", "1",
                 "--seed", "1", "--out", str(run)]) == 0
    common = ["evaluate", "--checkpoint", str(run), "--suite", "clean,corruptions", "--n", "16", "--batch-size", "16"]
    assert main([*common, "--out", str(tmp_path / "one")]) == 0
    assert main([*common, "--engine", "ray", "--workers", "2", "--out", str(tmp_path / "ray")]) == 0
    frames = []
    for name in ("one", "ray"):
        with Store(tmp_path / name / "store.sqlite", readonly=True) as store:
            frames.append(store.frame("evaluate").sort_values("quantity").reset_index(drop=True)[["quantity", "value"]])
    assert len(frames[0]) == 1 + 75 + 1
    pd.testing.assert_frame_equal(frames[1], frames[0], check_exact=True)
    assert (tmp_path / "ray" / "evaluation.md").read_text().count("| fog |") == 1
