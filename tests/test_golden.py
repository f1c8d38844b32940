"""Golden outputs recorded before the spaces became plug-ins (issue 17, at 014db22), compared bit for
bit: ``robustnas arch sample/show/convert`` for NB201, DARTS and ARNAS, a scoring export of six NB201
architectures (croze among the proxies) and an NB201 and a DARTS search. The full comparison (demo,
DARTS/ARNAS scoring with CRoZe, NSGA-II) is benchmarks/golden.sh; this is its quick part."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from robustnas.cli import main

GOLDEN = Path(__file__).parent / "data" / "golden"
SPACES = ("nb201", "darts", "arnas")


def run(capsys, *argv: str) -> str:
    assert main([str(a) for a in argv]) == 0
    return capsys.readouterr().out


def first_sampled(space: str) -> str:
    return (GOLDEN / f"sample-{space}.txt").read_text().splitlines()[0]


@pytest.mark.parametrize("space", SPACES)
def test_arch_commands_are_unchanged(capsys, space):
    assert run(capsys, "arch", "sample", "--space", space, "-n", "4", "--seed", "7") == (GOLDEN / f"sample-{space}.txt").read_text()
    arch = first_sampled(space)
    shown = json.loads(run(capsys, "arch", "show", "--space", space, arch, "--json"))
    assert shown == json.loads((GOLDEN / f"show-{space}.json").read_text())
    assert run(capsys, "arch", "convert", "--space", space, arch, "--to", "json") == (GOLDEN / f"convert-{space}.json").read_text()
    assert run(capsys, "arch", "convert", "--space", space, arch, "--to", "string") == (GOLDEN / f"convert-{space}.str").read_text()


def test_nb201_encodings_and_published_genotypes_are_unchanged(capsys):
    unique = run(capsys, "arch", "sample", "--space", "nb201", "-n", "5", "--seed", "3", "--unique")
    assert unique == (GOLDEN / "sample-nb201-unique.txt").read_text()
    arch = first_sampled("nb201")
    for to in ("index", "tuple"):
        assert run(capsys, "arch", "convert", arch, "--to", to) == (GOLDEN / f"convert-nb201.{to}").read_text()
    for space, name, file in (("darts", "DARTS_V2", "show-darts-v2.json"), ("arnas", "ARNAS", "show-arnas-published.json")):
        shown = json.loads(run(capsys, "arch", "show", "--space", space, name, "--json"))
        assert shown == json.loads((GOLDEN / file).read_text())


def test_scoring_export_is_unchanged(capsys, tmp_path):
    proxies = "croze,synflow,snip,jacov,params,flops,nwot"
    run(capsys, "score", "--space", "nb201", "--archs", "sample:6", "--proxies", proxies, "--seed", "1", "--out", tmp_path / "run")
    run(capsys, "export", tmp_path / "run", "--out", tmp_path / "scores.csv")
    assert (tmp_path / "scores.csv").read_bytes() == (GOLDEN / "score-nb201.csv").read_bytes()


@pytest.mark.parametrize(
    "space, strategy, budget",
    [("nb201", "evolution", "12"), ("darts", "warmup-move", "6")],
)
def test_searches_are_unchanged(capsys, tmp_path, space, strategy, budget):
    out = tmp_path / "search"
    run(capsys, "search", "--space", space, "--strategy", strategy, "--objective", "synflow", "--budget", budget,
        "--seed", "2", "--out", out)  # fmt: skip
    assert (out / "trajectory.csv").read_bytes() == (GOLDEN / f"search-{space}-trajectory.csv").read_bytes()
    if space == "darts":
        assert (out / "best_genotype.json").read_bytes() == (GOLDEN / "search-darts-best_genotype.json").read_bytes()
