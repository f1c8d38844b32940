"""The command line: scripting contract (JSON), one-line errors with exit code 2, fast --help."""
from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from robustnas.cli import main


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("form", ["13433", "(4, 3, 3, 0, 3, 0)", "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|nor_conv_1x1~1|skip_connect~2|"])
def test_arch_show_json_contract(capsys, form):
    code, out, _ = run(capsys, "arch", "show", form, "--dataset", "cifar10", "--json")
    assert code == 0
    info = json.loads(out)
    assert info["index"] == 13433
    assert info["isomorph_index"] == 13433
    assert info["string"] == "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|nor_conv_1x1~1|skip_connect~2|"
    # closed form of spec §1.5: n3=0, n1=3, np=1, K=10
    assert info["params_m"] == pytest.approx((72656 + 650 + 3 * 28000) / 1e6, abs=1e-12)
    assert info["flops_m"] == pytest.approx((7943232 + 640 + 3 * 4362240 + 1290240) / 1e6, abs=1e-12)


def test_arch_show_isomorph_of_non_representative(capsys):
    # index 3 is |avg_pool_3x3~0|+|skip_connect~0|none~1|+|none~0|none~1|skip_connect~2|;
    # find a member of a class whose representative differs
    from robustnas.spaces.nb201 import NB201Arch

    member = next(i for i in range(15625) if NB201Arch.from_index(i).isomorph_index != i)
    code, out, _ = run(capsys, "arch", "show", str(member), "--json")
    info = json.loads(out)
    assert info["index"] == member and info["isomorph_index"] < member


def test_arch_convert(capsys):
    assert run(capsys, "arch", "convert", "13433", "--to", "tuple")[1].strip() == "(4, 3, 3, 0, 3, 0)"
    assert run(capsys, "arch", "convert", "(4, 3, 3, 0, 3, 0)", "--to", "index")[1].strip() == "13433"
    data = json.loads(run(capsys, "arch", "convert", "13433", "--to", "json")[1])
    assert data["ops"] == [4, 3, 3, 0, 3, 0]


def test_arch_sample_is_seeded_and_unique(capsys):
    first = run(capsys, "arch", "sample", "-n", "20", "--seed", "3", "--unique")[1].splitlines()
    second = run(capsys, "arch", "sample", "-n", "20", "--seed", "3", "--unique")[1].splitlines()
    assert first == second and len(set(first)) == 20
    from robustnas.spaces.nb201 import NB201Arch

    assert all(NB201Arch.parse(s).isomorph_index == NB201Arch.parse(s).index for s in first)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["arch", "show", "(1, 2)"], "6 integer entries"),
        (["arch", "show", "99999"], "0..15624"),
        (["arch", "sample", "-n", "3", "--space", "darts", "--unique"], "--unique exists only for enumerable spaces"),
        (["arch", "convert", "13433", "--space", "nb201", "--to", "json"], None),
    ],
)
def test_errors_are_one_line_with_exit_code_2(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    if message is None:
        assert code == 0
        return
    assert code == 2
    assert err.count("\n") == 1 and message in err and err.startswith("robustnas: error: ")


def test_help_is_fast():
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "robustnas.cli", "--help"], capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    assert result.returncode == 0 and "arch" in result.stdout and "bench" in result.stdout
    assert elapsed < 1.0, f"--help took {elapsed:.2f} s"
    modules = subprocess.run(
        [sys.executable, "-c", "import sys, robustnas.cli; print('torch' in sys.modules, 'pandas' in sys.modules)"],
        capture_output=True, text=True,
    ).stdout.split()
    assert modules == ["False", "False"]


def test_bench_query_contract(capsys):
    code, out, _ = run(capsys, "bench", "query", "13433", "--dataset", "cifar10", "--metric", "pgd", "--eps", "1", "--json")
    assert code == 0 and json.loads(out) == {"value": 0.336}
    code, out, _ = run(capsys, "bench", "query", "13433", "--metric", "clean", "--json")
    assert json.loads(out) == {"value": 0.893}


def test_bench_query_bad_eps_is_one_line(capsys):
    code, _, err = run(capsys, "bench", "query", "13433", "--metric", "pgd", "--eps", "1.5")
    assert code == 2 and err.count("\n") == 1 and "0.1, 0.5, 1.0, 2.0, 3.0, 4.0, 8.0" in err


@pytest.mark.parametrize("space, name, params", [("darts", "DARTS_V2", 3349342), ("arnas", "ARNAS", 4520394)])
def test_arch_show_published_genotypes(capsys, tmp_path, space, name, params):
    code, out, _ = run(capsys, "arch", "show", name, "--space", space, "--json")
    info = json.loads(out)
    assert code == 0 and round(info["params_m"] * 1e6) == params
    # the JSON form written to a file reads back to the same genotype
    genotype_file = tmp_path / "genotype.json"
    genotype_file.write_text(run(capsys, "arch", "convert", name, "--space", space, "--to", "json")[1])
    code, out, _ = run(capsys, "arch", "convert", str(genotype_file), "--space", space, "--to", "string")
    assert code == 0 and out.strip() == info["string"]


def test_darts_has_no_index(capsys):
    code, _, err = run(capsys, "arch", "convert", "DARTS_V2", "--space", "darts", "--to", "index")
    assert code == 2 and "--to index does not exist for darts" in err


def test_data_info(capsys, shared_data):
    code, out, _ = run(capsys, "data", "info", str(shared_data / "cifar10" / "cifar10-raw-subset.npz"), "--json")
    info = json.loads(out)
    assert code == 0 and info["format"] == "npz" and info["dataset"] == "cifar10"
    assert info["splits"]["train"]["images"] == 5170 and info["splits"]["test"]["images"] == 1017
    code, out, _ = run(capsys, "data", "info", str(shared_data / "cifar10" / "cifar10-raw-subset.npz"))
    assert "train: 5170 images of 32x32x3" in out


def test_data_info_missing_path(capsys, tmp_path):
    code, _, err = run(capsys, "data", "info", str(tmp_path / "nope.npz"))
    assert code == 2 and err.count("\n") == 1 and "nope.npz" in err
