"""The search runner, ``robustnas search`` and the demo: budgets, resume, results, benchmark percentiles."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from robustnas.bench import Benchmark
from robustnas.cli import main
from robustnas.errors import RobustnasError
from robustnas.search._base import make_strategy
from robustnas.search._objectives import BenchmarkObjective
from robustnas.search._run import (
    SearchOutcome,
    Evaluation,
    SearchSettings,
    benchmark_record,
    best_evaluations,
    describe_result,
    percentile,
    run,
    search,
    write_result,
)
from robustnas.spaces import get as get_space
from robustnas.spaces.nb201 import NB201Arch
from robustnas.store import Store

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def bench():
    return Benchmark()


class Flaky:
    """An objective that dies after ``calls`` evaluations (a killed search), counting its calls."""

    def __init__(self, inner, calls: int | None = None) -> None:
        self.inner, self.calls, self.count = inner, calls, 0
        self.names = inner.names

    def config(self):
        return self.inner.config()

    def feasible(self, arch) -> bool:
        return True

    def __call__(self, arch):
        if self.calls is not None and self.count >= self.calls:
            raise KeyboardInterrupt
        self.count += 1
        return self.inner(arch)


# ---- pure functions ----------------------------------------------------------------------------
def test_percentile_is_mid_rank():
    population = np.array([1.0, 2.0, 2.0, 3.0])
    assert percentile(population, 2.0) == 50.0  # 1 below + 2 equal / 2 = 2 of 4
    assert percentile(population, 3.0) == 87.5
    assert percentile(population, 0.5) == 0.0
    assert percentile(population, 9.0) == 100.0


def test_benchmark_record_matches_the_tables(bench):
    arch = NB201Arch.parse("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|")
    record = benchmark_record(arch, "cifar10", bench)
    table = bench.table("cifar10")
    assert record["nb201_index"] == arch.isomorph_index
    assert record["clean"] == bench.query(arch, "cifar10", "clean")
    assert record["pgd@1"] == bench.query(arch, "cifar10", "pgd", eps=1.0)
    assert record["fgsm@8"] == bench.query(arch, "cifar10", "fgsm", eps=8.0)
    below = (table["pgd@1.0"] < record["pgd@1"]).sum()
    equal = (table["pgd@1.0"] == record["pgd@1"]).sum()
    assert record["pgd@1_percentile"] == pytest.approx(100 * (below + equal / 2) / 6466, abs=1e-12)
    corruption = [c for c in table.columns if c.split("@")[0] in ("fog", "gaussian_noise", "jpeg_compression")]
    assert len(corruption) == 15 and "corruptions" in record
    assert "corruptions" not in benchmark_record(arch, "ImageNet16-120", bench)


def test_best_of_several_objectives_is_the_pareto_front():
    values = [(1.0, 5.0), (2.0, 4.0), (1.5, 3.0), (2.0, 4.0), (-math.inf, 9.0)]
    outcome = SearchOutcome([Evaluation(i + 1, f"a{i}", v, False) for i, v in enumerate(values)])
    assert [e.arch for e in best_evaluations(outcome)] == ["a0", "a1", "a3"]
    single = SearchOutcome([Evaluation(i + 1, f"a{i}", (v,), False) for i, v in enumerate([1.0, 3.0, 3.0, 2.0])])
    assert [e.arch for e in best_evaluations(single)] == ["a1"]  # first of ties


# ---- the loop ----------------------------------------------------------------------------------
def test_random_search_on_the_oracle_finds_the_best_it_saw(tmp_path, bench):
    space = get_space("nb201")
    objective = BenchmarkObjective("pgd@1", "cifar10", bench)
    with Store(tmp_path / "s.sqlite") as store:
        outcome = search(make_strategy("random", space, 3), objective, 40, store)
    keys = [e.arch for e in outcome.evaluations]
    assert len(keys) == len(set(keys)) == 40 and [e.number for e in outcome.evaluations] == list(range(1, 41))
    truth = {k: bench.query(k, "cifar10", "pgd", eps=1.0) for k in keys}
    assert all(e.values == (truth[e.arch],) for e in outcome.evaluations)
    assert best_evaluations(outcome)[0].values[0] == max(truth.values())


def test_exhaustive_ranking_stops_when_the_space_is_done(tmp_path, bench):
    objective = BenchmarkObjective("clean", "cifar10", bench)
    with Store(tmp_path / "s.sqlite") as store:
        outcome = search(make_strategy("exhaustive", get_space("nb201"), 0), objective, 7000, store)
    best = best_evaluations(outcome)[0]
    assert len(outcome.evaluations) == 6466 and not outcome.stalled
    assert NB201Arch.parse(best.arch).index == 13714 and best.values == (0.946,)


def test_killed_search_resumes_to_the_same_result(tmp_path, bench):
    space = get_space("nb201")
    oracle = BenchmarkObjective("fgsm@8", "cifar10", bench)
    with Store(tmp_path / "whole.sqlite") as store:
        whole = search(make_strategy("warmup-move", space, 5, init_pool=10), oracle, 30, store)
    killed = Flaky(oracle, calls=17)
    with Store(tmp_path / "run.sqlite") as store, pytest.raises(KeyboardInterrupt):
        search(make_strategy("warmup-move", space, 5, init_pool=10), killed, 30, store)
    again = Flaky(oracle)
    with Store(tmp_path / "run.sqlite") as store:
        resumed = search(make_strategy("warmup-move", space, 5, init_pool=10), again, 30, store)
    assert again.count == 30 - 17  # the 17 stored evaluations were read, not computed
    assert [(e.arch, e.values) for e in resumed.evaluations] == [(e.arch, e.values) for e in whole.evaluations]
    assert [e.stored for e in resumed.evaluations] == [True] * 17 + [False] * 13


def test_latency_constraint_is_never_violated(tmp_path, bench):
    settings = SearchSettings(
        "nb201", "cifar10", "random", "bench:clean", 25, 0, max_latency_ms=4.0, latency_device="edgegpu"
    )
    result = run(settings, tmp_path / "run", progress=False)
    latency = bench.hw_nas_bench("cifar10")["edgegpu_latency"]
    chosen = NB201Arch.parse(result["best_arch"])
    assert result["infeasible_asked"] > 0 and latency[chosen.index] <= 4.0
    frame = (tmp_path / "run" / "trajectory.csv").read_text().splitlines()
    assert len(frame) == 26
    for line in frame[1:]:
        assert latency[NB201Arch.parse(line.split(",")[1]).index] <= 4.0


def test_result_json_is_strict_when_every_value_is_undefined(tmp_path):
    """-inf (undefined) values are written as null, never as the non-JSON -Infinity."""
    settings = SearchSettings("nb201", "cifar10", "random", "croze,params", 2, 0)
    arches = ["|avg_pool_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|",
              "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"]
    outcome = SearchOutcome([Evaluation(i + 1, a, (-math.inf, -math.inf), False) for i, a in enumerate(arches)])
    result = write_result(tmp_path, settings, outcome, ["croze", "params"], get_space("nb201"))
    text = (tmp_path / "result.json").read_text()
    assert "Infinity" not in text and json.loads(text)["best_value"] == {"croze": None, "params": None}
    assert [point["croze"] for point in result["pareto_front"]] == [None, None]
    assert "objective: croze undefined, params undefined (2 architectures" in describe_result(result)


# ---- the command -------------------------------------------------------------------------------
def cli(capsys, *args):
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_search_command_writes_result_and_trajectory(capsys, tmp_path, bench):
    out = tmp_path / "run"
    code, printed, _ = cli(
        capsys, "search", "--strategy", "evolution", "--objective", "bench:pgd@1", "--budget", "60", "--seed", "2",
        "--out", str(out),
    )
    result = json.loads((out / "result.json").read_text())
    assert code == 0 and result["evaluations"] == 60 and result["computed"] == 60
    assert {"best_arch", "evaluations", "wall_s", "benchmark"} <= set(result)
    assert result["benchmark"]["pgd@1"] == bench.query(result["best_arch"], "cifar10", "pgd", eps=1.0)
    assert result["best_arch"] in printed and "th percentile" in printed
    assert (out / "trajectory.png").stat().st_size > 10_000
    # the same command again: everything read from the store
    code, printed, _ = cli(capsys, "search", "--strategy", "evolution", "--objective", "bench:pgd@1", "--budget", "60",
                           "--seed", "2", "--json", "--out", str(out))
    assert code == 0 and json.loads((out / "result.json").read_text())["computed"] == 0
    assert json.loads(printed) == json.loads((out / "result.json").read_text())  # --json prints result.json


def test_two_objectives_need_nsga2_and_give_a_front(capsys, tmp_path, bench):
    code, _, err = cli(capsys, "search", "--objective", "bench:clean,latency:edgegpu", "--out", str(tmp_path / "a"))
    assert code == 2 and err.count("\n") == 1 and "--strategy nsga2" in err
    out = tmp_path / "b"
    code, printed, _ = cli(capsys, "search", "--strategy", "nsga2", "--objective", "bench:clean,latency:edgegpu",
                           "--budget", "30", "--out", str(out))
    result = json.loads((out / "result.json").read_text())
    front = result["pareto_front"]
    assert code == 0 and (out / "optuna.sqlite").exists() and "Pareto front" in printed
    assert result["best_value"]["bench:clean"] == max(member["bench:clean"] for member in front)
    latency = bench.hw_nas_bench("cifar10")["edgegpu_latency"]
    for member in front:
        index = NB201Arch.parse(member["arch"]).index
        assert member["latency:edgegpu"] == -latency[index]
        assert member["bench:clean"] == bench.query(index, "cifar10", "clean")


def test_proxies_come_from_stored_scoring_runs(capsys, tmp_path):
    """--scores with the same --data/--batch-size/--proxy-seed: no network is built, values are the run's."""
    import robustnas
    from robustnas.scoring import scores

    EMBEDDED_SAMPLE = Path(robustnas.__file__).parent / "_embedded" / "cifar10-sample.npz"

    common = ["--strategy", "random", "--objective", "synflow", "--budget", "3", "--seed", "4", "--batch-size", "8",
              "--proxy-seed", "1", "--data", str(EMBEDDED_SAMPLE)]
    code, _, _ = cli(capsys, "search", *common, "--out", str(tmp_path / "live"))
    live = json.loads((tmp_path / "live" / "result.json").read_text())
    assert code == 0 and live["networks_built"] == 3
    archs = (tmp_path / "live" / "trajectory.csv").read_text().splitlines()[1:]
    arch_file = tmp_path / "archs.txt"
    arch_file.write_text("".join(line.split(",")[1] + "\n" for line in archs))
    code, _, _ = cli(capsys, "score", "--proxies", "synflow", "--archs", str(arch_file), "--batch-size", "8",
                     "--seed", "1", "--data", str(EMBEDDED_SAMPLE), "--out", str(tmp_path / "scores"))
    assert code == 0
    code, _, _ = cli(capsys, "search", *common, "--scores", str(tmp_path / "scores"), "--out", str(tmp_path / "read"))
    read = json.loads((tmp_path / "read" / "result.json").read_text())
    stored = scores(tmp_path / "scores")["synflow"]
    assert code == 0 and read["networks_built"] == 0 and read["best_arch"] == live["best_arch"]
    assert read["best_value"]["synflow"] == live["best_value"]["synflow"] == stored.max()
    code, _, err = cli(capsys, "search", *common[:-4], "--scores", str(tmp_path / "scores"), "--out", str(tmp_path / "x"))
    assert code == 2 and err.count("\n") == 1 and "seed" in err


