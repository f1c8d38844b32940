"""NAS-Bench-201: encodings, isomorphism, network and parameter/FLOP counts against real data."""
from __future__ import annotations

import json
import random
import re

import pandas as pd
import pytest
import torch

from robustnas.errors import ArchError, RobustnasError
from robustnas.spaces._counting import count
from robustnas.spaces.nb201 import NUM_ARCHS, NB201Arch, all_archs, unique_indices
from robustnas.spaces import INPUT_SIZE
from robustnas.spaces import build as build_network

EXAMPLE = NB201Arch((0, 2, 3, 2, 3, 1))
EXAMPLE_STRING = "|skip_connect~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_1x1~0|nor_conv_1x1~1|none~2|"


def test_spec_test_vectors():
    assert EXAMPLE.to_string() == EXAMPLE_STRING
    assert NB201Arch.from_string(EXAMPLE_STRING) == EXAMPLE
    assert NB201Arch.from_index(50).ops == (3, 2, 2, 3, 0, 3)
    assert NB201Arch((4, 3, 3, 3, 2, 3)).to_string() == (
        "|avg_pool_3x3~0|+|nor_conv_1x1~0|nor_conv_1x1~1|+|nor_conv_1x1~0|nor_conv_3x3~1|nor_conv_1x1~2|"
    )


def test_lossless_round_trips_for_every_architecture():
    indices = set()
    for index, arch in enumerate(all_archs()):
        assert NB201Arch.from_string(arch.to_string()) == arch
        assert arch.index == index
        assert NB201Arch.parse(str(arch.ops)) == arch
        assert NB201Arch.from_json(json.loads(json.dumps(arch.to_json()))) == arch
        indices.add(arch.code)
    assert len(indices) == NUM_ARCHS


def test_parse_accepts_every_form():
    assert NB201Arch.parse(EXAMPLE.index) == EXAMPLE
    assert NB201Arch.parse(str(EXAMPLE.index)) == EXAMPLE
    assert NB201Arch.parse(EXAMPLE_STRING) == EXAMPLE
    assert NB201Arch.parse("(0, 2, 3, 2, 3, 1)") == EXAMPLE
    assert NB201Arch.parse([0, 2, 3, 2, 3, 1]) == EXAMPLE


@pytest.mark.parametrize(
    "bad, message",
    [
        ((0, 2, 3), "6 integer entries"),
        ((0, 2, 3, 2, 3, 7), "6 integer entries in 0..4"),
        ((0, 2, 3, 2, 3, 1.0), "integer entries"),
        ((True, 2, 3, 2, 3, 1), "integer entries"),
        ("(0, 'a', 3, 2, 3, 1)", "integer entries"),
        ("(1e400, 2, 3, 2, 3, 1)", "integer entries"),
        ("(1)", "integer entries"),
        ("\u0663", "cannot read NB201 architecture"),
        ("|skip_connect~0|+|nor_conv_3x3~0|", "3 '+'-separated"),
        ("|skip~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_1x1~0|nor_conv_1x1~1|none~2|", "bad edge 'skip~0'"),
        ("|skip_connect~0|+|nor_conv_3x3~1|nor_conv_3x3~0|+|none~0|none~1|none~2|", "expected '<op>~0'"),
        (15625, "0..15624"),
        ("(0, 2,", "cannot read op-index tuple"),
        (3.5, "cannot read NB201 architecture"),
    ],
)
def test_malformed_architectures_give_one_line_errors(bad, message):
    with pytest.raises(ArchError, match=re.escape(message)) as info:
        NB201Arch.parse(bad)
    assert "\n" not in str(info.value)
    assert isinstance(info.value, RobustnasError)


def test_isomorphism_classes_match_the_robustness_dataset(nb201_data):
    meta = json.loads((nb201_data / "robustness-dataset" / "meta.json").read_text())["ids"]
    assert len(unique_indices()) == 6466
    for uid, entry in meta.items():
        arch = NB201Arch.from_index(int(uid))
        assert arch.to_string() == entry["nb201-string"]
        assert arch.isomorph_index == int(entry["isomorph"])


def test_unique_strings_without_zero_quirk_count():
    assert len({a.unique_string() for a in all_archs()}) == 6466


def test_sampling_mutation_and_neighbourhood():
    rng = random.Random(0)
    arch = NB201Arch.sample(rng)
    assert arch == NB201Arch.sample(random.Random(0))
    for _ in range(100):
        child = arch.mutate(rng)
        assert sum(a != b for a, b in zip(child.ops, arch.ops)) == 1
    neighbours = arch.neighbours()
    assert len(neighbours) == 24 == len(set(neighbours))
    assert all(sum(a != b for a, b in zip(n.ops, arch.ops)) == 1 for n in neighbours)


@pytest.mark.parametrize("dataset, classes", [("cifar10", 10), ("cifar100", 100), ("ImageNet16-120", 120)])
def test_network_output_shape(dataset, classes):
    size = INPUT_SIZE[dataset]
    logits = build_network("nb201", EXAMPLE, dataset)(torch.randn(2, 3, size, size))
    assert logits.shape == (2, classes)


