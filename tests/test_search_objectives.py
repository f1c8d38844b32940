"""Search objectives: live proxies equal `robustnas score` bit for bit, signs, weights, predictor,
benchmark, latency constraint and the --objective grammar."""
from __future__ import annotations

import math
import random
import re
import warnings
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from robustnas.bench import Benchmark
from robustnas.errors import RobustnasError
from robustnas.predict import Predictor
from robustnas.scoring import ScoreSettings, run_scoring, scores
from robustnas.search._objectives import (
    UNDEFINED, BenchmarkObjective, Combined, Constrained, LatencyObjective, LiveProxies, PredictorObjective,
    ProxyObjective, TableProxies, WeightedProxies, parse_objective,
)
from robustnas.spaces import get as get_space
from robustnas.spaces.nb201 import NB201Arch, graph_features
from robustnas.store import Key, Store, config_hash

SPACE = get_space("nb201")
SETTINGS = ScoreSettings("nb201", "cifar10", None, ("params", "synflow"), batch_size=8, seed=0)
ARCHS = [SPACE.canonical(NB201Arch.from_index(i)) for i in (77, 9876)]  # representatives 77 and 9876
NAMES = ["params", "synflow"]


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    """A `robustnas score` run of ARCHS (params, synflow) and its stored values."""
    threads = torch.get_num_threads()
    run_dir = tmp_path_factory.mktemp("score") / "run"
    run_scoring(SETTINGS, [str(a) for a in ARCHS], run_dir)
    yield run_dir, scores(run_dir)
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def bench() -> Benchmark:
    return Benchmark()


def table(**columns: list[float]) -> TableProxies:
    """A proxy table over the first len(column) of a fixed list of NB201 representatives."""
    archs = [str(SPACE.canonical(NB201Arch.from_index(i))) for i in (77, 9876, 5000, 300, 12000, 4242)]
    n = len(next(iter(columns.values())))
    return TableProxies(pd.DataFrame(columns, index=archs[:n]))


# ---- proxy sources --------------------------------------------------------------------------------
def test_live_values_equal_the_scoring_run_bit_for_bit_and_are_stored(scored, tmp_path):
    _, expected = scored
    with Store(tmp_path / "search.sqlite") as store:
        live = LiveProxies(SETTINGS, store)
        for arch in ARCHS:
            assert live.values(arch, NAMES) == expected.loc[str(arch), NAMES].to_dict()
        assert live.computed == 2
        seconds = live.seconds
        assert live.values(ARCHS[0], ["synflow"]) == {"synflow": expected.at[str(ARCHS[0]), "synflow"]}
        assert (live.computed, live.seconds) == (2, seconds)  # answered without building a network

        key = Key(str(ARCHS[1]), "synflow", 0, config_hash(SETTINGS.value_config()))
        assert store.get("score", key).value == expected.at[str(ARCHS[1]), "synflow"]
        again = LiveProxies(SETTINGS, store)  # a resumed search: everything from the store
        assert again.values(ARCHS[1], NAMES) == expected.loc[str(ARCHS[1]), NAMES].to_dict()
        assert (again.computed, again.seconds) == (0, 0.0)


def test_live_reuses_stored_runs_and_computes_only_what_they_lack(scored, tmp_path):
    run_dir, expected = scored
    live = LiveProxies(SETTINGS, None, runs=[run_dir])
    assert [live.values(a, NAMES) for a in ARCHS] == [expected.loc[str(a), NAMES].to_dict() for a in ARCHS]
    assert live.computed == 0
    flops = live.values(ARCHS[0], ["flops", "params"])
    assert live.computed == 1 and flops["params"] == expected.at[str(ARCHS[0]), "params"]
    with Store(tmp_path / "copy.sqlite") as store:  # values taken from a run are recorded in the store
        LiveProxies(SETTINGS, store, runs=[run_dir]).values(ARCHS[0], ["params"])
        assert store.frame("score")["value"].tolist() == [expected.at[str(ARCHS[0]), "params"]]


@pytest.mark.parametrize(
    "change, message", [({"seed": 1}, "seed 0 (wanted 1)"), ({"batch_size": 16}, "batch_size 8 (wanted 16)")]
)
def test_live_refuses_runs_scored_with_other_settings(scored, change, message):
    with pytest.raises(RobustnasError, match=re.escape(message)):
        LiveProxies(replace(SETTINGS, **change), None, runs=[scored[0]])


