"""ARNAS space (spec crose-and-arnas.md Part B): placement, widths, genotype, sizes, moves, network."""
from __future__ import annotations

import copy
import json
import random

import pytest
import torch

from robustnas.errors import ArchError
from robustnas.spaces import _genotypes as genotypes
from robustnas.spaces.arnas import ARNAS_OPS, ArnasGenotype, cell_channels, cell_types
from robustnas.spaces._darts_ops import ArnasNetwork
from robustnas.spaces.darts import DartsGenotype
from robustnas.spaces._darts_ops import count_parameters

# Verbatim from github.com/fyqsama/ARNAS test_AutoAttack/genotypes.py (the released genotype).
ARNAS_TEXT = (
    "Genotype(accurate=[('skip_connect', 0), ('skip_connect', 1), ('sep_conv_5x5', 0), ('sep_conv_3x3', 1), "
    "('sep_conv_5x5', 3), ('sep_conv_3x3', 1), ('sep_conv_5x5', 4), ('skip_connect', 0)], "
    "accurate_concat=range(2, 6), reduce=[('avg_pool_3x3', 1), ('avg_pool_3x3', 0), ('dil_conv_5x5', 2), "
    "('avg_pool_3x3', 0), ('dil_conv_5x5', 3), ('dil_conv_5x5', 2), ('dil_conv_5x5', 4), "
    "('dil_conv_5x5', 3)], reduce_concat=range(2, 6), robust=[('dil_conv_5x5', 0), ('dil_conv_5x5', 1), "
    "('dil_conv_5x5', 1), ('dil_conv_5x5', 2), ('dil_conv_3x3', 3), ('dil_conv_5x5', 2), "
    "('dil_conv_3x3', 4), ('dil_conv_3x3', 3)], robust_concat=range(2, 6))"
)


def aux_head_parameters(channels: int, num_classes: int) -> int:
    """Closed form of the DARTS CIFAR auxiliary head: 1x1 conv, BN(128), 2x2 conv, BN(768), linear."""
    return channels * 128 + 2 * 128 + 128 * 768 * 4 + 2 * 768 + 768 * num_classes + num_classes


def differences(a: ArnasGenotype, b: ArnasGenotype) -> list[tuple[str, int, tuple, tuple]]:
    return [
        (cell, k, pa, pb)
        for cell in a.CELLS
        for k, (pa, pb) in enumerate(zip(getattr(a, cell), getattr(b, cell)))
        if pa != pb
    ]


def indices(types: tuple[str, ...], kind: str) -> list[int]:
    return [i for i, t in enumerate(types) if t == kind]


# ---- placement and widths (§B.1) ---------------------------------------------------------------
def test_placement_for_20_cells() -> None:
    types = cell_types(20)
    assert indices(types, "accurate") == [0, 1, 2, 3, 4, 5, 7, 8, 9, 10, 11, 12]
    assert indices(types, "reduce") == [6, 13]
    assert indices(types, "robust") == [14, 15, 16, 17, 18, 19]


def test_placement_for_8_cells() -> None:
    types = cell_types(8)
    assert indices(types, "accurate") == [0, 1, 3, 4]
    assert indices(types, "reduce") == [2, 5]
    assert indices(types, "robust") == [6, 7]


def test_stage_widths_are_c_2c_2c() -> None:
    assert cell_channels(64, 20) == (64,) * 6 + (128,) * 14
    assert cell_channels(24, 8) == (24, 24, 48, 48, 48, 48, 48, 48)


def test_network_cells_have_c_2c_2c_channels_and_halve_resolution_twice() -> None:
    C = 4
    net = ArnasNetwork("ARNAS", C=C, layers=8, num_classes=10).eval()
    shapes = []
    hooks = [
        cell.register_forward_hook(lambda module, args, out: shapes.append(tuple(out.shape[1:])))
        for cell in net.cells
    ]
    net(torch.randn(1, 3, 32, 32))
    for hook in hooks:
        hook.remove()
    # 4 concatenated nodes per cell; resolution halves at the reduction cells 2 and 5.
    assert shapes == [(4 * C, 32, 32)] * 2 + [(8 * C, 16, 16)] * 3 + [(8 * C, 8, 8)] * 3
    assert net.classifier.in_features == 8 * C


