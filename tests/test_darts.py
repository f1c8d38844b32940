"""DARTS space: published genotypes, encodings, errors, search moves, network size and shapes."""
from __future__ import annotations

import copy
import dataclasses
import json
import random

import pytest
import torch

from robustnas.errors import ArchError, RobustnasError
from robustnas import spaces
from robustnas.spaces import _genotypes as genotypes
from robustnas.spaces.darts import DartsGenotype, cell_channels
from robustnas.spaces._darts_ops import DartsNetwork
from robustnas.spaces._darts_ops import count_parameters, drop_path

# Verbatim from github.com/quark0/darts cnn/genotypes.py (the namedtuple repr of DARTS_V2).
DARTS_V2_TEXT = (
    "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), "
    "('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], "
    "normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), "
    "('max_pool_3x3', 1), ('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), "
    "('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])"
)
# Verbatim from github.com/yuhuixu1993/PC-DARTS genotypes.py (uses range(2, 6) for the concat lists).
PC_DARTS_TEXT = (
    "Genotype(normal=[('sep_conv_3x3', 1), ('skip_connect', 0), ('sep_conv_3x3', 0), ('dil_conv_3x3', 1), "
    "('sep_conv_5x5', 0), ('sep_conv_3x3', 1), ('avg_pool_3x3', 0), ('dil_conv_3x3', 1)], "
    "normal_concat=range(2, 6), reduce=[('sep_conv_5x5', 1), ('max_pool_3x3', 0), ('sep_conv_5x5', 1), "
    "('sep_conv_5x5', 2), ('sep_conv_3x3', 0), ('sep_conv_3x3', 3), ('sep_conv_3x3', 1), "
    "('sep_conv_3x3', 2)], reduce_concat=range(2, 6))"
)


def aux_head_parameters(channels: int, num_classes: int) -> int:
    """Closed form of the DARTS CIFAR auxiliary head: 1x1 conv, BN(128), 2x2 conv, BN(768), linear."""
    return channels * 128 + 2 * 128 + 128 * 768 * 4 + 2 * 768 + 768 * num_classes + num_classes


def differences(a: DartsGenotype, b: DartsGenotype) -> list[tuple[str, int, tuple, tuple]]:
    return [
        (cell, k, pa, pb)
        for cell in a.CELLS
        for k, (pa, pb) in enumerate(zip(getattr(a, cell), getattr(b, cell)))
        if pa != pb
    ]


# ---- published genotypes and encodings -------------------------------------------------------
@pytest.mark.parametrize("name", sorted(genotypes.DARTS_GENOTYPES))
def test_published_genotypes_round_trip(name: str) -> None:
    genotype = genotypes.DARTS_GENOTYPES[name]
    assert DartsGenotype.from_string(genotype.to_string()) == genotype
    assert DartsGenotype.from_json(genotype.to_json()) == genotype
    assert DartsGenotype.parse(json.dumps(genotype.to_json())) == genotype
    assert DartsGenotype.parse(genotype.to_json()) == genotype
    assert DartsGenotype.parse(str(genotype)) == genotype
    assert DartsGenotype.parse(name) is genotype
    assert DartsGenotype.parse(name.lower().replace("_", "-")) is genotype
    assert genotype.to_json()["space"] == "darts"
    assert genotype.normal_concat == genotype.reduce_concat == (2, 3, 4, 5)


def test_string_form_is_the_darts_repr() -> None:
    assert genotypes.DARTS_V2.to_string() == DARTS_V2_TEXT
    assert DartsGenotype.parse(DARTS_V2_TEXT) == genotypes.DARTS_V2
    assert genotypes.DARTS_GENOTYPES["DARTS"] is genotypes.DARTS_V2


def test_reads_published_text_with_range_concat() -> None:
    assert DartsGenotype.parse(PC_DARTS_TEXT) == genotypes.PC_DARTS


