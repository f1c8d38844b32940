"""Supernets of the DARTS-style spaces for differentiable search (DARTS §2.2, ARNAS spec §B.1).

Every edge of a cell is a mixed operation, ``sum_o softmax(alpha_edge)_o * o(x)``, over the space's
primitives built with affine-free BN (pooling followed by an affine-free BN, the DARTS convention);
a cell has ``nodes`` intermediate nodes, node i reading every earlier state (2 + 3 + 4 + 5 = 14
edges for 4 nodes), and outputs the concat of its intermediate nodes. Each cell type ("normal" and
"reduce" for DARTS; "accurate", "reduce", "robust" for ARNAS) has its own alpha tensor
[edges, ops], initialised 1e-3 * N(0, 1). The macro skeleton is the space's evaluation network
(stem 3x3 conv to 3C + BN, reductions at ⌊L/3⌋ and ⌊2L/3⌋, the space's widths), no auxiliary head.

``weight_parameters()`` and ``arch_parameters()`` separate the two sets the search optimises;
``forward(x, weights=...)`` takes explicit mixture weights per cell type instead of the softmax of
the alphas (one-hot rows select one op; a zero row switches an edge off).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from robustnas.spaces._darts_ops import FactorizedReduce, ReLUConvBN, make_op

ALPHA_INIT_SCALE = 1e-3
NODES = 4


def edges_of(nodes: int) -> int:
    """Edges of a cell with ``nodes`` intermediate nodes: 2 + 3 + ... + (nodes + 1)."""
    return sum(2 + i for i in range(nodes))


class MixedOp(nn.Module):
    """One edge: every primitive on ``channels`` channels, weighted and summed."""

    def __init__(self, ops: Sequence[str], channels: int, stride: int) -> None:
        super().__init__()
        self._ops = nn.ModuleList()
        for name in ops:
            op = make_op(name, channels, stride, affine=False)
            if "pool" in name:
                op = nn.Sequential(op, nn.BatchNorm2d(channels, affine=False))
            self._ops.append(op)

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        return sum(w * op(x) for w, op in zip(weights, self._ops) if w.requires_grad or w != 0)


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
            MixedOp(ops, channels, 2 if reduction and source < 2 else 1)
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


class CellSupernet(nn.Module):
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

    def forward(self, x: torch.Tensor, weights: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        weights = self.mixture_weights() if weights is None else weights
        s0 = s1 = self.stem(x)
        for kind, cell in zip(self._layout, self.cells):
            s0, s1 = s1, cell(s0, s1, weights[kind])
        return self.classifier(self.global_pooling(s1).flatten(1))

    # ---- a discrete architecture inside the supernet ---------------------------------------------
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
        state = {}
        for name, value in discrete.state_dict().items():
            parts = name.split(".")
            if parts[0] == "cells" and parts[2] == "_ops":
                cell, pair = int(parts[1]), int(parts[3])
                kind = self._layout[cell]
                edge, op = _kept_edges(getattr(genotype, kind))[pair]
                name = ".".join(["cells", parts[1], "_ops", str(edge), "_ops", str(self.ops.index(op)), *parts[4:]])
            state[name] = value
        own = self.state_dict()
        # the supernet's BN is affine-free: the discrete network's BN scales and shifts must be 1 and 0
        extra = {name: value for name, value in state.items() if name not in own}
        changed = [name for name, value in extra.items() if not _identity_affine(name, value)]
        if changed:
            raise ValueError(f"{changed[0]}: the supernet has no such weight (affine BN must be 1 and 0 here)")
        own.update({name: value for name, value in state.items() if name in own})
        self.load_state_dict(own)


def _kept_edges(pairs: Sequence[tuple[str, int]]) -> list[tuple[int, str]]:
    """(edge index, op) of each (op, input) pair of a 4-node cell, in pair order."""
    return [(sum(2 + n for n in range(position // 2)) + source, op) for position, (op, source) in enumerate(pairs)]


def _identity_affine(name: str, value: torch.Tensor) -> bool:
    """A BN scale of ones or shift of zeros: the affine-free BN of the supernet computes the same."""
    return (name.endswith(".weight") and bool((value == 1).all())) or (name.endswith(".bias") and bool((value == 0).all()))
