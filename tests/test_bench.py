"""robustnas.bench: NB201 ground truth from the shipped copy and from the original files."""
from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from robustnas.bench import CORRUPTIONS, DATASETS, Benchmark, read_naslib_zc_json
from robustnas.bench import _shipped as shipped
from robustnas.bench._names import ATTACK_KEYS, measure_keys
from robustnas.errors import RobustnasError
from robustnas.spaces.nb201 import NB201Arch, unique_indices

EMBEDDED = Path(__file__).resolve().parents[1] / "src" / "robustnas" / "_embedded"
SUITE_ZERO_DATASETS = ("cifar10", "ImageNet16-120")


@pytest.fixture(scope="module")
def bench() -> Benchmark:
    return Benchmark()


@pytest.fixture(scope="module")
def original_bench(nb201_data: Path) -> Benchmark:
    return Benchmark(nb201_data)


# ---- the required check value (README of the data, spec §4.1) ---------------------------------
def _check_value(benchmark: Benchmark) -> None:
    assert benchmark.query(13433, "cifar10", "clean") == 0.893
    assert benchmark.query(13433, "cifar10", "pgd", eps=1) == 0.336
    assert benchmark.query(13433, "cifar10", "pgd", eps=1.0) == 0.336


def test_check_value_from_shipped_copy(bench: Benchmark) -> None:
    _check_value(bench)
    assert set(bench.sources.values()) == {"shipped copy"}


def test_check_value_from_original_files(nb201_data: Path) -> None:
    _check_value(Benchmark(nb201_data))
    only_robustness = Benchmark(nb201_data / "robustness-dataset")
    _check_value(only_robustness)
    assert only_robustness.sources["robustness"] == str(nb201_data / "robustness-dataset")
    assert only_robustness.sources["nats"] == "shipped copy"


# ---- shipped copy == original files, every value ----------------------------------------------
def test_shipped_robustness_equals_json_files(bench: Benchmark, nb201_data: Path) -> None:
    root = nb201_data / "robustness-dataset"
    meta = json.loads((root / "meta.json").read_text())
    assert bench.epsilons("fgsm") == tuple(meta["epsilons"]["fgsm@Linf"])
    representatives = bench.representatives()
    for dataset in DATASETS:
        table = bench.table(dataset)
        for key in measure_keys(dataset):
            values = json.loads((root / dataset / f"{key}_accuracy.json").read_text())[dataset][key]["accuracy"]
            assert sorted(map(int, values)) == representatives.tolist()
            expected = np.array([values[str(i)] for i in representatives.tolist()], dtype=np.float64)
            columns = [c for c in table.columns if c == key or c.split("@")[0] == _metric_name(key)]
            assert np.array_equal(table[columns].to_numpy(), expected.reshape(len(expected), -1)), (dataset, key)


def _metric_name(key: str) -> str:
    return {v: k for k, v in ATTACK_KEYS.items()}.get(key, key)


def test_shipped_csv_tables_equal_csv_files(nb201_data: Path) -> None:
    nats = _csv_rows(nb201_data / "nats-bench-test-accuracy.csv")
    assert np.array_equal(shipped.load_nats(), np.array([[float(r[c]) for c in list(r)[:3]] for r in nats]))
    for dataset in SUITE_ZERO_DATASETS:
        frame = shipped.load_suite_zero(dataset)
        proxies = _csv_rows(nb201_data / "suite-zero" / f"zc-proxies-{dataset}.csv")
        valid = {r["net"]: r["val_accs"] for r in _csv_rows(nb201_data / "suite-zero" / f"valid-nets-{dataset}.csv")}
        expected = [[float(r[c]) for c in frame.columns[:-1]] + [float(valid[r["net"]])] for r in proxies]
        assert len(frame) == len(valid) == 9445
        assert np.array_equal(frame.loc[_indices(proxies)].to_numpy(), np.array(expected))
    for dataset in DATASETS:
        frame = shipped.load_hw_nas_bench(dataset)
        rows = _csv_rows(nb201_data / "hw-nas-bench" / f"latency-energy-{dataset}.csv")
        expected = [[float(r[c]) for c in frame.columns] for r in rows]
        assert len(frame) == len(rows) == 15625
        assert np.array_equal(frame.loc[_indices(rows)].to_numpy(), np.array(expected))