def test_genotype_is_immutable_and_hashable() -> None:
    genotype = DartsGenotype.parse(genotypes.DARTS_V2.to_json())  # built from lists
    assert isinstance(genotype.normal, tuple) and all(isinstance(p, tuple) for p in genotype.normal)
    assert isinstance(genotype.normal_concat, tuple)
    with pytest.raises(dataclasses.FrozenInstanceError):
        genotype.normal = ()  # type: ignore[misc]
    assert len({genotype, genotypes.DARTS_V2, genotypes.DARTS_V1}) == 2


# ---- malformed input ---------------------------------------------------------------------------
def _edited(**changes: object) -> dict:
    data = genotypes.DARTS_V2.to_json()
    data.update(changes)
    return data


NORMAL = genotypes.DARTS_V2.to_json()["normal"]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (_edited(normal=[["conv_3x3", 0]] + NORMAL[1:]), "normal cell, node 2: unknown op 'conv_3x3'"),
        (_edited(normal=NORMAL[:2] + [["sep_conv_3x3", 3]] + NORMAL[3:]), "node 3: input 3 is out of range"),
        (_edited(reduce=NORMAL[:7] + [["skip_connect", 5]]), "reduce cell, node 5: input 5 is out of range"),
        (_edited(normal=NORMAL[:7]), "needs 8 (op, input) pairs (2 for each of nodes 2..5), got 7"),
        (_edited(normal=NORMAL + NORMAL[:2]), "got 10"),
        (
            _edited(normal=NORMAL[:6] + [["skip_connect", 1], ["dil_conv_3x3", 1]]),
            "node 5: both pairs read input 1",
        ),
        (_edited(normal=NORMAL[:7] + ["sep_conv_3x3"]), "node 5: each entry must be an (op, input) pair"),
        (_edited(normal_concat=[2, 3, 6]), "normal_concat must list nodes from 2..5"),
        (_edited(reduce_concat=[]), "reduce_concat must list nodes from 2..5"),
        (_edited(reduce_concat=[3, 2]), "in increasing order without repeats"),
        (_edited(space="arnas"), 'not a DARTS genotype JSON object (needs "space": "darts")'),
        ({k: v for k, v in _edited().items() if k != "reduce_concat"}, "fields: missing reduce_concat"),
    ],
)
def test_malformed_genotypes_raise_one_line_errors(data: dict, expected: str) -> None:
    with pytest.raises(ArchError) as info:
        DartsGenotype.parse(data)
    assert expected in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Genotype(normal=__import__('os').system('echo pwned'))", "field normal=__import__('os')"),
        ("Genotype(" + "normal=[('skip_connect', 0)] * 8)", "is not a literal"),
        ("Genotype([], [], [], [])", "must name every field as a keyword"),
        ("Genotype(normal=[]", "was never closed"),
        ("NASNet", "give a published name (DARTS_V1, DARTS_V2, DARTS, PDARTS"),
        ("{not json", "cannot read DARTS genotype JSON"),
        (DARTS_V2_TEXT.replace("reduce_concat", "reduction_concat"), "unknown reduction_concat"),
    ],
)
def test_malformed_text_is_rejected_without_eval(text: str, expected: str) -> None:
    with pytest.raises(ArchError) as info:
        DartsGenotype.parse(text)
    assert expected in str(info.value)
    assert "\n" not in str(info.value)


def _text_with(**fields: str) -> str:
    """DARTS_V2's Genotype(...) text with some fields replaced by raw source text."""
    values = {name: repr(list(getattr(genotypes.DARTS_V2, name))) for name in DartsGenotype.field_names()}
    values.update(fields)
    return "Genotype(" + ", ".join(f"{name}={text}" for name, text in values.items()) + ")"