def test_table_source_errors_name_the_missing_arch_or_column():
    source = table(params=[1.0])
    with pytest.raises(RobustnasError, match="not in the proxy table"):
        source.values(ARCHS[1].mutate(random.Random(0)), ["params"])
    with pytest.raises(RobustnasError, match="no column synflow; it holds params"):
        source.values(ARCHS[0], ["synflow"])


# ---- objectives -----------------------------------------------------------------------------------
def test_proxy_objective_signs_and_undefined_values():
    source = table(synflow=[3.0, math.nan], jacob_fro=[2.0, UNDEFINED])  # jacob_fro: lower is better
    assert ProxyObjective("synflow", source)(ARCHS[0]) == (3.0,)
    assert ProxyObjective("jacob_fro", source)(ARCHS[0]) == (-2.0,)
    assert ProxyObjective("synflow", source)(ARCHS[1]) == (-math.inf,)
    assert ProxyObjective("jacob_fro", source)(ARCHS[1]) == (-math.inf,)  # the suite's -1e8 is undefined, not best
    assert ProxyObjective("jacob_fro", source).config()["source"] == source.config()


def test_weighted_proxies_is_the_signed_log_combination():
    source = table(synflow=[1e30, 5.0, 0.0], params=[1e6, math.nan, 2.0], jacob_fro=[2.0, 1.0, 1.0])
    objective = WeightedProxies({"synflow": 0.5, "params": 2, "jacob_fro": 1}, source)
    assert objective.names == ("0.5*synflow+2*params+1*jacob_fro",)
    expected = 0.5 * math.log(1e30) + 2 * math.log(1e6) - math.log(2.0)
    assert objective(ARCHS[0])[0] == pytest.approx(expected, rel=1e-15)
    assert objective(ARCHS[1]) == (-math.inf,)  # NaN
    assert objective(source.frame.index[2]) == (-math.inf,)  # synflow 0: no logarithm


def test_weighted_ranking_does_not_depend_on_a_proxy_scale():
    rng = np.random.default_rng(0)
    synflow, params = rng.uniform(1, 100, 6), rng.uniform(1e5, 1e6, 6)
    weights = {"synflow": 1.0, "params": 2.0}
    plain = table(synflow=list(synflow), params=list(params))
    scaled = table(synflow=list(synflow), params=list(params * 10))
    archs = list(plain.frame.index)
    values = np.array([WeightedProxies(weights, plain)(a)[0] for a in archs])
    values10 = np.array([WeightedProxies(weights, scaled)(a)[0] for a in archs])
    np.testing.assert_allclose(values10 - values, 2 * math.log(10), rtol=1e-12)
    assert list(np.argsort(values)) == list(np.argsort(values10))
    configs = [WeightedProxies(weights, source).config() for source in (plain, scaled)]
    assert config_hash(configs[0]) != config_hash(configs[1])


@pytest.fixture(scope="module")
def predictor_file(tmp_path_factory):
    """A forest fitted on (params, edge12_none) -> (clean, pgd) of 6 archs, saved, with its table."""
    source = table(params=[1.0, 2.0, math.nan, 4.0, 5.0, 6.0])
    archs = list(source.frame.index)
    x = pd.DataFrame({"params": [1.0, 2.0, UNDEFINED, 4.0, 5.0, 6.0],
                      "edge12_none": [graph_features(NB201Arch.parse(a))["edge12_none"] for a in archs]})
    y = pd.DataFrame({"clean": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6], "pgd": [0.6, 0.1, 0.5, 0.2, 0.4, 0.3]})
    path = tmp_path_factory.mktemp("predictor") / "rf.npz"
    Predictor("rf").fit(x, y).save(path)
    return path, source, x


def test_predictor_objective_equals_predict_on_the_hand_built_features(predictor_file):
    path, source, x = predictor_file
    loaded = Predictor.load(path)
    objective = PredictorObjective(path, source, "pgd", space=SPACE)
    assert objective.names == ("predictor:pgd",)
    archs = list(source.frame.index)
    assert [objective(a)[0] for a in archs] == list(loaded.predict(x)[:, 1])  # NaN params -> -1e8
    assert PredictorObjective(loaded, source)(archs[0]) == (loaded.predict(x.iloc[:1])[0, 0],)  # default: clean
    assert PredictorObjective(loaded, source).config()["sha256"] == objective.config()["sha256"]
    both = PredictorObjective(loaded, source, "clean+pgd")
    assert both.names == ("predictor:clean+pgd",)
    assert [both(a)[0] for a in archs] == list(loaded.predict(x)[:, 0] + loaded.predict(x)[:, 1])


