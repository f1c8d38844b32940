"""The NAS-Bench-201 network, module for module as in NB201's ``TinyNetwork``/``InferCell``.

Skeleton (spec zero-cost-proxies-and-rf-study.md §3.1-3.3): stem Conv3x3(3->C)+BN; three stages of
N cells at widths C, 2C, 4C separated by residual reduction blocks; head BN -> ReLU -> global
average pool -> Linear. Cell ops are pre-activation ReLU -> Conv -> BN with affine BN and running
statistics (as when NAS-Bench-Suite-Zero was computed), average pooling excludes padding.
"""
from __future__ import annotations

import torch
from torch import nn

from robustnas.spaces import INPUT_SIZE, NUM_CLASSES, check_space
from robustnas.spaces.nb201 import EDGES, OPS, NB201Arch

__all__ = ["INPUT_SIZE", "NB201Network", "build_nb201"]


class ReLUConvBN(nn.Sequential):
    """ReLU -> Conv (no bias) -> BN, the NB201 ``nor_conv`` op."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(c_out),
        )


class Zero(nn.Module):
    """The ``none`` op: a zero tensor of the input's shape (NB201 multiplies by 0)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mul(0.0)


def make_op(name: str, channels: int) -> nn.Module:
    """One NB201 edge op at stride 1 with ``channels`` in and out."""
    if name == "skip_connect":
        return nn.Identity()
    if name == "none":
        return Zero()
    if name == "nor_conv_3x3":
        return ReLUConvBN(channels, channels, 3, 1, 1)
    if name == "nor_conv_1x1":
        return ReLUConvBN(channels, channels, 1, 1, 0)
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
        self.stem = nn.Sequential(
            nn.Conv2d(3, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels)
        )
        layers: list[nn.Module] = []
        width = channels
        for stage in range(3):
            if stage > 0:
                layers.append(ResidualReduction(width, width * 2))
                width *= 2
            layers.extend(Cell(arch, width) for _ in range(cells_per_stage))
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


def build_nb201(arch: NB201Arch | str | int | tuple, dataset: str = "cifar10", **kwargs) -> NB201Network:
    """The NB201 network of ``arch`` for a benchmark dataset (10/100/120 classes)."""
    check_space("nb201", dataset)
    return NB201Network(NB201Arch.parse(arch), num_classes=NUM_CLASSES[dataset], **kwargs)
