"""The standard DARTS operations, cell and CIFAR cell network, shared by the DARTS and ARNAS spaces.

Definitions follow Liu et al., "DARTS: Differentiable Architecture Search" (ICLR 2019) and spec
crose-and-arnas.md §B.1: ``sep_conv`` = two stacked ReLU-depthwise-pointwise-BN blocks, ``dil_conv`` =
ReLU-dilated depthwise (dilation 2)-pointwise-BN, ``skip_connect`` with stride 2 = FactorizedReduce,
pooling with padding 1 (average pooling excludes the padding).

``CellNetwork`` also answers what the CRoZe proxy reads (``feature_taps``, ``layer_taps``,
``trunk_blocks``, ``remove_training_extras``; the protocol is documented in ``robustnas.proxies.croze``).

Module and attribute names (``stem``, ``cells.<i>.preprocess0``, ``cells.<i>._ops.<k>.op``,
``auxiliary_head``, ``classifier``) mirror the official DARTS / ARNAS models, so state dicts of the
official checkpoints have the same keys.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, ClassVar

import torch
from torch import nn

from robustnas.errors import RobustnasError
from robustnas.spaces.arnas import ArnasGenotype, cell_types
from robustnas.spaces.arnas import cell_channels as arnas_cell_channels
from robustnas.spaces.darts import (
    CellGenotype,
    DartsGenotype,
    Pairs,
    cell_channels,
    check_network_size,
    reduction_cells,
)


class _OpModule(nn.Module):
    """An op whose layers live in ``self.op`` (the official attribute name, kept for state-dict keys)."""

    op: nn.Sequential

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class ReLUConvBN(_OpModule):
    """ReLU -> conv (no bias) -> BN; the 1x1 version preprocesses the cell inputs."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int, affine: bool = True):
        super().__init__()
        self.op = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )


class DilConv(_OpModule):
    """ReLU -> dilated depthwise conv -> pointwise conv -> BN."""

    def __init__(self, c: int, kernel: int, stride: int, padding: int, dilation: int, affine: bool = True):
        super().__init__()
        self.op = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(c, c, kernel, stride=stride, padding=padding, dilation=dilation, groups=c, bias=False),
            nn.Conv2d(c, c, 1, bias=False),
            nn.BatchNorm2d(c, affine=affine),
        )


class SepConv(_OpModule):
    """Two stacked ReLU -> depthwise -> pointwise -> BN blocks; only the first one has the stride."""

    def __init__(self, c: int, kernel: int, stride: int, padding: int, affine: bool = True):
        super().__init__()
        self.op = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(c, c, kernel, stride=stride, padding=padding, groups=c, bias=False),
            nn.Conv2d(c, c, 1, bias=False),
            nn.BatchNorm2d(c, affine=affine),
            nn.ReLU(inplace=False),
            nn.Conv2d(c, c, kernel, stride=1, padding=padding, groups=c, bias=False),
            nn.Conv2d(c, c, 1, bias=False),
            nn.BatchNorm2d(c, affine=affine),
        )


class Conv7x1x7(_OpModule):
    """ReLU -> 1x7 conv -> 7x1 conv -> BN, the stride split over the two (DARTS ``conv_7x1_1x7``)."""

    def __init__(self, c: int, stride: int, affine: bool = True):
        super().__init__()
        self.op = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(c, c, (1, 7), stride=(1, stride), padding=(0, 3), bias=False),
            nn.Conv2d(c, c, (7, 1), stride=(stride, 1), padding=(3, 0), bias=False),
            nn.BatchNorm2d(c, affine=affine),
        )


class Zero(nn.Module):
    """The ``none`` op: zeros with the output shape of a stride-``stride`` op."""

    def __init__(self, stride: int):
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :, :: self.stride, :: self.stride].mul(0.0)


