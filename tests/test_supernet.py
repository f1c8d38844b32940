"""The DARTS, ARNAS and NB201 supernets (spaces/_supernet.py): sizes of the official search models,
and a supernet with one-hot mixture weights computing its discrete network."""
from __future__ import annotations

import pytest
import torch

from robustnas.spaces._darts_ops import ArnasNetwork, DartsNetwork
from robustnas.spaces._genotypes import ARNAS, DARTS_V2
from robustnas.spaces._nb201_net import NB201Network
from robustnas.spaces._supernet import CellSupernet, NB201Supernet, _kept_edges
from robustnas.spaces.arnas import ARNAS_OPS
from robustnas.spaces.darts import PRIMITIVES, DartsGenotype
from robustnas.spaces.nb201 import NB201Arch

pytestmark = pytest.mark.usefixtures("one_thread")


def test_the_supernets_have_the_official_search_sizes():
    # ARNAS search model, C=24, 8 cells, 10 classes: 1,882,930 weights and 3 x 14 x 7 = 294 alphas (issue 18)
    arnas = CellSupernet(ARNAS_OPS, ArnasNetwork.layout(24, 8), 24, 10)
    assert sum(p.numel() for p in arnas.weight_parameters()) == 1_882_930
    assert sum(p.numel() for p in arnas.arch_parameters()) == 294 and arnas.cell_types == ("accurate", "reduce", "robust")
    # DARTS search model, C=16, 8 cells: 1,930,618 weights (DARTS's "param size = 1.930618MB"), 2 x 14 x 8 alphas
    darts = CellSupernet(PRIMITIVES, DartsNetwork.layout(16, 8), 16, 10)
    assert sum(p.numel() for p in darts.weight_parameters()) == 1_930_618
    assert sum(p.numel() for p in darts.arch_parameters()) == 224
    assert all(alpha.abs().max() < 0.01 for alpha in arnas.arch_parameters())  # 1e-3 * N(0, 1)


def without_pooling(genotype):
    """The genotype with every pooling op replaced by skip_connect (pooling has a search-only BN)."""
    fields = {}
    for cell in genotype.CELLS:
        fields[cell] = tuple(("skip_connect" if "pool" in op else op, source) for op, source in getattr(genotype, cell))
        fields[f"{cell}_concat"] = getattr(genotype, f"{cell}_concat")
    return type(genotype)(**fields)


@pytest.mark.parametrize(
    "network, ops, genotype",
    [(DartsNetwork, PRIMITIVES, without_pooling(DARTS_V2)), (ArnasNetwork, ARNAS_OPS, without_pooling(ARNAS))],
)
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_one_hot_weights_compute_the_discrete_network(network, ops, genotype, mode):
    torch.manual_seed(0)
    discrete = network(genotype, C=8, layers=5, num_classes=10)
    supernet = CellSupernet(ops, network.layout(8, 5), 8, 10)
    supernet.take_weights(discrete, genotype)
    x = torch.randn(4, 3, 16, 16)
    discrete.train(mode == "train")
    supernet.train(mode == "train")
    with torch.no_grad():
        assert torch.equal(supernet(x, supernet.one_hot(genotype)), discrete(x))


def test_pooling_differs_only_by_the_search_bn():
    """With pooling ops the one-hot supernet has one extra affine-free BN per pooling edge (DARTS's
    search convention); in eval mode at initialisation each scales by 1/sqrt(1 + 1e-5)."""
    torch.manual_seed(0)
    discrete = DartsNetwork(DARTS_V2, C=8, layers=5).eval()
    supernet = CellSupernet(PRIMITIVES, DartsNetwork.layout(8, 5), 8, 10).eval()
    supernet.take_weights(discrete, DARTS_V2)
    x = torch.randn(4, 3, 16, 16)
    with torch.no_grad():
        ours, theirs = supernet(x, supernet.one_hot(DARTS_V2)), discrete(x)
    assert not torch.equal(ours, theirs) and torch.allclose(ours, theirs, rtol=1e-3, atol=1e-5)