# ---- published genotype and encodings (§B.4) ---------------------------------------------------
def test_released_genotype_matches_the_spec_table() -> None:
    arnas = genotypes.ARNAS
    assert ArnasGenotype.parse(ARNAS_TEXT) == arnas
    assert arnas.accurate[:4] == (
        ("skip_connect", 0), ("skip_connect", 1), ("sep_conv_5x5", 0), ("sep_conv_3x3", 1)
    )  # fmt: skip
    assert arnas.robust[6:] == (("dil_conv_3x3", 4), ("dil_conv_3x3", 3))
    assert arnas.accurate_concat == arnas.reduce_concat == arnas.robust_concat == (2, 3, 4, 5)


@pytest.mark.parametrize("name", sorted(genotypes.ARNAS_GENOTYPES))
def test_published_genotypes_round_trip(name: str) -> None:
    genotype = genotypes.ARNAS_GENOTYPES[name]
    text = genotype.to_string()
    assert text.startswith("Genotype(accurate=[('skip_connect', 0), ")
    assert text.endswith("robust_concat=[2, 3, 4, 5])")
    assert ArnasGenotype.from_string(text) == genotype
    assert ArnasGenotype.from_json(genotype.to_json()) == genotype
    assert ArnasGenotype.parse(json.dumps(genotype.to_json())) == genotype
    assert ArnasGenotype.parse(name.lower()) is genotype
    assert genotype.to_json()["space"] == "arnas"


def test_spaces_do_not_mix() -> None:
    with pytest.raises(ArchError, match='needs "space": "arnas"'):
        ArnasGenotype.parse(genotypes.DARTS_V2.to_json())
    with pytest.raises(ArchError, match="missing accurate, accurate_concat, robust, robust_concat"):
        ArnasGenotype.parse(genotypes.DARTS_V2.to_string())
    with pytest.raises(ArchError, match=r"give a published name \(DARTS_V1"):
        DartsGenotype.parse("ARNAS")


# ---- malformed input ---------------------------------------------------------------------------
def _edited(cell: str, position: int, pair: list) -> dict:
    data = genotypes.ARNAS.to_json()
    data[cell][position] = pair
    return data


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (_edited("robust", 0, ["none", 1]), "ARNAS genotype, robust cell, node 2: unknown op 'none'"),
        (_edited("accurate", 5, ["sep_conv_7x7", 1]), "accurate cell, node 4: unknown op 'sep_conv_7x7'"),
        (_edited("reduce", 6, ["dil_conv_5x5", 7]), "reduce cell, node 5: input 7 is out of range"),
        (
            _edited("reduce", 0, ["avg_pool_3x3", -1]),
            "node 2: input -1 is out of range; node 2 reads states 0..1",
        ),
        (_edited("robust", 3, ["dil_conv_5x5", 1]), "robust cell, node 3: both pairs read input 1"),
        ({**genotypes.ARNAS.to_json(), "robust": []}, "robust cell: needs 8 (op, input) pairs"),
        ({**genotypes.ARNAS.to_json(), "accurate_concat": [1, 2]}, "accurate_concat must list nodes"),
    ],
)
def test_malformed_genotypes_raise_one_line_errors(data: dict, expected: str) -> None:
    with pytest.raises(ArchError) as info:
        ArnasGenotype.parse(data)
    assert expected in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("field", "source", "expected"),
    [
        ("robust_concat", "range(100000000000000000000000)", "robust_concat=range(1000"),
        ("accurate", "None", "ARNAS genotype, accurate cell: needs 8 (op, input) pairs"),
        ("robust", repr([("dil_conv_5x5", True)] * 8), "robust cell, node 2: input True must be an integer"),
        ("reduce", "{'avg_pool_3x3': 1}", "ARNAS genotype, reduce cell: needs 8 (op, input) pairs"),
    ],
)
def test_odd_literals_in_genotype_text_name_the_field(field: str, source: str, expected: str) -> None:
    text = genotypes.ARNAS.to_string()
    original = f"{field}={list(getattr(genotypes.ARNAS, field))!r}"
    assert original in text
    with pytest.raises(ArchError) as info:
        ArnasGenotype.parse(text.replace(original, f"{field}={source}"))
    assert expected in str(info.value)
    assert "\n" not in str(info.value)