def test_resuming_with_other_settings_is_refused(capsys, tmp_path):
    out = str(tmp_path / "run")
    assert cli(capsys, "search", "--strategy", "random", "--objective", "bench:clean", "--budget", "3", "--out", out)[0] == 0
    code, _, err = cli(capsys, "search", "--strategy", "random", "--objective", "bench:fgsm@8", "--budget", "3",
                       "--out", out)
    assert code == 2 and err.count("\n") == 1 and "objective 'bench:clean' -> 'bench:fgsm@8'" in err


def test_strategy_options_are_settings(capsys, tmp_path, bench):
    """--strategy-option reaches the strategy, is kept in search.json and result.json, and a resume
    with other options is refused."""
    out = tmp_path / "run"

    def search_with(*options: str):
        argv = ["search", "--strategy", "evolution", "--objective", "bench:clean", "--budget", "6", "--out", str(out)]
        return cli(capsys, *argv, *(arg for option in options for arg in ("--strategy-option", option)))

    assert search_with("sample=2", "population=4", "sample=2")[0] == 2  # given twice
    assert not out.exists()
    assert search_with("sample=2", "population=4")[0] == 0
    trajectory = (out / "trajectory.csv").read_text()
    settings = json.loads((out / "search.json").read_text())
    assert settings["options"] == {"population": 4, "sample": 2}
    assert json.loads((out / "result.json").read_text())["settings"]["options"] == settings["options"]
    code, _, err = search_with("population=5", "sample=2")
    assert code == 2 and err.count("\n") == 1 and "options {'population': 4, 'sample': 2} -> {'population': 5" in err
    assert search_with("population=4", "sample=2")[0] == 0 and (out / "trajectory.csv").read_text() == trajectory
    with Store(tmp_path / "api.sqlite") as store:
        strategy = make_strategy("evolution", get_space("nb201"), 0, population=4, sample=2)
        outcome = search(strategy, BenchmarkObjective("clean", "cifar10", bench), 6, store)
    assert [line.split(",")[1] for line in trajectory.splitlines()[1:]] == [e.arch for e in outcome.evaluations]


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("popsize=4", "evolution has no option 'popsize'; evolution's options: population=50, sample=10"),
        ("population", "--strategy-option 'population' is not KEY=VALUE; evolution's options: population=50"),
        ("population=many", "evolution option population takes int, got 'many'; evolution's options"),
    ],
)
def test_bad_strategy_option_is_one_line_and_claims_nothing(capsys, tmp_path, option, message):
    out = tmp_path / "run"
    code, _, err = cli(capsys, "search", "--strategy", "evolution", "--strategy-option", option, "--out", str(out))
    assert code == 2 and err.count("\n") == 1 and message in err and not out.exists()