def _indices(rows: list[dict[str, str]]) -> list[int]:
    return [NB201Arch.parse(r["net"]).index for r in rows]


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_original_reader_gives_the_same_frames(bench: Benchmark, original_bench: Benchmark) -> None:
    assert np.array_equal(bench.representatives(), original_bench.representatives())
    for dataset in DATASETS:
        joins = {"suite_zero": dataset in SUITE_ZERO_DATASETS, "hw_nas_bench": True}
        pd.testing.assert_frame_equal(
            bench.table(dataset, all_archs=True, **joins), original_bench.table(dataset, all_archs=True, **joins),
            check_exact=True,
        )


def test_shipped_files_are_small() -> None:
    total = sum(p.stat().st_size for p in EMBEDDED.glob("nb201_*.npz"))
    assert len(list(EMBEDDED.glob("nb201_*.npz"))) == 4 and total <= 15e6


# ---- isomorphism (spec §3.5) -----------------------------------------------------------------
def test_meta_representatives_equal_nb201arch_isomorph(nb201_data: Path) -> None:
    ids = json.loads((nb201_data / "robustness-dataset" / "meta.json").read_text())["ids"]
    for index in range(15625):
        arch = NB201Arch.from_index(index)
        assert int(ids[str(index)]["isomorph"]) == arch.isomorph_index
        assert ids[str(index)]["nb201-string"] == arch.to_string()


def test_representatives(bench: Benchmark) -> None:
    representatives = bench.representatives()
    assert len(representatives) == 6466
    assert np.array_equal(representatives, unique_indices())
    assert bench.representative(25) == 3 == NB201Arch.from_index(25).isomorph_index


def test_query_maps_to_representative_except_nats(bench: Benchmark) -> None:
    assert bench.query(25, "cifar10", "clean") == bench.query(3, "cifar10", "clean") == 0.868
    assert bench.query(25, "cifar10", "nats_test") == 0.8654
    assert bench.query(3, "cifar10", "nats_test") == round(86.61666666666667 / 100, 12)


def test_query_accepts_every_arch_form(bench: Benchmark) -> None:
    arch = NB201Arch.from_index(13433)
    forms = [arch, 13433, "13433", arch.ops, list(arch.ops), str(arch.ops), arch.to_string()]
    assert {bench.query(f, "cifar100", "gaussian_noise", severity=5) for f in forms} == {0.062}


def test_query_values_across_metrics(bench: Benchmark) -> None:
    assert bench.query(13433, "cifar10", "square", eps=8) == 0.003
    assert bench.query(13433, "ImageNet16-120", "fgsm", eps=255) == 0.008
    assert bench.query(13433, "cifar10", "pgd", eps=8 / 255 * 255) == bench.query(13433, "cifar10", "pgd", eps=8)
    assert bench.query(13433, "cifar10", "nats_test") == 0.8917


# ---- tables ----------------------------------------------------------------------------------
def test_table_layout(bench: Benchmark) -> None:
    cifar = bench.table("cifar10")
    assert cifar.shape == (6466, 1 + 11 + 3 * 7 + 15 * 5 + 1)
    assert cifar.index.name == "nb201_index" and cifar.index.tolist() == bench.representatives().tolist()
    assert cifar.columns[:3].tolist() == ["clean", "fgsm@0.1", "fgsm@0.5"]
    assert {"fgsm@255.0", "pgd@8.0", "apgd-ce@1.0", "square@0.1", "gaussian_noise@3", "zoom_blur@5"} <= set(cifar.columns)
    assert cifar.loc[13433, bench.column("pgd", eps=1)] == 0.336
    imagenet = bench.table("ImageNet16-120")
    assert imagenet.shape == (6466, 34) and not any(c.startswith(CORRUPTIONS) for c in imagenet.columns)
    everything = bench.table("cifar100", all_archs=True)
    assert everything.shape == (15625, 109)
    assert everything.loc[25, "clean"] == everything.loc[3, "clean"]