PAIRS = repr([list(pair) for pair in genotypes.DARTS_V2.normal])  # the 8 pairs as lists


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            _text_with(normal="None"),
            "normal cell: needs 8 (op, input) pairs (2 for each of nodes 2..5), got NoneType",
        ),
        (_text_with(reduce="{'sep_conv_3x3': 0}"), "reduce cell: needs 8 (op, input) pairs"),
        (
            _text_with(normal=PAIRS.replace("0]", "0.0]", 1)),
            "normal cell, node 2: input 0.0 must be an integer",
        ),
        (
            _text_with(normal=PAIRS.replace("0]", "False]", 1)),
            "normal cell, node 2: input False must be an integer",
        ),
        (
            _text_with(normal=PAIRS.replace("0]", "'0']", 1)),
            "normal cell, node 2: input '0' must be an integer",
        ),
        (
            _text_with(normal=PAIRS.replace("0]", "None]", 1)),
            "normal cell, node 2: input None must be an integer",
        ),
        (
            _text_with(normal=PAIRS.replace("['sep_conv_3x3', 0]", "[('sep_conv_3x3', 0), 1]", 1)),
            "normal cell, node 2: unknown op ('sep_conv_3x3', 0)",
        ),
        (
            _text_with(reduce=PAIRS.replace("['sep_conv_3x3', 0]", "(('sep_conv_3x3', 0),)", 1)),
            "reduce cell, node 2: each entry must be an (op, input) pair, got (('sep_conv_3x3', 0),)",
        ),
        (
            _text_with(normal=PAIRS.replace("['sep_conv_3x3', 0]", "{'op': 0}", 1)),
            "node 2: each entry must be an",
        ),
        (_text_with(normal_concat="[2.0, 3, 4, 5]"), "normal_concat must list nodes from 2..5"),
        (_text_with(reduce_concat="[True, 3]"), "reduce_concat must list nodes from 2..5"),
        (_text_with(reduce_concat="None"), "reduce_concat must list nodes from 2..5"),
        (_text_with(normal_concat="{2, 3, 4, 5}"), "normal_concat must list nodes from 2..5"),
        (
            _text_with(normal_concat="range(2.0, 6)"),
            "normal_concat=range(2.0, 6): range() takes 1 to 3 integers",
        ),
        (_text_with(normal_concat="range(2, 6, 0)"), "non-zero step"),
        (_text_with(normal_concat="range(True, 6)"), "range() takes 1 to 3 integers"),
        (_text_with(normal="[" * 150 + "]" * 150), "normal cell: needs 8 (op, input) pairs"),
        (_text_with(normal="-" * 100_000 + "1"), "nested too deeply"),
        (_text_with(normal="1" * 5000), "Exceeds the limit (4300 digits)"),
    ],
)
def test_odd_literals_in_genotype_text_name_the_field(text: str, expected: str) -> None:
    with pytest.raises(ArchError) as info:
        DartsGenotype.parse(text)
    message = str(info.value)
    assert expected in message
    assert "\n" not in message and len(message) < 600


def test_huge_concat_range_is_refused_unexpanded() -> None:
    huge = "range(100000000000000000000000)"
    text = f"Genotype(normal=[], normal_concat={huge}, reduce=[], reduce_concat=[])"
    with pytest.raises(ArchError, match=r"normal_concat=range\(1000.*: a concat list has at most 4 nodes"):
        DartsGenotype.parse(text)
    with pytest.raises(ArchError, match=r"normal_concat must list nodes .* got range\(0, 1000"):
        dataclasses.replace(genotypes.DARTS_V2, normal_concat=range(10**23))
    assert DartsGenotype.parse(_text_with(normal_concat="range(2, 6)")) == genotypes.DARTS_V2