def test_predictor_objective_errors(predictor_file):
    path, source, _ = predictor_file
    with pytest.raises(RobustnasError, match="no target 'robust'; its targets: clean, pgd"):
        PredictorObjective(path, source, "robust")
    with pytest.raises(RobustnasError, match="no target 'fgsm'; its targets: clean, pgd"):
        PredictorObjective(path, source, "clean+fgsm")
    with pytest.raises(RobustnasError, match="target 'clean\\+pgd\\+clean' names an output twice"):
        PredictorObjective(path, source, "clean+pgd+clean")
    with pytest.raises(RobustnasError, match=r"graph features \(edge12_none, ...\); it cannot search darts"):
        PredictorObjective(path, source, space="darts")
    bogus = Predictor("gb").fit(pd.DataFrame({"bogus": [1.0, 2.0, 3.0]}), pd.Series([1.0, 2.0, 3.0]))
    with pytest.raises(RobustnasError, match="feature.s. bogus are neither proxies nor NB201 graph features"):
        PredictorObjective(bogus, source)


def test_predictor_fitted_on_other_proxy_settings_warns(tmp_path):
    x = pd.DataFrame({"params": [1.0, 2.0, 3.0, 4.0]})
    fitted = Predictor("rf").fit(x, pd.Series([0.1, 0.2, 0.3, 0.4], name="clean"))
    fitted.fitted_on = {"dataset": "cifar10", "proxy_settings": [{"scoring": SETTINGS.value_config(), "seed": 0}]}
    fitted.save(tmp_path / "p.npz")
    with Store(tmp_path / "s.sqlite") as store:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            PredictorObjective(tmp_path / "p.npz", LiveProxies(SETTINGS, store))  # as fitted: silent
        other = replace(SETTINGS, data="/elsewhere/images.npz", seed=3)
        with pytest.warns(UserWarning, match=r"scored with .*'data': None.* 'seed': 0\}; this search scores them "
                                             r"with .*'data': '/elsewhere/images.npz'.* 'seed': 3\}: pass the same"):
            PredictorObjective(tmp_path / "p.npz", LiveProxies(other, store))
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            PredictorObjective(tmp_path / "p.npz", table(params=[1.0, 2.0]))  # a proxy table: nothing to compare


def test_undefined_is_the_study_sentinel():
    from robustnas.report._study import UNDEFINED as STUDY_UNDEFINED

    assert UNDEFINED == STUDY_UNDEFINED


def test_benchmark_objective_is_the_benchmark_query(bench):
    arch = ARCHS[1]
    pgd = BenchmarkObjective("pgd@1", "cifar10", bench)
    assert pgd.names == ("bench:pgd@1.0",)
    assert pgd(arch) == (bench.query(arch, "cifar10", "pgd", eps=1.0),)
    noise = BenchmarkObjective("gaussian_noise@3", "cifar10", bench)
    assert noise(arch) == (bench.table("cifar10").at[arch.index, "gaussian_noise@3"],)
    assert BenchmarkObjective("clean", "cifar100", bench)(arch) == (bench.query(arch, "cifar100", "clean"),)


@pytest.mark.parametrize("column, dataset, message", [
    ("pgd@0.3", "cifar10", "pgd needs eps"),
    ("clean@1", "cifar10", "bad benchmark column 'clean@1'"),
    ("gaussian_noise@3", "ImageNet16-120", "no benchmark metric 'gaussian_noise' for ImageNet16-120"),
])
def test_benchmark_objective_errors(bench, column, dataset, message):
    with pytest.raises(RobustnasError, match=re.escape(message)):
        BenchmarkObjective(column, dataset, bench)


def test_latency_objective_and_constraint_flip_at_the_limit(bench):
    arch = ARCHS[0]
    latency = float(bench.hw_nas_bench("cifar10").at[arch.index, "edgegpu_latency"])
    assert LatencyObjective("edgegpu", "cifar10", bench)(arch) == (-latency,)
    inner = ProxyObjective("synflow", table(synflow=[3.0]))
    assert Constrained(inner, latency, "edgegpu", "cifar10", bench).feasible(arch)
    below = Constrained(inner, float(np.nextafter(latency, 0)), "edgegpu", "cifar10", bench)
    assert not below.feasible(arch)
    assert below(arch) == (3.0,) and below.config() == inner.config() and below.names == ("synflow",)
    combined = Combined([inner, below])
    assert combined(arch) == (3.0, 3.0) and not combined.feasible(arch)


