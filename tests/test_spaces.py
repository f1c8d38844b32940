"""The space registry: every registered space passes check_space; a space defined in this file
plugs in with one registration; CRoZe's DARTS-like space follows spec crose-and-arnas.md §A.6."""
from __future__ import annotations

import itertools
import json
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from robustnas import spaces
from robustnas.cli import main
from robustnas.errors import ArchError, RobustnasError
from robustnas.spaces import Space
from robustnas.spaces.croze_darts import INPUTS, CrozeDartsGenotype, count_params, params_m, published_genotypes
from robustnas.spaces._darts_ops import count_parameters
from robustnas.testing import check_space

SMALL = {
    "nb201": {"channels": 4, "cells_per_stage": 1},
    "darts": {"C": 4, "layers": 5},
    "arnas": {"C": 4, "layers": 5},
    "croze-darts": {"C": 4, "layers": 5},
}


def test_the_registry_is_full_on_import():
    assert spaces.names() == ("arnas", "croze-darts", "darts", "nb201")  # every public module of robustnas.spaces
    assert all(spaces.get(name).name == name for name in spaces.names())
    assert set(spaces.list_spaces()) == set(spaces.names())
    with pytest.raises(RobustnasError, match="unknown search space 'nope'; choose one of arnas, croze-darts, darts, nb201"):
        spaces.get("nope")


@pytest.mark.parametrize("name", spaces.names())
def test_every_registered_space_passes_the_conformance_checks(name):
    check_space(name, sizes=SMALL.get(name, {}))


def test_a_space_without_its_declarations_is_refused_at_registration():
    class Nameless(ChainSpace):
        summary = ""

    with pytest.raises(RobustnasError, match="Nameless cannot be registered: set its summary"):
        spaces.register(Nameless())


def test_a_broken_space_fails_the_checks():
    class Forgetful(ChainSpace):
        def mutate_once(self, arch, rng):
            return arch  # never moves: mutate() cannot leave the parent

    with pytest.raises(RobustnasError, match="no mutation of"):
        check_space(Forgetful())

    class Unseeded(ChainSpace):
        def random_arch(self, rng):
            return Chain(tuple(random.randrange(3) for _ in range(3)))

    with pytest.raises(AssertionError, match="not deterministic|global random module"):
        check_space(Unseeded())


# ---- a space defined here: a chain of three layers, each one of three ops ---------------------
@dataclass(frozen=True)
class Chain:
    ops: tuple[int, ...]

    def __str__(self) -> str:
        return "-".join(str(op) for op in self.ops)

    def to_json(self) -> dict:
        return {"space": "toy-chain", "ops": list(self.ops)}


class ChainSpace(Space):
    name, label, summary = "toy-chain", "Chain", "three layers, each conv3x3, conv1x1 or identity"
    default_sizes = {"width": 8}
    enumerable = True

    def parse_value(self, value):
        if isinstance(value, Chain):
            return value
        ops = value.get("ops") if isinstance(value, dict) else value
        if isinstance(ops, str):
            ops = [int(op) if op.isdigit() else -1 for op in ops.split("-")]
        if not (isinstance(ops, (list, tuple)) and len(ops) == 3 and all(op in (0, 1, 2) for op in ops)):
            raise ArchError(f"cannot read chain {value!r}: write three ops 0..2 joined by '-', e.g. 0-2-1")
        return Chain(tuple(ops))

    def random_arch(self, rng):
        return Chain(tuple(rng.randrange(3) for _ in range(3)))

    def mutate_once(self, arch, rng):
        position = rng.randrange(3)
        return Chain(tuple(rng.choice([o for o in range(3) if o != op]) if i == position else op for i, op in enumerate(arch.ops)))

    def enumerate_population(self):
        return [Chain(ops) for ops in itertools.product(range(3), repeat=3)]

    def choices(self):
        return {f"layer{i}": (0, 1, 2) for i in range(3)}

    def encode(self, arch):
        return {f"layer{i}": op for i, op in enumerate(self.parse(arch).ops)}

    def decode_params(self, params):
        return Chain(tuple(int(params[f"layer{i}"]) for i in range(3)))

    def network(self, arch, num_classes, width=8):
        layers = [nn.Conv2d(3, width, 3, padding=1)]
        for op in self.parse(arch).ops:
            layers += [nn.ReLU(), nn.Conv2d(width, width, 3, padding=1) if op == 0 else nn.Conv2d(width, width, 1) if op == 1 else nn.Identity()]
        return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, num_classes))