@pytest.mark.parametrize(
    ("nesting", "expected"),
    [
        ('{"normal": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested too deeply"),
        ('{"normal": ' + '{"a": ' * 100_000 + "}" * 100_001, "nested too deeply"),
        ('{"normal": ' + "1" * 5000 + "}", "a number too long"),
    ],
)
def test_deep_or_huge_json_is_one_arch_error(nesting: str, expected: str, tmp_path) -> None:
    with pytest.raises(ArchError) as info:
        DartsGenotype.parse(nesting)
    assert expected in str(info.value) and len(str(info.value)) < 400
    file = tmp_path / "genotype.json"
    file.write_text(nesting)
    with pytest.raises(ArchError, match=expected):
        spaces.parse("darts", str(file))


def test_none_is_a_valid_darts_op() -> None:
    data = _edited(normal=[["none", 0]] + NORMAL[1:])
    assert DartsGenotype.parse(data).normal[0] == ("none", 0)


# ---- search moves ------------------------------------------------------------------------------
def test_sample_is_valid_seeded_and_never_uses_none() -> None:
    first = [DartsGenotype.sample(random.Random(seed)) for seed in range(20)]
    again = [DartsGenotype.sample(random.Random(seed)) for seed in range(20)]
    assert first == again
    assert len(set(first)) == 20
    for genotype in first:
        assert all(op != "none" for cell in genotype.CELLS for op, _ in getattr(genotype, cell))
        assert genotype.normal_concat == genotype.reduce_concat == (2, 3, 4, 5)


def test_neighbours_are_all_single_moves() -> None:
    parent = genotypes.DARTS_V2
    neighbours = parent.neighbours()
    # per cell: 8 pairs x 6 other ops + re-wires (node k has k inputs, 2 in use: 0+1+1+2+2+3+3 = 12)
    assert len(neighbours) == len(set(neighbours)) == 2 * (8 * 6 + 12)
    assert all(len(differences(parent, child)) == 1 for child in neighbours)


@pytest.mark.parametrize("seed", range(40))
def test_mutate_changes_exactly_one_thing_and_keeps_the_parent(seed: int) -> None:
    rng = random.Random(seed)
    parent = DartsGenotype.sample(rng)
    snapshot = copy.deepcopy(parent.to_json())
    child = parent.mutate(rng)
    assert parent.to_json() == snapshot
    ((cell, position, (old_op, old_in), (new_op, new_in)),) = differences(parent, child)
    assert (old_op == new_op) != (old_in == new_in)  # either the op or the input changed, not both
    assert new_op != "none"
    assert child.normal_concat == parent.normal_concat and child.reduce_concat == parent.reduce_concat


def test_mutate_uses_both_kinds_of_move() -> None:
    rng = random.Random(0)
    kinds = set()
    for _ in range(200):
        ((_, _, (old_op, _), (new_op, _)),) = differences(genotypes.DARTS_V2, genotypes.DARTS_V2.mutate(rng))
        kinds.add("op" if old_op != new_op else "input")
    assert kinds == {"op", "input"}


# ---- network -------------------------------------------------------------------------------------
def test_darts_v2_has_the_published_3_3m_parameters() -> None:
    net = DartsNetwork(genotypes.DARTS_V2, C=36, layers=20, num_classes=10, auxiliary=True)
    # The DARTS counter (utils.count_parameters_in_MB) skips the auxiliary head: 3.35 M ~ "3.3 M".
    assert count_parameters(net) == 3_349_342
    assert round(count_parameters(net) / 1e6, 2) == 3.35
    # The auxiliary head reads cell 2L/3 = 13, which outputs 4 nodes x 4C = 576 channels.
    assert count_parameters(net, include_auxiliary=True) == 3_349_342 + aux_head_parameters(16 * 36, 10)
    assert count_parameters(net, include_auxiliary=True) == 3_825_768
    assert count_parameters(DartsNetwork("DARTS_V2", C=36, layers=20)) == 3_349_342


@pytest.mark.parametrize(
    ("name", "exact", "published_m", "digits"),
    [
        ("DARTS_V1", 3_169_414, None, 1),
        ("PDARTS", 3_433_798, 3.4, 1),  # P-DARTS paper, CIFAR-10
        ("PC_DARTS", 3_634_678, 3.6, 1),  # PC-DARTS paper / README
        ("DRNAS", 4_099_294, 4.1, 1),  # DrNAS README table
        ("ADVRUSH", 4_158_046, 4.16, 2),  # spec crose-and-arnas.md §B.5 (same counter)
        ("RACL", 3_571_174, None, 1),
    ],
)
def test_published_genotype_sizes(name: str, exact: int, published_m: float | None, digits: int) -> None:
    count = count_parameters(DartsNetwork(name, C=36, layers=20, num_classes=10))
    assert count == exact
    if published_m is not None:
        assert round(count / 1e6, digits) == published_m


def test_channels_double_at_both_reductions() -> None:
    assert cell_channels(36, 20) == (36,) * 6 + (72,) * 7 + (144,) * 7
    assert cell_channels(16, 8) == (16, 16, 32, 32, 32, 64, 64, 64)


def test_forward_shapes_and_auxiliary_output() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 3, 32, 32)
    net = DartsNetwork("DARTS_V2", C=4, layers=5, num_classes=7, auxiliary=True)
    assert net.classifier.in_features == 4 * 4 * 4  # 4 nodes x 4C after two reductions
    logits, aux_logits = net.train()(x)
    assert logits.shape == aux_logits.shape == (2, 7)
    assert net.eval()(x).shape == (2, 7)
    plain = DartsNetwork(genotypes.PDARTS, C=4, layers=5, num_classes=7)
    assert plain.train()(x).shape == (2, 7)
    assert plain.auxiliary_head is None
    # 64x64 images (Tiny-ImageNet) work without the auxiliary head, which is CIFAR-only
    big = torch.randn(2, 3, 64, 64)
    assert plain.train()(big).shape == (2, 7) and net.eval()(big).shape == (2, 7)
    with pytest.raises(RobustnasError, match="auxiliary head reads an 8x8 feature map .*, got 16x16; build") as error:
        net.train()(big)
    assert "\n" not in str(error.value)


