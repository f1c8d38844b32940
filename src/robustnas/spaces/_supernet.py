"""Supernets for differentiable search: DARTS-style spaces (DARTS §2.2, ARNAS spec §B.1) and NB201.

Every edge of a cell is a mixed operation, ``sum_o softmax(alpha_edge)_o * o(x)``, over the space's
primitives built with affine-free BN (pooling followed by an affine-free BN, the DARTS convention);
a cell has ``nodes`` intermediate nodes, node i reading every earlier state (2 + 3 + 4 + 5 = 14
edges for 4 nodes), and outputs the concat of its intermediate nodes. Each cell type ("normal" and
"reduce" for DARTS; "accurate", "reduce", "robust" for ARNAS) has its own alpha tensor
[edges, ops], initialised 1e-3 * N(0, 1). The macro skeleton is the space's evaluation network
(stem 3x3 conv to 3C + BN, reductions at ⌊L/3⌋ and ⌊2L/3⌋, the space's widths), no auxiliary head.

NB201's supernet (``NB201Supernet``) is its skeleton with a mixed edge over the 5 ops on each of
the 6 edges of every cell and one shared alpha [6, 5]; its pooling has no extra BN (as NB201).

``weight_parameters()`` and ``arch_parameters()`` separate the two sets the search optimises;
``forward(x, weights=...)`` takes explicit mixture weights per cell type instead of the softmax of
the alphas (one-hot rows select one op; a zero row switches an edge off).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import torch
from torch import nn

from robustnas.spaces._darts_ops import FactorizedReduce, ReLUConvBN, make_op
from robustnas.spaces._nb201_net import NB201Network
from robustnas.spaces._nb201_net import make_op as nb201_op
from robustnas.spaces.nb201 import EDGES, OPS, NB201Arch

ALPHA_INIT_SCALE = 1e-3
NODES = 4


def edges_of(nodes: int) -> int:
    """Edges of a cell with ``nodes`` intermediate nodes: 2 + 3 + ... + (nodes + 1)."""
    return sum(2 + i for i in range(nodes))


class MixedOp(nn.Module):
    """One edge: its candidate ops, weighted and summed (a weight of 0 adds an exact 0, so one-hot
    weights compute the one op)."""

    def __init__(self, ops: Iterable[nn.Module]) -> None:
        super().__init__()
        self._ops = nn.ModuleList(ops)

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        return sum(w * op(x) for w, op in zip(weights, self._ops))


def darts_edge(ops: Sequence[str], channels: int, stride: int) -> MixedOp:
    """A DARTS-style edge: affine-free BN, pooling followed by an affine-free BN (DARTS convention)."""
    modules = []
    for name in ops:
        op = make_op(name, channels, stride, affine=False)
        modules.append(nn.Sequential(op, nn.BatchNorm2d(channels, affine=False)) if "pool" in name else op)
    return MixedOp(modules)


class SearchCell(nn.Module):
    """A cell of mixed edges; edge order: node 0's inputs 0, 1, then node 1's inputs 0, 1, 2, ..."""

    def __init__(
        self, ops: Sequence[str], channels: int, reduction: bool, reduction_prev: bool, c_prev_prev: int, c_prev: int
    ) -> None:
        super().__init__()
        if reduction_prev:
            self.preprocess0: nn.Module = FactorizedReduce(c_prev_prev, channels, affine=False)
        else:
            self.preprocess0 = ReLUConvBN(c_prev_prev, channels, 1, 1, 0, affine=False)
        self.preprocess1 = ReLUConvBN(c_prev, channels, 1, 1, 0, affine=False)
        self._ops = nn.ModuleList(
            darts_edge(ops, channels, 2 if reduction and source < 2 else 1)
            for node in range(NODES)
            for source in range(2 + node)
        )
        self.out_channels = NODES * channels

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        offset = 0
        for _ in range(NODES):
            states.append(sum(self._ops[offset + j](h, weights[offset + j]) for j, h in enumerate(states)))
            offset += len(states) - 1
        return torch.cat(states[-NODES:], dim=1)


class _Alphas:
    """What every supernet answers about its architecture parameters (``self.alphas``, a
    ParameterDict of one alpha per cell type)."""

    alphas: nn.ParameterDict

    def arch_parameters(self) -> list[nn.Parameter]:
        """The alpha tensors, one per cell type."""
        return list(self.alphas.values())

    def weight_parameters(self) -> list[nn.Parameter]:
        """Every parameter but the alphas."""
        alphas = {id(alpha) for alpha in self.alphas.values()}
        return [p for p in self.parameters() if id(p) not in alphas]

    def mixture_weights(self) -> dict[str, torch.Tensor]:
        """softmax(alpha) over the ops of each edge, per cell type."""
        return {kind: torch.softmax(alpha, dim=-1) for kind, alpha in self.alphas.items()}


class CellSupernet(_Alphas, nn.Module):
    """The supernet of a DARTS-style space: ``layout`` gives (cell type, channels) per cell."""

    def __init__(self, ops: Sequence[str], layout: Sequence[tuple[str, int]], C: int, num_classes: int) -> None:
        super().__init__()
        self.ops = tuple(ops)
        self.cell_types = tuple(dict.fromkeys(kind for kind, _ in layout))
        self._layout = tuple(kind for kind, _ in layout)
        self.stem = nn.Sequential(nn.Conv2d(3, 3 * C, 3, padding=1, bias=False), nn.BatchNorm2d(3 * C))
        self.cells = nn.ModuleList()
        c_prev_prev = c_prev = 3 * C
        reduction_prev = False
        for kind, width in layout:
            cell = SearchCell(ops, width, kind == "reduce", reduction_prev, c_prev_prev, c_prev)
            self.cells.append(cell)
            c_prev_prev, c_prev, reduction_prev = c_prev, cell.out_channels, kind == "reduce"
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_prev, num_classes)
        shape = (edges_of(NODES), len(ops))
        self.alphas = nn.ParameterDict(
            {kind: nn.Parameter(ALPHA_INIT_SCALE * torch.randn(shape)) for kind in self.cell_types}
        )

    def forward(self, x: torch.Tensor, weights: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        weights = self.mixture_weights() if weights is None else weights
        s0 = s1 = self.stem(x)
        for kind, cell in zip(self._layout, self.cells):
            s0, s1 = s1, cell(s0, s1, weights[kind])
        return self.classifier(self.global_pooling(s1).flatten(1))

    # ---- a discrete architecture inside the supernet ---------------------------------------------
    def genotype(self, genotype_type: type):
        """The DARTS discretisation (DARTS code ``genotype()``, ARNAS spec §B.4): per cell type and
        node, the 2 incoming edges whose strongest op other than ``none`` weighs most (stable for
        ties), each with that op; pairs strongest first; concat of all intermediate nodes."""
        fields = {}
        for kind, weights in self.mixture_weights().items():
            fields[kind] = tuple(pair for node in range(NODES) for pair in self._node_pairs(weights.detach(), node))
            fields[f"{kind}_concat"] = tuple(range(2, 2 + NODES))
        return genotype_type(**fields)

    def _node_pairs(self, weights: torch.Tensor, node: int) -> list[tuple[str, int]]:
        start = edges_of(node)
        candidates = [k for k, op in enumerate(self.ops) if op != "none"]

        def best_op(edge: int) -> int:
            row = weights[start + edge]
            return max(candidates, key=lambda k: (float(row[k]), -k))  # the first of equal weights

        edges = sorted(range(2 + node), key=lambda edge: -float(weights[start + edge, best_op(edge)]))[:2]
        return [(self.ops[best_op(edge)], edge) for edge in edges]

    def one_hot(self, genotype) -> dict[str, torch.Tensor]:
        """Mixture weights selecting ``genotype``: per kept (op, input) pair a 1, every other entry 0."""
        weights = {kind: torch.zeros(edges_of(NODES), len(self.ops)) for kind in self.cell_types}
        for kind in self.cell_types:
            for edge, op in _kept_edges(getattr(genotype, kind)):
                weights[kind][edge, self.ops.index(op)] = 1.0
        return weights

    def take_weights(self, discrete: nn.Module, genotype) -> None:
        """Copy a discrete network's weights (same C and layers; a GenotypeNetwork of ``genotype``)
        into the ops ``genotype`` keeps, the preprocessing, stem and classifier."""

        def where(parts: list[str]) -> list[str]:
            if parts[0] == "cells" and parts[2] == "_ops":
                edge, op = _kept_edges(getattr(genotype, self._layout[int(parts[1])]))[int(parts[3])]
                return ["cells", parts[1], "_ops", str(edge), "_ops", str(self.ops.index(op)), *parts[4:]]
            return parts

        _transfer(self, discrete, where)


def _kept_edges(pairs: Sequence[tuple[str, int]]) -> list[tuple[int, str]]:
    """(edge index, op) of each (op, input) pair of a 4-node cell, in pair order."""
    return [(sum(2 + n for n in range(position // 2)) + source, op) for position, (op, source) in enumerate(pairs)]


def _identity_affine(name: str, value: torch.Tensor) -> bool:
    """A BN scale of ones or shift of zeros: the affine-free BN of the supernet computes the same."""
    return (name.endswith(".weight") and bool((value == 1).all())) or (name.endswith(".bias") and bool((value == 0).all()))


def _transfer(supernet: nn.Module, discrete: nn.Module, where: Callable[[list[str]], list[str]]) -> None:
    """Load ``discrete``'s state into ``supernet``, each name moved by ``where``; the discrete
    network's affine BN scales and shifts, which the supernet's affine-free BN lacks, must be 1 and 0."""
    state = {".".join(where(name.split("."))): value for name, value in discrete.state_dict().items()}
    own = supernet.state_dict()
    changed = [name for name, value in state.items() if name not in own and not _identity_affine(name, value)]
    if changed:
        raise ValueError(f"{changed[0]}: the supernet has no such weight (affine BN must be 1 and 0 here)")
    own.update({name: value for name, value in state.items() if name in own})
    supernet.load_state_dict(own)


class NB201Supernet(_Alphas, NB201Network):
    """The NAS-Bench-201 supernet: the NB201 skeleton (stem, 3 stages of N cells, residual
    reductions, head) whose cells have a mixed edge over the 5 ops on each of their 6 edges, with
    affine-free BN, and one alpha [6, 5] shared by every cell (columns in ``nb201.OPS`` order)."""

    def __init__(self, num_classes: int = 10, channels: int = 16, cells_per_stage: int = 5) -> None:
        nn.Module.__init__(self)
        self._build(NB201SearchCell, num_classes, channels, cells_per_stage)
        self.alphas = nn.ParameterDict({"cell": nn.Parameter(ALPHA_INIT_SCALE * torch.randn(len(EDGES), len(OPS)))})

    def forward(self, x: torch.Tensor, weights: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        weights = self.mixture_weights() if weights is None else weights
        x = self.stem(x)
        for cell in self.cells:
            x = cell(x, weights["cell"]) if isinstance(cell, NB201SearchCell) else cell(x)
        return self.classifier(self.global_pooling(self.lastact(x)).flatten(1))

    def arch(self) -> NB201Arch:
        """The discretisation of NB201 searches: the argmax op of every edge (the first of ties)."""
        weights = self.mixture_weights()["cell"].detach()
        return NB201Arch(tuple(int(torch.argmax(row)) for row in weights))

    def one_hot(self, arch: NB201Arch) -> dict[str, torch.Tensor]:
        """Mixture weights selecting ``arch``: row e is the one-hot of its op on edge e."""
        return {"cell": torch.eye(len(OPS))[list(arch.ops)]}

    def take_weights(self, discrete: NB201Network, arch: NB201Arch) -> None:
        """Copy an NB201 network's weights (same sizes, architecture ``arch``) into the ops it uses."""

        def where(parts: list[str]) -> list[str]:
            if parts[0] == "cells" and parts[2] == "edges":
                return [*parts[:4], "_ops", str(arch.ops[int(parts[3])]), *parts[4:]]
            return parts

        _transfer(self, discrete, where)


class NB201SearchCell(nn.Module):
    """An NB201 cell with a mixed edge on each of its 6 edges (node j = sum_i edge_ij(node i))."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.edges = nn.ModuleList(MixedOp(nb201_op(name, channels, affine=False) for name in OPS) for _ in EDGES)

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        nodes = {1: x}
        for target in (2, 3, 4):
            nodes[target] = sum(
                edge(nodes[source], weights[e]) for e, (edge, (source, dest)) in enumerate(zip(self.edges, EDGES))
                if dest == target
            )
        return nodes[4]