class FactorizedReduce(nn.Module):
    """Halve the resolution with two 1x1 stride-2 convs on pixel grids offset by one, concatenated."""

    def __init__(self, c_in: int, c_out: int, affine: bool = True):
        super().__init__()
        if c_out % 2:
            raise ValueError(f"FactorizedReduce needs an even number of output channels, got {c_out}")
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.conv_2 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(c_out, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(x[:, :, 1:, 1:])], dim=1))


OpFactory = Callable[[int, int, bool], nn.Module]
OPS: dict[str, OpFactory] = {
    "none": lambda c, stride, affine: Zero(stride),
    "max_pool_3x3": lambda c, stride, affine: nn.MaxPool2d(3, stride=stride, padding=1),
    "avg_pool_3x3": lambda c, stride, affine: nn.AvgPool2d(
        3, stride=stride, padding=1, count_include_pad=False
    ),
    "skip_connect": lambda c, stride, affine: (
        nn.Identity() if stride == 1 else FactorizedReduce(c, c, affine)
    ),
    "sep_conv_3x3": lambda c, stride, affine: SepConv(c, 3, stride, 1, affine),
    "sep_conv_5x5": lambda c, stride, affine: SepConv(c, 5, stride, 2, affine),
    "dil_conv_3x3": lambda c, stride, affine: DilConv(c, 3, stride, 2, 2, affine),
    "dil_conv_5x5": lambda c, stride, affine: DilConv(c, 5, stride, 4, 2, affine),
    # The two further primitives of CRoZe's DARTS-like space (DARTS operations.py, as CRoZe uses them).
    "sep_conv_7x7": lambda c, stride, affine: SepConv(c, 7, stride, 3, affine),
    "conv_7x1_1x7": lambda c, stride, affine: Conv7x1x7(c, stride, affine),
}


def make_op(name: str, channels: int, stride: int, affine: bool = True) -> nn.Module:
    """Build one DARTS primitive on ``channels`` channels (stride 2 inside reduction cells)."""
    return OPS[name](channels, stride, affine)


def drop_path(x: torch.Tensor, drop_prob: float) -> torch.Tensor:
    """Zero whole samples with probability ``drop_prob`` and rescale the rest (DARTS utils.drop_path)."""
    keep_prob = 1.0 - drop_prob
    mask = torch.empty(x.size(0), 1, 1, 1, device=x.device, dtype=x.dtype).bernoulli_(keep_prob)
    return x / keep_prob * mask


@dataclass(frozen=True)
class CellSpec:
    """One cell of a network: its (op, input) pairs, concat list, channels per node and whether it reduces."""

    pairs: Pairs
    concat: tuple[int, ...]
    channels: int
    reduction: bool