def test_deeply_nested_json_is_one_arch_error() -> None:
    with pytest.raises(ArchError, match="cannot read ARNAS genotype JSON .*: nested too deeply"):
        ArnasGenotype.parse('{"accurate": ' + "[" * 100_000 + "]" * 100_000 + "}")


# ---- search moves ------------------------------------------------------------------------------
def test_sample_uses_the_seven_ops() -> None:
    assert ARNAS_OPS == ("max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3", "sep_conv_5x5",
                         "dil_conv_3x3", "dil_conv_5x5")  # fmt: skip
    samples = [ArnasGenotype.sample(random.Random(seed)) for seed in range(20)]
    assert samples == [ArnasGenotype.sample(random.Random(seed)) for seed in range(20)]
    used = {op for genotype in samples for cell in genotype.CELLS for op, _ in getattr(genotype, cell)}
    assert used == set(ARNAS_OPS)


def test_neighbours_count() -> None:
    neighbours = genotypes.ARNAS.neighbours()
    assert len(neighbours) == len(set(neighbours)) == 3 * (8 * 6 + 12)


@pytest.mark.parametrize("seed", range(30))
def test_mutate_changes_exactly_one_thing_and_keeps_the_parent(seed: int) -> None:
    rng = random.Random(seed)
    parent = ArnasGenotype.sample(rng)
    snapshot = copy.deepcopy(parent.to_json())
    child = parent.mutate(rng)
    assert parent.to_json() == snapshot
    ((_, _, (old_op, old_in), (new_op, new_in)),) = differences(parent, child)
    assert (old_op == new_op) != (old_in == new_in)
    assert [getattr(child, f"{c}_concat") for c in child.CELLS] == [(2, 3, 4, 5)] * 3


# ---- network size (§B.5) and shapes ------------------------------------------------------------
def test_arnas_has_the_published_4_52m_parameters() -> None:
    net = ArnasNetwork(genotypes.ARNAS, C=64, layers=20, num_classes=10, auxiliary=True)
    # 4.52 M = the official counter (skips the auxiliary head) on NetworkCIFAR_new with aux on.
    assert count_parameters(net) == 4_520_394
    assert round(count_parameters(net) / 1e6, 2) == 4.52
    # The auxiliary head reads the second reduction cell: 4 nodes x 2C = 512 channels.
    assert count_parameters(net, include_auxiliary=True) == 4_520_394 + aux_head_parameters(8 * 64, 10)
    assert count_parameters(net, include_auxiliary=True) == 4_988_628


@pytest.mark.parametrize(
    ("C", "layers", "num_classes", "exact", "published_m"),
    [
        (64, 20, 100, 4_566_564, 4.57),  # §B.5 CIFAR-100
        (84, 14, 200, 5_405_684, 5.41),  # §B.5 Tiny-ImageNet setting
        (24, 8, 10, 285_874, 0.29),  # §B.3 search-size network
    ],
)
def test_other_spec_sizes(C: int, layers: int, num_classes: int, exact: int, published_m: float) -> None:
    net = ArnasNetwork("ARNAS", C=C, layers=layers, num_classes=num_classes, auxiliary=True)
    count = count_parameters(net)
    assert count == exact
    assert round(count / 1e6, 2) == published_m


def test_forward_shapes_and_auxiliary_output() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 3, 32, 32)
    net = ArnasNetwork("ARNAS", C=4, layers=5, num_classes=7, auxiliary=True, drop_path_prob=0.2)
    assert net.drop_path_prob == 0.2
    logits, aux_logits = net.train()(x)
    assert logits.shape == aux_logits.shape == (2, 7)
    assert net.eval()(x).shape == (2, 7)
    assert ArnasNetwork(ArnasGenotype.sample(random.Random(3)), C=4, layers=3).train()(x).shape == (2, 10)