def test_network_structure_matches_nb201():
    net = build_network("nb201", EXAMPLE)
    assert len(net.cells) == 17  # 15 cells + 2 residual reductions
    pools = [m for m in build_network("nb201", NB201Arch((4,) * 6)).modules() if isinstance(m, torch.nn.AvgPool2d)]
    assert all(not p.count_include_pad for p in pools if p.kernel_size == 3)
    bns = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert all(bn.affine and bn.track_running_stats for bn in bns)


@pytest.mark.parametrize(
    "dataset, params, flops",
    [
        ("cifar10", 615386, 88307392),
        ("cifar100", 621236, 88313152),
        ("ImageNet16-120", 622536, 22084672),
    ],
)
def test_counts_of_spec_example(dataset, params, flops):
    size = INPUT_SIZE[dataset]
    counts = count(build_network("nb201", EXAMPLE, dataset), (1, 3, size, size))
    assert (counts.params, counts.flops) == (params, flops)


def test_count_leaves_the_model_as_it_was():
    net = build_network("nb201", EXAMPLE, "cifar10").train()
    net.cells[0].eval()  # mixed modes must survive
    before = {k: v.clone() for k, v in net.state_dict().items()}
    count(net, (1, 3, 32, 32))
    assert net.training and not net.cells[0].training and net.cells[1].training
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def _suite(nb201_data, dataset: str) -> pd.DataFrame:
    table = pd.read_csv(nb201_data / "suite-zero" / f"zc-proxies-{dataset}.csv")
    table["arch"] = [NB201Arch.parse(s) for s in table["net"]]
    table["composition"] = [(a.count("nor_conv_3x3"), a.count("nor_conv_1x1"), a.count("avg_pool_3x3")) for a in table["arch"]]
    return table


@pytest.mark.parametrize("dataset", ["cifar10", "ImageNet16-120"])
def test_counts_equal_suite_zero_for_all_architectures(nb201_data, dataset):
    """All 9,445 suite architectures, counted on real modules.

    Every op's count is independent of its edge, so the suite's values are a function of the
    op composition (checked below for every row); one real network per composition that occurs
    (and its counts compared with every row of that composition) therefore covers all rows. The
    full per-network sweep is benchmarks/check_nb201_counts.py.
    """
    table = _suite(nb201_data, dataset)
    assert len(table) == 9445
    size = INPUT_SIZE[dataset]
    for composition, rows in table.groupby("composition"):
        counts = count(build_network("nb201", rows["arch"].iloc[0], dataset), (1, 3, size, size))
        assert (abs(rows["params"] - counts.params_m) <= 1e-6).all(), composition
        assert (abs(rows["flops"] - counts.flops_m) <= 1e-6).all(), composition


@pytest.mark.parametrize("dataset", ["cifar10", "ImageNet16-120"])
def test_params_flops_proxies_equal_suite_zero_for_all_architectures(nb201_data, dataset):
    """The same check through the proxy API (``score``), on a batch of the dataset's shape."""
    from robustnas.proxies import score

    table = _suite(nb201_data, dataset)
    size = INPUT_SIZE[dataset]
    x = torch.zeros(2, 3, size, size)
    for composition, rows in table.groupby("composition"):
        values = score(build_network("nb201", rows["arch"].iloc[0], dataset), x, proxies=["params", "flops"])
        assert (abs(rows["params"] - values["params"]) <= 1e-6).all(), composition
        assert (abs(rows["flops"] - values["flops"]) <= 1e-6).all(), composition


def test_unknown_dataset_is_a_clear_error():
    with pytest.raises(RobustnasError, match="unknown dataset 'cifar11'"):
        build_network("nb201", EXAMPLE, "cifar11")


def test_graph_features_count_ops_on_the_four_paths():
    from robustnas.spaces.nb201 import GRAPH_FEATURES, graph_features

    # e12, e13, e14, e23, e24, e34 = conv3, conv3, skip, conv3, conv3, conv3
    full = graph_features(NB201Arch((2, 2, 0, 2, 2, 2)))
    assert list(full) == list(GRAPH_FEATURES) and len(full) == 54
    assert sum(v for k, v in full.items() if k.startswith("edge")) == 6.0
    assert full["edge14_skip_connect"] == 1.0 and full["edge34_nor_conv_3x3"] == 1.0
    assert (full["path14_skip_connect"], full["path124_nor_conv_3x3"], full["path1234_nor_conv_3x3"]) == (1, 2, 3)
    assert (full["alive_paths"], full["max_conv3x3_on_path"], full["conv3x3_on_paths"], full["conv_free_paths"]) == (
        4, 3, 7, 1)
    # e12 = none kills paths 1-2-4 and 1-2-3-4; e14 = none kills 1-4; only 1-3-4 (conv1x1, pool) is left
    sparse = graph_features(NB201Arch((1, 3, 1, 2, 2, 4)))
    assert [sparse[f"path{p}_alive"] for p in ("14", "124", "134", "1234")] == [0, 0, 1, 0]
    assert sparse["path124_nor_conv_3x3"] == -1 and sparse["path134_nor_conv_1x1"] == 1
    assert (sparse["alive_paths"], sparse["max_conv3x3_on_path"], sparse["conv3x3_on_paths"],
            sparse["conv_free_paths"]) == (1, 0, 0, 0)
    dead = graph_features(NB201Arch((1, 1, 1, 1, 1, 1)))
    assert (dead["alive_paths"], dead["max_conv3x3_on_path"], dead["conv_free_paths"]) == (0, -1, 0)