def test_search_help_lists_the_strategies_and_their_options(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "1000")  # no line breaks inside the help texts
    with pytest.raises(SystemExit):
        main(["search", "--help"])
    text = capsys.readouterr().out
    assert "{random,warmup-move,evolution,exhaustive,nsga2,mgda}" in text
    for expected in ("warmup-move: init_pool=50", "sample_pool=5", "evolution: population=50", "exhaustive: batch=100",
                     "nsga2: population=20", "study_name=robustnas-search", "nsga2: NSGA-II"):
        assert expected in text, expected


@pytest.mark.parametrize("space", ["darts", "arnas"])
def test_cell_space_search_writes_a_genotype_that_train_reads(capsys, tmp_path, space):
    from robustnas import spaces
    from robustnas.spaces._counting import count

    out = tmp_path / "run"
    code, printed, _ = cli(capsys, "search", "--space", space, "--strategy", "random", "--objective", "params",
                           "--budget", "2", "--batch-size", "2", "--out", str(out))
    result = json.loads((out / "result.json").read_text())
    genotype = spaces.parse(space, str(out / "best_genotype.json"))
    assert code == 0 and str(genotype) == result["best_arch"] and "robustnas train" in printed
    assert "benchmark" not in result
    params_m = count(spaces.build(space, genotype, "cifar10"), (1, 3, 32, 32)).params_m
    assert result["best_value"]["params"] == pytest.approx(params_m, rel=1e-12)