class Cell(nn.Module):
    """A discrete DARTS cell: node k (2..) = op_a(state[in_a]) + op_b(state[in_b]); output = concat.

    States 0 and 1 are the outputs of the two previous cells after preprocessing (FactorizedReduce
    for state 0 when the previous cell reduced, else a 1x1 ReLUConvBN).
    """

    def __init__(self, spec: CellSpec, c_prev_prev: int, c_prev: int, reduction_prev: bool):
        super().__init__()
        c = spec.channels
        if reduction_prev:
            self.preprocess0: nn.Module = FactorizedReduce(c_prev_prev, c)
        else:
            self.preprocess0 = ReLUConvBN(c_prev_prev, c, 1, 1, 0)
        self.preprocess1 = ReLUConvBN(c_prev, c, 1, 1, 0)
        self._ops = nn.ModuleList(
            make_op(name, c, 2 if spec.reduction and source < 2 else 1) for name, source in spec.pairs
        )
        self._indices = tuple(source for _, source in spec.pairs)
        self._concat = spec.concat
        self.out_channels = len(spec.concat) * c

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, drop_prob: float) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for node in range(len(self._ops) // 2):
            total = 0
            for k in (2 * node, 2 * node + 1):
                op = self._ops[k]
                h = op(states[self._indices[k]])
                if self.training and drop_prob > 0 and not isinstance(op, nn.Identity):
                    h = drop_path(h, drop_prob)
                total = total + h
            states.append(total)
        return torch.cat([states[i] for i in self._concat], dim=1)


class AuxiliaryHeadCIFAR(nn.Module):
    """The DARTS auxiliary classifier; expects an 8x8 feature map (32x32 CIFAR input)."""

    def __init__(self, channels: int, num_classes: int):
        super().__init__()
        self.features = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.AvgPool2d(5, stride=3, padding=0, count_include_pad=False),  # 8x8 -> 2x2
            nn.Conv2d(channels, 128, 1, bias=False),
            nn.BatchNorm2d(128),
            nn.ReLU(inplace=False),
            nn.Conv2d(128, 768, 2, bias=False),
            nn.BatchNorm2d(768),
            nn.ReLU(inplace=False),
        )
        self.classifier = nn.Linear(768, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != (8, 8):
            raise RobustnasError(
                f"the CIFAR auxiliary head reads an 8x8 feature map (32x32 images), got {x.shape[-2]}x{x.shape[-1]}; "
                "build the network with auxiliary=False for other image sizes"
            )
        return self.classifier(self.features(x).flatten(1))


class CellNetwork(nn.Module):
    """CIFAR cell network: 3x3 stem conv to ``stem_channels`` + BN, the cells, global pool, linear.

    Input: a normalised batch [N, 3, H, W] (H = W = 32 for the auxiliary head). Output: logits
    [N, num_classes]; when the auxiliary head is enabled and the module is in training mode the
    output is the pair ``(logits, aux_logits)`` as in DARTS, with the auxiliary head reading the
    output of cell ``aux_cell``. ``drop_path_prob`` (settable) applies DARTS drop-path in training.
    """

    def __init__(
        self,
        cells: list[CellSpec],
        stem_channels: int,
        num_classes: int,
        auxiliary: bool,
        aux_cell: int,
        drop_path_prob: float,
    ):
        super().__init__()
        self.drop_path_prob = float(drop_path_prob)
        self._aux_cell = aux_cell
        self.stem = nn.Sequential(
            nn.Conv2d(3, stem_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(stem_channels),
        )
        self.cells = nn.ModuleList()
        c_prev_prev = c_prev = stem_channels
        reduction_prev = False
        for index, spec in enumerate(cells):
            cell = Cell(spec, c_prev_prev, c_prev, reduction_prev)
            self.cells.append(cell)
            c_prev_prev, c_prev, reduction_prev = c_prev, cell.out_channels, spec.reduction
            if index == aux_cell:
                aux_channels = c_prev
        self.auxiliary_head = AuxiliaryHeadCIFAR(aux_channels, num_classes) if auxiliary else None
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_prev, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        aux_logits = None
        s0 = s1 = self.stem(x)
        for index, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1, self.drop_path_prob)
            if index == self._aux_cell and self.auxiliary_head is not None and self.training:
                aux_logits = self.auxiliary_head(s1)
        logits = self.classifier(self.global_pooling(s1).flatten(1))
        return logits if aux_logits is None else (logits, aux_logits)

    # ---- what CRoZe reads (spec crose-and-arnas.md §A.3.7; protocol: robustnas.proxies.croze) ----
    def feature_taps(self) -> list[nn.Module]:
        """Modules whose outputs are CRoZe's L+2 feature taps (spec crose-and-arnas.md §A.3.7), in depth
        order: stem, every cell, global pooling."""
        return [self.stem, *self.cells, self.global_pooling]

    def layer_taps(self, rule: str = "official") -> dict[str, int]:
        """Conv2d/Linear module name -> index into ``feature_taps`` (spec §A.3.7), in registration order:
        k, the cells entered so far (the stem's conv: 0, a conv of cell i: i, counting from 1), under
        either rule (a cell's output is its own); the classifier gets one more: the pooled vector."""
        entered, taps = 0, {}
        for name, module in self.named_modules():
            entered += isinstance(module, Cell)
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                taps[name] = entered + isinstance(module, nn.Linear)
        return taps

    def trunk_blocks(self) -> list[nn.Module]:
        """The stem and the cells in call order, each fed earlier blocks' outputs: the points where
        CRoZe's range guard may rescale activations by exact powers of two (a cell aligns its inputs)."""
        return [self.stem, *self.cells]

    def remove_training_extras(self) -> None:
        """Drop the auxiliary head and turn drop path off: training-only parts that CRoZe leaves out
        (the official DARTS nets it scores have neither)."""
        self.auxiliary_head = None
        self.drop_path_prob = 0.0


def count_parameters(model: nn.Module, include_auxiliary: bool = False) -> int:
    """Number of parameters; like DARTS ``utils.count_parameters_in_MB`` it skips the auxiliary head.

    The published DARTS (3.3 M) and ARNAS (4.52 M) sizes are counted this way.
    """
    return sum(
        p.numel() for name, p in model.named_parameters() if include_auxiliary or "auxiliary" not in name
    )


class GenotypeNetwork(CellNetwork):
    """The CIFAR network of a DARTS-style genotype: stem 3x3 conv to 3C + BN, ``layers`` cells laid
    out by :meth:`layout` (reductions at ⌊L/3⌋ and ⌊2L/3⌋), global average pool, linear classifier;
    the optional auxiliary head reads cell ⌊2L/3⌋ (the second reduction).

    Takes a normalised [N, 3, H, W] batch (H = W = 32 for the auxiliary head) and returns logits, or
    ``(logits, aux_logits)`` in training mode when ``auxiliary`` is on; ``drop_path_prob`` is a
    settable attribute (DARTS schedules it). ``genotype`` is any form ``GENOTYPE.parse`` reads, or a
    genotype of another space with the same cells (CRoZe's DARTS-like space uses DartsNetwork).
    """

    GENOTYPE: ClassVar[type[CellGenotype]]
    DEFAULT_C: ClassVar[int]

    def __init__(
        self,
        genotype: CellGenotype | str | dict,
        C: int | None = None,
        layers: int = 20,
        num_classes: int = 10,
        auxiliary: bool = False,
        drop_path_prob: float = 0.0,
    ):
        if not (isinstance(genotype, CellGenotype) and genotype.CELLS == self.GENOTYPE.CELLS):
            genotype = self.GENOTYPE.parse(genotype)
        C = self.DEFAULT_C if C is None else C
        check_network_size(genotype.LABEL, C, layers, num_classes)
        specs = [
            CellSpec(getattr(genotype, cell), getattr(genotype, f"{cell}_concat"), width, cell == "reduce")
            for cell, width in self.layout(C, layers)
        ]
        super().__init__(specs, 3 * C, num_classes, auxiliary, reduction_cells(layers)[1], drop_path_prob)
        self.genotype = genotype

    @staticmethod
    def layout(C: int, layers: int) -> list[tuple[str, int]]:
        """(cell type, channels per node) of every cell."""
        raise NotImplementedError


class DartsNetwork(GenotypeNetwork):
    """The DARTS CIFAR evaluation network (``NetworkCIFAR`` of the DARTS code), C=36 by default;
    reduction cells double the channels (C : 2C : 4C)."""

    GENOTYPE, DEFAULT_C = DartsGenotype, 36

    @staticmethod
    def layout(C: int, layers: int) -> list[tuple[str, int]]:
        reductions = reduction_cells(layers)
        return [("reduce" if i in reductions else "normal", width) for i, width in enumerate(cell_channels(C, layers))]


class ArnasNetwork(GenotypeNetwork):
    """The ARNAS evaluation network (``NetworkCIFAR_new`` of the ARNAS code), C=64 by default: cells
    typed by :func:`cell_types` (accurate, reduce, robust) with widths C : 2C : 2C. Published
    setting: C=64, 20 cells, auxiliary on (spec §B.5)."""

    GENOTYPE, DEFAULT_C = ArnasGenotype, 64

    @staticmethod
    def layout(C: int, layers: int) -> list[tuple[str, int]]:
        return list(zip(cell_types(layers), arnas_cell_channels(C, layers)))