def test_weights_the_supernet_cannot_hold_are_refused():
    discrete = DartsNetwork(DARTS_V2, C=8, layers=5)
    with torch.no_grad():
        discrete.cells[0]._ops[0].op[3].weight.fill_(2.0)  # an affine BN scale the supernet does not have
    supernet = CellSupernet(PRIMITIVES, DartsNetwork.layout(8, 5), 8, 10)
    # DARTS_V2's first pair, sep_conv_3x3 from input 0, is edge 0, op 4 of the supernet
    with pytest.raises(ValueError, match=r"cells.0._ops.0._ops.4.op.3.weight: the supernet has no such weight"):
        supernet.take_weights(discrete, DARTS_V2)


@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("ops", [(1, 2, 3, 4, 0, 1), (2, 2, 2, 2, 2, 2), (4, 3, 1, 0, 3, 0)])  # every op, none too
def test_nb201_one_hot_weights_compute_the_nb201_network(mode, ops):
    arch = NB201Arch(ops)
    torch.manual_seed(0)
    discrete = NB201Network(arch, num_classes=10, channels=4, cells_per_stage=2)
    supernet = NB201Supernet(num_classes=10, channels=4, cells_per_stage=2)
    supernet.take_weights(discrete, arch)
    discrete.train(mode == "train")
    supernet.train(mode == "train")
    x = torch.randn(4, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(supernet(x, supernet.one_hot(arch)), discrete(x))


def test_nb201_supernet_alphas_and_weights_are_separate():
    supernet = NB201Supernet(num_classes=10, channels=16, cells_per_stage=5)
    assert [tuple(a.shape) for a in supernet.arch_parameters()] == [(6, 5)]
    alphas = {id(a) for a in supernet.arch_parameters()}
    assert not alphas & {id(p) for p in supernet.weight_parameters()}
    assert len(supernet.weight_parameters()) + 1 == len(list(supernet.parameters()))


def alphas_of(supernet, genotype):
    """Alphas whose DARTS discretisation is ``genotype``: each kept pair strong, the first of a node stronger."""
    with torch.no_grad():
        for kind, alpha in supernet.alphas.items():
            alpha.zero_()
            for position, (edge, op) in enumerate(_kept_edges(getattr(genotype, kind))):
                alpha[edge, supernet.ops.index(op)] = 5.0 - (position % 2)


@pytest.mark.parametrize(("network", "ops", "genotype"), [(DartsNetwork, PRIMITIVES, DARTS_V2), (ArnasNetwork, ARNAS_OPS, ARNAS)])
def test_the_darts_rule_reads_back_the_genotype_the_alphas_encode(network, ops, genotype):
    supernet = CellSupernet(ops, network.layout(8, 5), 8, 10)
    alphas_of(supernet, genotype)
    assert supernet.genotype(type(genotype)) == genotype


def test_the_darts_rule_ignores_none_and_keeps_the_first_of_ties():
    supernet = CellSupernet(PRIMITIVES, DartsNetwork.layout(8, 5), 8, 10)
    with torch.no_grad():
        for alpha in supernet.arch_parameters():
            alpha.zero_()
            alpha[:, PRIMITIVES.index("none")] = 9.0  # none dominates every edge, and is never chosen
    genotype = supernet.genotype(DartsGenotype)
    # all other ops tie: the first op after none (max_pool_3x3) on the first two inputs of every node
    assert genotype.normal == (("max_pool_3x3", 0), ("max_pool_3x3", 1)) * 4


def test_nb201_discretisation_is_the_argmax_of_every_edge():
    supernet = NB201Supernet(num_classes=10, channels=4, cells_per_stage=1)
    with torch.no_grad():
        supernet.alphas["cell"].copy_(torch.eye(5)[[1, 2, 3, 4, 0, 2]] * 3.0)
    assert supernet.arch() == NB201Arch((1, 2, 3, 4, 0, 2))


def test_spaces_offer_their_search_supernets():
    from robustnas import spaces
    from robustnas.errors import RobustnasError

    arnas = spaces.get("arnas").supernet(10)  # C=24, 8 cells: the ARNAS search
    assert sum(p.numel() for p in arnas.weight_parameters()) == 1_882_930
    assert isinstance(spaces.get("arnas").discretize(arnas), type(ARNAS))
    assert sum(p.numel() for p in spaces.get("darts").supernet(10).weight_parameters()) == 1_930_618
    assert [tuple(a.shape) for a in spaces.get("nb201").supernet(10, channels=4).arch_parameters()] == [(6, 5)]
    with pytest.raises(RobustnasError, match="the croze-darts space has no supernet; differentiable search needs one of arnas, darts, nb201"):
        spaces.get("croze-darts").supernet(10)