def test_demo_is_a_croze_search(capsys, tmp_path, bench):
    from robustnas._demo import run_demo

    result = run_demo(budget=3, seed=0, out=tmp_path / "demo")
    printed = capsys.readouterr().out
    assert result["settings"]["objective"] == "croze" and result["settings"]["strategy"] == "warmup-move"
    assert result["evaluations"] == 3 and result["best_arch"] in printed
    assert result["benchmark"]["clean"] == bench.query(result["best_arch"], "cifar10", "clean")


def test_nsga2_resume_with_a_constraint_keeps_the_budget(capsys, tmp_path):
    """Infeasible Optuna trials of a reopened study are not evaluations; the budget holds."""
    argv = ["search", "--strategy", "nsga2", "--objective", "bench:clean,bench:pgd@1", "--budget", "10",
            "--max-latency", "4", "--out", str(tmp_path / "run")]
    assert cli(capsys, *argv)[0] == 0
    first = json.loads((tmp_path / "run" / "result.json").read_text())
    assert cli(capsys, *argv)[0] == 0
    again = json.loads((tmp_path / "run" / "result.json").read_text())
    assert first["infeasible_asked"] > 0 and first["evaluations"] == again["evaluations"] == 10
    assert again["computed"] == 0
    rows = (tmp_path / "run" / "trajectory.csv").read_text()
    assert "inf" not in rows