def test_drop_path_is_settable_and_training_only() -> None:
    x = torch.randn(2, 3, 32, 32)
    net = DartsNetwork("DARTS_V2", C=4, layers=5, drop_path_prob=0.0).eval()
    assert net.drop_path_prob == 0.0
    reference = net(x)
    net.drop_path_prob = 0.5
    assert torch.equal(net(x), reference)  # eval mode ignores drop-path
    net.train()
    torch.manual_seed(1)
    dropped = net(x)
    net.drop_path_prob = 0.0
    torch.manual_seed(1)
    assert not torch.allclose(dropped, net(x))


def test_drop_path_zeroes_or_rescales_whole_samples() -> None:
    torch.manual_seed(0)
    x = torch.rand(64, 3, 4, 4) + 1.0
    out = drop_path(x, 0.25)
    kept = [torch.allclose(o, xi / 0.75) for o, xi in zip(out, x)]
    zeroed = [bool((o == 0).all()) for o in out]
    assert all(k != z for k, z in zip(kept, zeroed))
    assert 0 < sum(zeroed) < 64


def test_state_dict_keys_match_the_official_model() -> None:
    keys = set(DartsNetwork("DARTS_V2", C=4, layers=8, auxiliary=True).state_dict())
    for key in (
        "stem.0.weight",
        "cells.0.preprocess0.op.1.weight",
        "cells.0._ops.0.op.5.weight",  # sep_conv_3x3: second depthwise conv
        "cells.3.preprocess0.conv_2.weight",  # FactorizedReduce after reduction cell 2
        "cells.0._ops.7.op.2.weight",  # dil_conv_3x3: pointwise conv
        "auxiliary_head.features.2.weight",
        "auxiliary_head.classifier.bias",
        "classifier.weight",
    ):
        assert key in keys, key


def test_bad_network_size_is_rejected() -> None:
    with pytest.raises(ArchError, match="layers >= 3"):
        DartsNetwork("DARTS_V2", C=4, layers=2)