@pytest.fixture
def chain_space():
    spaces.register(ChainSpace())
    yield spaces.get("toy-chain")
    spaces.unregister("toy-chain")


def test_a_space_defined_in_one_file_plugs_in_everywhere(chain_space, tmp_path, capsys):
    check_space(chain_space)
    assert main(["arch", "sample", "--space", "toy-chain", "-n", "3", "--seed", "1"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 3
    assert main(["arch", "show", "--space", "toy-chain", "0-1-2", "--json"]) == 0
    # three conv layers of width 8 (3x3, 3x3, 1x1) and a 10-class head
    expected = 3 * 8 * 9 + 8 + 8 * 8 * 9 + 8 + 8 * 8 + 8 + 8 * 10 + 10
    assert json.loads(capsys.readouterr().out)["params_m"] == pytest.approx(expected / 1e6)
    # scoring (every one of its 27 architectures) and a short evolution search on live proxies
    assert main(["score", "--space", "toy-chain", "--archs", "unique", "--proxies", "synflow", "--out", str(tmp_path / "s")]) == 0
    assert main(["score", "--space", "toy-chain", "--archs", "all", "--proxies", "synflow", "--out", str(tmp_path / "s")]) == 0
    assert "27 architectures, 0 computed now (27 already stored)" in capsys.readouterr().out
    out = tmp_path / "search"
    argv = ["search", "--space", "toy-chain", "--strategy", "evolution", "--strategy-option", "population=6",
            "--strategy-option", "sample=2", "--objective", "synflow", "--budget", "12", "--out", str(out)]
    assert main(argv) == 0
    result = json.loads((out / "result.json").read_text())
    assert result["evaluations"] == 12 and chain_space.parse(result["best_arch"]) in chain_space.population()
    assert json.loads((out / "best_genotype.json").read_text())["space"] == "toy-chain"


def test_croze_scores_a_network_of_a_plugged_in_space(chain_space):
    from robustnas.proxies import score

    torch.manual_seed(0)
    values = score(spaces.build("toy-chain", "0-1-2"), torch.randn(8, 3, 8, 8), torch.arange(8) % 10, proxies=["croze"])
    assert values["croze"] > 0 and not values.reasons


# ---- CRoZe's DARTS-like space ------------------------------------------------------------
CROZE = spaces.get("croze-darts")


@pytest.mark.parametrize(
    "name, classes, params",
    # spec crose-and-arnas.md §A.8 (C=36, 20 cells): 5.53 M, 4.72 M (100 classes), 4.60 M
    [("CROZE_CIFAR10", 10, 5_524_894), ("CROZE_CIFAR100", 100, 4_722_976), ("CROZE_IMAGENET", 10, 4_603_654)],
)
def test_published_croze_genotypes_have_the_published_sizes(name, classes, params):
    genotype = CROZE.parse(name)
    assert count_params(genotype, num_classes=classes) == params
    assert count_parameters(CROZE.network(genotype, classes)) == params


def test_the_parameter_count_without_torch_equals_the_networks():
    rng = random.Random(0)
    for _ in range(5):
        genotype = CrozeDartsGenotype.sample(rng)
        assert count_params(genotype, C=8, layers=6) == count_parameters(CROZE.network(genotype, 10, C=8, layers=6))


def test_random_cells_follow_the_sampler():
    rng = random.Random(1)
    for _ in range(200):
        genotype = CROZE.random_arch(rng)
        assert params_m(genotype) <= 6.0
        for cell in ("normal", "reduce"):
            pairs = getattr(genotype, cell)
            assert tuple(source for _, source in pairs) == INPUTS == (0, 1, 0, 1, 2, 0, 1, 2, 3, 0, 1, 2, 3, 4)
            assert all(op != "none" for op, _ in pairs)
            assert 1 <= len(getattr(genotype, f"{cell}_concat")) <= 4
            assert set(getattr(genotype, f"{cell}_concat")) <= {2, 3, 4, 5}
        assert len(genotype.normal_concat) == len(genotype.reduce_concat)  # one length for both cells


def test_mutation_changes_one_op_per_cell_and_at_most_one_concat():
    rng = random.Random(2)
    parent = CROZE.parse("CROZE_CIFAR10")
    resampled = {"normal": 0, "reduce": 0, "neither": 0}
    for _ in range(300):
        child = CROZE.mutate(parent, rng)
        assert parent == CROZE.parse("CROZE_CIFAR10")  # the parent is never edited in place
        for cell in ("normal", "reduce"):
            changed = [(a, b) for a, b in zip(getattr(parent, cell), getattr(child, cell)) if a != b]
            assert len(changed) == 1 and changed[0][0][1] == changed[0][1][1] and changed[0][1][0] != "none"
        moved = [cell for cell in ("normal", "reduce") if getattr(child, f"{cell}_concat") != getattr(parent, f"{cell}_concat")]
        assert len(moved) <= 1
        resampled[moved[0] if moved else "neither"] += 1
    # a third each (a redrawn list may equal the old one, so "neither" is a little more frequent)
    assert 70 < resampled["normal"] < 130 and 70 < resampled["reduce"] < 130


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda g: {**g, "normal": [*g["normal"][:4], ["sep_conv_3x3", 1], *g["normal"][5:]]}, r"inputs \[0, 1, 0, 1, 1, 0"),
        (lambda g: {**g, "reduce_concat": [2, 6]}, "must list 1 to 4 nodes from 2..5"),
        (lambda g: {**g, "reduce_concat": []}, "must list 1 to 4 nodes from 2..5"),
        (lambda g: {**g, "normal": g["normal"][:8]}, r"needs 14 \(op, input\) pairs \(2 for each of nodes 2..8\), got 8"),
        (lambda g: {**g, "normal": [["conv_9x9", 0], *g["normal"][1:]]}, "unknown op 'conv_9x9'"),
    ],
)
def test_genotypes_outside_the_space_are_one_line_errors(change, message):
    data = CROZE.parse("CROZE_CIFAR10").to_json()
    with pytest.raises(ArchError, match=message) as error:
        CROZE.parse(change(data))
    assert "\n" not in str(error.value)