def test_bad_input_does_not_claim_the_run_directory(capsys, tmp_path):
    out = str(tmp_path / "run")
    for bad in (["--max-latency", "nan"], ["--latency-device", "gpu"], ["--strategy", "exhaustive", "--budget", "7000"]):
        code, _, err = cli(capsys, "search", "--objective", "bench:clean", *bad, "--out", out)
        assert code == 2 and err.count("\n") == 1, bad
    assert "applies to --max-latency" in cli(capsys, "search", "--latency-device", "gpu", "--out", out)[2]
    assert "--budget <= 6466" in cli(capsys, "search", "--strategy", "exhaustive", "--budget", "7000",
                                     "--objective", "bench:clean", "--out", out)[2]
    assert not (tmp_path / "run" / "search.json").exists()
    assert cli(capsys, "search", "--strategy", "random", "--objective", "bench:clean", "--budget", "2", "--out", out)[0] == 0


def test_bad_budget_is_one_line(capsys, tmp_path):
    code, _, err = cli(capsys, "search", "--objective", "bench:clean", "--budget", "0", "--out", str(tmp_path / "r"))
    assert code == 2 and err.count("\n") == 1 and "--budget" in err
    with pytest.raises(RobustnasError, match="budget"):
        search(make_strategy("random", get_space("nb201"), 0), None, 0, None)


@pytest.mark.parametrize("kill_after", [2, 12])
def test_killed_nsga2_search_resumes_to_the_uninterrupted_result(capsys, tmp_path, monkeypatch, kill_after):
    """Issue 16, finding 2: a killed NSGA-II search resumed with the same command ends with the same
    evaluations, best architecture, front and trajectory, and its Optuna copy holds no RUNNING trial."""
    import optuna

    from robustnas.search._nsga2 import DEFAULT_STUDY

    def argv(out):
        return ["search", "--strategy", "nsga2", "--objective", "bench:clean,bench:pgd@1", "--budget", "40",
                "--seed", "3", "--out", str(tmp_path / out)]

    assert cli(capsys, *argv("whole"))[0] == 0
    real_call, calls = BenchmarkObjective.__call__, []

    def dies_after(self, arch):
        if len(calls) == 2 * kill_after:  # two objectives: two calls per evaluation
            raise KeyboardInterrupt
        calls.append(arch)
        return real_call(self, arch)

    monkeypatch.setattr(BenchmarkObjective, "__call__", dies_after)
    code, _, err = cli(capsys, *argv("killed"))
    assert code == 130 and err.count("\n") == 1
    monkeypatch.setattr(BenchmarkObjective, "__call__", real_call)
    assert cli(capsys, *argv("killed"))[0] == 0

    whole, resumed = (json.loads((tmp_path / d / "result.json").read_text()) for d in ("whole", "killed"))
    assert resumed["computed"] == 40 - kill_after
    for key in ("best_arch", "best_value", "pareto_front", "evaluations", "infeasible_asked"):
        assert resumed[key] == whole[key], key
    assert (tmp_path / "killed/trajectory.csv").read_text() == (tmp_path / "whole/trajectory.csv").read_text()
    trials = [
        [(t.state.name, t.params, t.values) for t in optuna.load_study(
            study_name=DEFAULT_STUDY, storage=f"sqlite:///{tmp_path / d / 'optuna.sqlite'}").get_trials()]
        for d in ("whole", "killed")
    ]
    assert trials[0] == trials[1] and {state for state, _, _ in trials[1]} == {"COMPLETE"}


def test_a_long_search_says_its_cost_before_it_starts(capsys, tmp_path, monkeypatch):
    """Issue 16: the proxies a search computes live are costed up front (hessian_eig: 168.5 passes each)."""
    import robustnas.scoring
    from robustnas.search._objectives import LiveProxies

    def stop(self, archs, names):  # before any proxy is computed
        raise KeyboardInterrupt

    monkeypatch.setattr(robustnas.scoring, "pass_seconds", lambda *args: 2.0)
    monkeypatch.setattr(LiveProxies, "prefetch", stop)
    code, _, err = cli(capsys, "search", "--objective", "hessian_eig", "--budget", "20", "--out", str(tmp_path / "r"))
    assert code == 130
    assert err.splitlines()[0] == (
        "robustnas: search: up to 20 architectures x 1 proxy will take about 112 min (one forward+backward here: 2.00 s)"
    )
    code, _, err = cli(capsys, "search", "--objective", "synflow", "--budget", "20", "--out", str(tmp_path / "s"))
    assert code == 130 and err.count("\n") == 1  # 20 x 0.15 passes: nothing to announce