# ---- the grammar ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def parse(bench):
    source = table(synflow=[3.0, 2.0], params=[4.0, 5.0])

    def parse(spec: str, **options):
        options = {"space": SPACE, "dataset": "cifar10", "source": source, "bench": bench} | options
        return parse_objective(spec, **options)

    return parse


def test_parse_objective_happy_paths(parse, predictor_file, bench):
    path = predictor_file[0]
    arch = ARCHS[0]
    assert isinstance(parse("synflow"), ProxyObjective) and parse("synflow")(arch) == (3.0,)
    weighted = parse(" 2*synflow + params")
    assert isinstance(weighted, WeightedProxies) and weighted.weights == {"synflow": 2.0, "params": 1.0}
    assert weighted(arch)[0] == pytest.approx(2 * math.log(3.0) + math.log(4.0), rel=1e-15)
    multi = parse("bench:clean, latency:edgegpu")
    assert isinstance(multi, Combined) and multi.names == ("bench:clean", "latency:edgegpu")
    latency = bench.hw_nas_bench("cifar10").at[arch.index, "edgegpu_latency"]
    assert multi(arch) == (bench.query(arch, "cifar10", "clean"), -latency)
    assert parse(f"predictor:{path}:pgd").names == ("predictor:pgd",)
    assert parse(f"predictor:{path}").names == ("predictor:clean",)
    constrained = parse("synflow", max_latency_ms=1.0, latency_device="pixel3")
    assert isinstance(constrained, Constrained) and constrained.latency.device == "pixel3"
    for spec in ("synflow", "2*synflow+params", "bench:pgd@1.0,synflow", f"predictor:{path}"):
        config_hash(parse(spec).config())  # JSON-able


@pytest.mark.parametrize("spec, options, message", [
    ("nosuch", {}, "unknown proxy 'nosuch' in the objective; proxies: "),
    ("0*synflow", {}, "bad term '0*synflow'"),
    ("-1*synflow", {}, "bad term '-1*synflow'"),
    ("x*synflow+params", {}, "bad term 'x*synflow'"),
    ("synflow+2*synflow", {}, "proxy 'synflow' appears twice"),
    ("", {}, "empty objective"),
    ("synflow,,params", {}, "empty objective"),
    ("bench:clean", {"space": "darts"}, "the darts space has none"),
    ("latency:edgegpu", {"space": "arnas"}, "the arnas space has none"),
    ("synflow", {"space": "darts", "max_latency_ms": 5.0}, "the darts space has none"),
    ("latency:tpu", {}, "no HW-NAS-Bench latency for device 'tpu'; choose one of: edgegpu, raspi4"),
    ("bench:pgd@0.3", {}, "pgd needs eps"),
    ("synflow", {"max_latency_ms": 0}, "latency limit must be a number of ms > 0"),
    ("predictor:missing.npz", {}, "predictor file 'missing.npz' not found"),
    ("synflow", {"source": None}, "needs proxy values"),
])
def test_parse_objective_errors_are_one_line(parse, spec, options, message):
    with pytest.raises(RobustnasError, match=re.escape(message)) as error:
        parse(spec, **options)
    assert "\n" not in str(error.value)


def test_predictor_paths_may_hold_commas_and_colons(parse, predictor_file, tmp_path):
    folder = tmp_path / "runs,v2:final"
    folder.mkdir()
    path = folder / "rf,a.npz"
    path.write_bytes(predictor_file[0].read_bytes())
    assert parse(f"predictor:{path}").names == ("predictor:clean",)
    both = parse(f"synflow, predictor:{path}:pgd ,bench:clean")
    assert isinstance(both, Combined) and both.names == ("synflow", "predictor:pgd", "bench:clean")
    assert both.objectives[1].predictor.targets == ["clean", "pgd"]
    with pytest.raises(RobustnasError, match=re.escape(f"predictor file '{tmp_path}/runs' not found")):
        parse(f"predictor:{folder}/rf,b.npz")  # no join of the pieces exists: cut at the first comma
    with pytest.raises(RobustnasError, match=re.escape("predictor file 'missing.npz:pgd' not found")):
        parse("predictor:missing.npz:pgd")


def test_parse_predictor_errors(parse, predictor_file):
    path = predictor_file[0]
    with pytest.raises(RobustnasError, match="no target 'nope'"):
        parse(f"predictor:{path}:nope")
    with pytest.raises(RobustnasError, match="it cannot search darts"):
        parse(f"predictor:{path}", space=get_space("darts"))