def test_table_best_nats_accuracies(bench: Benchmark) -> None:
    best = [round(bench.table(d, all_archs=True)["nats_test"].max() * 100, 3) for d in DATASETS]
    assert best == [94.373, 73.513, 47.311]  # data README


def test_table_joins_suite_zero_and_hw_nas_bench(bench: Benchmark) -> None:
    joined = bench.table("cifar10", suite_zero=True, hw_nas_bench=True)
    assert joined.shape == (6466, 109 + 14 + 10)
    assert joined["synflow"].notna().sum() == 6144  # 322 representatives have unreachable branches
    assert joined["edgegpu_latency"].notna().all()


def test_suite_zero(bench: Benchmark) -> None:
    assert bench.suite_zero_datasets() == SUITE_ZERO_DATASETS
    frame = bench.suite_zero("cifar10")
    assert frame.shape == (9445, 14) and frame.columns[-1] == "val_accuracy"
    row = frame.loc[NB201Arch.parse("(4, 0, 3, 1, 4, 3)").index]
    assert row["epe_nas"] == 1283.2991078420093 and row["val_accuracy"] == 0.8499
    assert (frame.drop(columns="val_accuracy") == -1e8).sum().sum() == 4  # NaN sentinels kept raw


def test_hw_nas_bench(bench: Benchmark) -> None:
    frame = bench.hw_nas_bench("cifar10")
    assert frame.shape == (15625, 10)
    assert frame.loc[NB201Arch.parse("(4, 3, 3, 0, 0, 0)").index, "edgegpu_latency"] == 5.807418537139893


# ---- NASLib zc_nasbench201.json --------------------------------------------------------------
def _write_naslib_json(path: Path) -> None:
    data = {
        "cifar100": {
            "(0, 2, 3, 2, 3, 1)": {"id": 7, "val_accuracy": 71.5, "flops": {"score": 88.313152, "time": 0.1},
                                   "synflow": {"score": 40.5, "time": 0.2}},
            "(4, 3, 3, 3, 2, 3)": {"id": 8, "val_accuracy": 60.25, "flops": {"score": 12.5, "time": 0.1}},
        },
        "ImageNet16-120": {"(1, 1, 1, 1, 1, 1)": {"id": 0, "val_accuracy": 0.83, "flops": {"score": 1.0, "time": 0.0},
                                                 "synflow": {"score": -1e8, "time": 0.0}}},
    }
    path.write_text(json.dumps(data))


def test_read_naslib_zc_json(tmp_path: Path) -> None:
    _write_naslib_json(tmp_path / "zc_nasbench201.json")
    frames = read_naslib_zc_json(tmp_path / "zc_nasbench201.json")
    assert sorted(frames) == ["ImageNet16-120", "cifar100"]
    cifar = frames["cifar100"]
    first, second = NB201Arch.parse((0, 2, 3, 2, 3, 1)).index, NB201Arch.parse((4, 3, 3, 3, 2, 3)).index
    assert cifar.columns.tolist() == ["flops", "synflow", "val_accuracy"]
    assert cifar.index.tolist() == sorted([first, second])
    assert cifar.loc[first].tolist() == [88.313152, 40.5, 0.715]
    assert np.isnan(cifar.loc[second, "synflow"]) and cifar.loc[second, "val_accuracy"] == 0.6025


def test_benchmark_finds_naslib_json(tmp_path: Path, nb201_data: Path) -> None:
    (tmp_path / "robustness-dataset").symlink_to(nb201_data / "robustness-dataset")
    _write_naslib_json(tmp_path / "zc_nasbench201.json")
    benchmark = Benchmark(tmp_path)
    assert benchmark.sources["suite_zero"] == str(tmp_path / "zc_nasbench201.json")
    assert benchmark.sources["nats"] == "shipped copy"
    assert benchmark.suite_zero_datasets() == ("cifar100", "ImageNet16-120")
    joined = benchmark.table("cifar100", all_archs=True, suite_zero=True)
    assert joined.loc[NB201Arch.parse((0, 2, 3, 2, 3, 1)).index, "flops"] == 88.313152
    assert joined["flops"].notna().sum() == 2
    with pytest.raises(RobustnasError, match="available: cifar100, ImageNet16-120"):
        benchmark.suite_zero("cifar10")


