"""The NAS-Bench-201 network, module for module as in NB201's ``TinyNetwork``/``InferCell``.

Skeleton (spec zero-cost-proxies-and-rf-study.md §3.1-3.3): stem Conv3x3(3->C)+BN; three stages of
N cells at widths C, 2C, 4C separated by residual reduction blocks; head BN -> ReLU -> global
average pool -> Linear. Cell ops are pre-activation ReLU -> Conv -> BN with affine BN and running
statistics (as when NAS-Bench-Suite-Zero was computed), average pooling excludes padding.

The network also answers what the CRoZe proxy reads (``feature_taps``, ``layer_taps``,
``trunk_blocks``, ``batch_norm_branches``; the protocol is documented in
``robustnas.proxies.croze``), so that no proxy needs to know this class.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from robustnas.errors import RobustnasError
from robustnas.spaces.nb201 import EDGES, OPS, NB201Arch

__all__ = ["NB201Network"]


class ReLUConvBN(nn.Sequential):
    """ReLU -> Conv (no bias) -> BN, the NB201 ``nor_conv`` op (affine-free BN in search cells)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int, affine: bool = True) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )


class Zero(nn.Module):
    """The ``none`` op: a zero tensor of the input's shape (NB201 multiplies by 0)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mul(0.0)


def make_op(name: str, channels: int, affine: bool = True) -> nn.Module:
    """One NB201 edge op at stride 1 with ``channels`` in and out."""
    if name == "skip_connect":
        return nn.Identity()
    if name == "none":
        return Zero()
    if name == "nor_conv_3x3":
        return ReLUConvBN(channels, channels, 3, 1, 1, affine)
    if name == "nor_conv_1x1":
        return ReLUConvBN(channels, channels, 1, 1, 0, affine)
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    raise ValueError(f"unknown NB201 op {name!r}")


class Cell(nn.Module):
    """Node j = sum_{i<j} op_ij(node i); the output is node 4 (NASLib numbering, spec §3.2)."""

    def __init__(self, arch: NB201Arch, channels: int) -> None:
        super().__init__()
        self.edges = nn.ModuleList(make_op(OPS[op], channels) for op in arch.ops)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = {1: x}
        for target in (2, 3, 4):
            nodes[target] = sum(
                edge(nodes[source])
                for edge, (source, dest) in zip(self.edges, EDGES)
                if dest == target
            )
        return nodes[4]


class ResidualReduction(nn.Module):
    """NB201's ``ResNetBasicblock`` at stride 2: two ReLU-Conv-BN plus an avg-pool+1x1 shortcut."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, 2, 1)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, 1, 1)
        self.downsample = nn.Sequential(
            nn.AvgPool2d(kernel_size=2, stride=2, padding=0),
            nn.Conv2d(c_in, c_out, 1, stride=1, padding=0, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.downsample(x) + self.conv_b(self.conv_a(x))


class NB201Network(nn.Module):
    """NB201 ``TinyNetwork`` returning logits; ``cells`` lists the 3N cells and 2 reductions in order."""

    def __init__(self, arch: NB201Arch, num_classes: int = 10, channels: int = 16, cells_per_stage: int = 5):
        super().__init__()
        self.arch = arch
        self._build(lambda width: Cell(arch, width), num_classes, channels, cells_per_stage)

    def _build(self, make_cell: Callable[[int], nn.Module], num_classes: int, channels: int, cells_per_stage: int) -> None:
        """The skeleton around ``make_cell(width)`` cells (the supernet builds it with mixed cells)."""
        self.stem = nn.Sequential(
            nn.Conv2d(3, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels)
        )
        layers: list[nn.Module] = []
        width = channels
        for stage in range(3):
            if stage > 0:
                layers.append(ResidualReduction(width, width * 2))
                width *= 2
            layers.extend(make_cell(width) for _ in range(cells_per_stage))
        self.cells = nn.ModuleList(layers)
        self.lastact = nn.Sequential(nn.BatchNorm2d(width), nn.ReLU(inplace=True))
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for cell in self.cells:
            x = cell(x)
        x = self.global_pooling(self.lastact(x))
        return self.classifier(x.flatten(1))

    # ---- what CRoZe reads (spec crose-and-arnas.md §A.3.7; protocol: robustnas.proxies.croze) ----
    def feature_taps(self) -> list[nn.Module]:
        """Modules whose outputs are CRoZe's 5 feature taps (spec crose-and-arnas.md §A.3.7), in depth
        order: stem, reduction 1 (after stage 1), reduction 2 (after stage 2), the head's ReLU (after
        stage 3: read after the in-place ReLU, as in the released code), global pooling."""
        self._cells_per_stage()
        return [self.stem, *self._reductions(), self.lastact, self.global_pooling]

    def layer_taps(self, rule: str = "official") -> dict[str, int]:
        """Conv2d/Linear module name -> index into ``feature_taps`` (spec §A.3.7), in registration order.

        With k the cells entered so far (a reduction is not a cell) and N cells per stage, a layer's
        tap is floor(k/N) under rule "official" (the released code, off by one for the last cell of
        each stage) or ceil(k/N) under "stage" (every cell its own stage's output). The classifier
        gets one more: the pooled vector.
        """
        if rule not in ("official", "stage"):
            raise RobustnasError(f"NB201 tap rule must be 'official' or 'stage', got {rule!r}")
        per_stage = self._cells_per_stage()
        entered, taps = 0, {}
        for name, module in self.named_modules():
            entered += isinstance(module, Cell)
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                stage = entered // per_stage if rule == "official" else -(-entered // per_stage)
                taps[name] = stage + isinstance(module, nn.Linear)
        return taps

    def trunk_blocks(self) -> list[nn.Module]:
        """The stem, cells and reductions in call order, each fed the previous one's output: the points
        where CRoZe's range guard may rescale activations by exact powers of two."""
        return [self.stem, *self.cells]

    def batch_norm_branches(self) -> list[tuple[nn.Module, ...]]:
        """The conv_a -> conv_b branch of both residual reductions: the only BN the released CRoZe code
        keeps (train mode; spec crose-and-arnas.md §A.3 step 0), each branch as its modules in call order."""
        return [(block.conv_a, block.conv_b) for block in self._reductions()]

    def _reductions(self) -> list[ResidualReduction]:
        return [m for m in self.cells if isinstance(m, ResidualReduction)]

    def _cells_per_stage(self) -> int:
        """N, after checking the NB201 layout (3 stages of N cells, 2 reductions) that the taps assume."""
        cells, reductions = sum(isinstance(m, Cell) for m in self.cells), len(self._reductions())
        if reductions != 2 or cells % 3 or cells == 0:
            raise RobustnasError(
                "CRoZe needs the NB201 layout (3 stages of N cells, 2 reductions), "
                f"got {cells} cells and {reductions} reductions"
            )
        return cells // 3