def test_cli_contract_sample_then_show(capsys):
    """`arch sample -n N --seed S` prints N genotypes, each accepted by `arch show --json` (params_m <= 6)."""
    assert main(["arch", "sample", "--space", "croze-darts", "-n", "3", "--seed", "5"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and len(set(lines)) == 3
    for line in lines:
        assert main(["arch", "show", "--space", "croze-darts", line, "--json"]) == 0
        info = json.loads(capsys.readouterr().out)
        assert info["params_m"] <= 6.0 and info["params_m"] == pytest.approx(params_m(CROZE.parse(line)), abs=1e-12)
    assert main(["arch", "sample", "--space", "croze-darts", "-n", "3", "--seed", "5"]) == 0
    assert capsys.readouterr().out.splitlines() == lines


def test_the_flat_encoding_covers_every_concat_list():
    choices = CROZE.choices()
    assert len(choices) == 2 * 14 + 2 and len(choices["normal_concat"]) == 4 + 16 + 64 + 256
    for name, genotype in published_genotypes().items():
        assert CROZE.decode(CROZE.encode(genotype)) == genotype, name


def test_the_top_level_package_exports_what_users_call():
    import robustnas

    assert robustnas.build is spaces.build and robustnas.get_space is spaces.get
    from robustnas.evaluation import evaluate
    from robustnas.proxies import score
    from robustnas.search import make_strategy

    assert robustnas.score is score and robustnas.evaluate is evaluate and robustnas.make_strategy is make_strategy
    assert set(robustnas.__all__) >= {"score", "build", "evaluate", "make_attack", "make_strategy", "RobustnasError"}


def test_plugins_of_other_packages_load_through_entry_points(monkeypatch, tmp_path):
    from importlib.metadata import EntryPoint

    from robustnas import plugins

    points = [EntryPoint("broken", "no_such_module_here", plugins.GROUP)]
    monkeypatch.setattr(plugins, "entry_points", lambda group: points if group == plugins.GROUP else [])
    with pytest.raises(RobustnasError, match=r"plug-in broken \(no_such_module_here\) failed to load: ModuleNotFoundError"):
        plugins.load_plugins()
    (tmp_path / "chain_plugin.py").write_text(
        "from robustnas import spaces\nfrom test_spaces import ChainSpace\nspaces.register(ChainSpace())\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    points[:] = [EntryPoint("chain", "chain_plugin", plugins.GROUP)]
    try:
        assert plugins.load_plugins() == ["chain"] and "toy-chain" in spaces.names()
    finally:
        spaces.unregister("toy-chain")


def test_croze_darts_through_every_command(tmp_path, capsys):
    """robustnas train/evaluate on CRoZe's published CIFAR-10 cell (full size, 1 step), score, export,
    random / warmup-move / evolution searches and NSGA-II on the space's categorical encoding."""
    from robustnas.data import load_dataset

    train, test = load_dataset(split="train"), load_dataset(split="test")
    data = tmp_path / "mini.npz"
    np.savez(data, x_train=train.images[:48], y_train=train.labels[:48], x_test=test.images[:8], y_test=test.labels[:8])
    run_dir = tmp_path / "run"
    argv = ["train", "--space", "croze-darts", "--arch", "CROZE_CIFAR10", "--data", str(data), "--epochs", "1",
            "--batch-size", "32", "--holdout", "16", "--limit", "32", "--adversarial", "none", "--out", str(run_dir)]
    assert main(argv) == 0
    model = json.loads((run_dir / "model.json").read_text())
    assert model["network"] == "croze-darts" and model["options"] == {"C": 36, "layers": 20}
    assert CROZE.parse(model["arch"]) == CROZE.parse("CROZE_CIFAR10")
    assert main(["evaluate", "--checkpoint", str(run_dir), "--suite", "clean", "--n", "8", "--out", str(tmp_path / "ev")]) == 0
    assert 0 <= json.loads((tmp_path / "ev" / "evaluation.json").read_text())["clean"] <= 1
    assert main(["score", "--space", "croze-darts", "--archs", "sample:2", "--proxies", "params,synflow", "--out", str(tmp_path / "s")]) == 0
    assert main(["export", str(tmp_path / "s"), "--out", str(tmp_path / "s.csv")]) == 0
    assert len((tmp_path / "s.csv").read_text().splitlines()) == 3
    for strategy, options in (("random", []), ("warmup-move", ["init_pool=2"]), ("evolution", ["population=3", "sample=2"])):
        argv = ["search", "--space", "croze-darts", "--strategy", strategy, "--objective", "params", "--budget", "4",
                "--out", str(tmp_path / strategy)] + [arg for option in options for arg in ("--strategy-option", option)]
        assert main(argv) == 0
        best = json.loads((tmp_path / strategy / "result.json").read_text())["best_arch"]
        assert params_m(CROZE.parse(best)) <= 6.0
    capsys.readouterr()
    out = tmp_path / "nsga2"
    argv = ["search", "--space", "croze-darts", "--strategy", "nsga2", "--strategy-option", "population=4",
            "--objective", "params,flops", "--budget", "6", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    result = json.loads((out / "result.json").read_text())
    assert result["evaluations"] == 6
    # the categorical encoding reaches genotypes over 6 M parameters: told infeasible, never evaluated
    assert all(params_m(CROZE.parse(point["arch"])) <= 6.0 for point in result["pareto_front"])
    trajectory = (out / "trajectory.csv").read_text().splitlines()[1:]
    assert len(trajectory) == 6 and result["infeasible_asked"] > 0