# ---- errors ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"dataset": "cifar-10", "metric": "clean"}, "choose one of: cifar10, cifar100, ImageNet16-120"),
        ({"dataset": "cifar10", "metric": "pgdd"}, "choose one of: clean, fgsm, pgd, apgd-ce, square, brightness"),
        ({"dataset": "ImageNet16-120", "metric": "fog", "severity": 1}, "no metric 'fog' for ImageNet16-120"),
        ({"dataset": "cifar10", "metric": "pgd", "eps": 1.5}, r"one of 0.1, 0.5, 1.0, 2.0, 3.0, 4.0, 8.0; got 1.5"),
        ({"dataset": "cifar10", "metric": "pgd"}, "pgd needs eps"),
        ({"dataset": "cifar10", "metric": "fgsm", "eps": 9}, r"5.0, 6.0, 7.0, 8.0, 255.0; got 9"),
        ({"dataset": "cifar10", "metric": "fog", "severity": 6}, "severity one of 1, 2, 3, 4, 5; got 6"),
        ({"dataset": "cifar10", "metric": "fog"}, "severity one of"),
        ({"dataset": "cifar10", "metric": "clean", "eps": 1}, "eps applies only to attacks"),
        ({"dataset": "cifar10", "metric": "pgd", "eps": 1, "severity": 1}, "severity applies only to corruptions"),
    ],
)
def test_bad_query_raises_one_line_error(bench: Benchmark, kwargs: dict, message: str) -> None:
    with pytest.raises(RobustnasError, match=message) as info:
        bench.query(13433, **kwargs)
    assert "\n" not in str(info.value)


def test_other_errors(bench: Benchmark, tmp_path: Path) -> None:
    with pytest.raises(RobustnasError, match="available: cifar10, ImageNet16-120"):
        bench.suite_zero("cifar100")
    with pytest.raises(RobustnasError, match="only for the attacks fgsm, pgd, apgd-ce, square"):
        bench.epsilons("clean")
    with pytest.raises(RobustnasError, match="no robustness dataset at"):
        Benchmark(tmp_path)
    with pytest.raises(RobustnasError, match="NB201 index must be in 0..15624"):
        bench.query(15625, "cifar10", "clean")


def test_bad_original_csv_names_file_and_row(tmp_path: Path, nb201_data: Path) -> None:
    (tmp_path / "robustness-dataset").symlink_to(nb201_data / "robustness-dataset")
    (tmp_path / "hw-nas-bench").mkdir()
    bad = tmp_path / "hw-nas-bench" / "latency-energy-cifar10.csv"
    bad.write_text('net,edgegpu_latency\n"(0, 2, 3, 2, 3, 7)",1.5\n')
    with pytest.raises(RobustnasError, match=r"latency-energy-cifar10.csv: bad op-index tuple '\(0, 2, 3, 2, 3, 7\)'"):
        Benchmark(tmp_path).hw_nas_bench("cifar10")
    with pytest.raises(RobustnasError, match=r"file not found: .*latency-energy-cifar100.csv"):
        Benchmark(tmp_path).hw_nas_bench("cifar100")


# ---- load time -------------------------------------------------------------------------------
def test_full_table_loads_fast_in_a_fresh_process() -> None:
    code = (
        "import time; start = time.perf_counter()\n"
        "from robustnas.bench import Benchmark\n"
        "Benchmark().table('cifar10', all_archs=True, suite_zero=True, hw_nas_bench=True)\n"
        "print(time.perf_counter() - start)"
    )
    seconds = float(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout)
    assert seconds < 10.0  # about 0.7 s measured (pandas import included); generous for slow CI
