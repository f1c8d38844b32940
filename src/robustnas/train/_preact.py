"""PreAct ResNet-18 (He et al. 2016, "Identity Mappings in Deep Residual Networks"), CIFAR variant.

The standard adversarial-training baseline (Rice et al. 2020, crose-and-arnas.md Part C): 3x3 stem
conv to 64 channels, four stages of two pre-activation basic blocks (64, 128, 256, 512 channels,
stride 2 at the first block of stages 2-4, 1x1 conv shortcut where the shape changes), then
BN-ReLU ("an extra activation right after the last addition", He et al. §4.1), global average
pooling and a linear classifier.

Two variants are in use and differ only by that final BN (1,024 parameters for 512 channels):

* ``bn_before_fc=True`` (default): He et al.'s design and Rice et al.'s adversarial-training
  baseline (RobustBench's ``Rice2020OverfittingNetL2`` = ``PreActResNet(PreActBlockV2, [2,2,2,2],
  bn_before_fc=True)``, shortcut read from the pre-activation as here): 11,172,170 parameters.
* ``bn_before_fc=False``: the popular kuangliu/pytorch-cifar copy (RobustBench's plain
  ``PreActResNet18()``), the often-quoted 11,171,146 parameters (10 classes).

Takes normalised images: wrap it in ``robustnas.data.NormalizedModel`` to feed [0,1] pixels.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

STAGES = ((64, 1), (128, 2), (256, 2), (512, 2))
BLOCKS_PER_STAGE = 2


class PreActBlock(nn.Module):
    """BN-ReLU-conv3x3-BN-ReLU-conv3x3 plus the shortcut; a projection shortcut reads the first
    pre-activation, an identity shortcut the block input (He et al. 2016, Fig. 4e)."""

    def __init__(self, in_channels: int, channels: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, stride=1, padding=1, bias=False)
        self.shortcut = (
            nn.Conv2d(in_channels, channels, 1, stride=stride, bias=False)
            if stride != 1 or in_channels != channels
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(x))
        shortcut = x if self.shortcut is None else self.shortcut(out)
        out = self.conv2(F.relu(self.bn2(self.conv1(out))))
        return out + shortcut


class PreActResNet18(nn.Module):
    """PreAct ResNet-18 for [N, 3, H, W] normalised images (32x32 CIFAR; any size >= 8 works)."""

    def __init__(self, num_classes: int = 10, bn_before_fc: bool = True) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, stride=1, padding=1, bias=False)
        blocks, channels = [], 64
        for width, stride in STAGES:
            for index in range(BLOCKS_PER_STAGE):
                blocks.append(PreActBlock(channels, width, stride if index == 0 else 1))
                channels = width
        self.blocks = nn.Sequential(*blocks)
        self.bn = nn.BatchNorm2d(channels) if bn_before_fc else None
        self.linear = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.blocks(self.conv1(x))
        if self.bn is not None:
            out = F.relu(self.bn(out))
        return self.linear(F.adaptive_avg_pool2d(out, 1).flatten(1))


def preact_resnet18(num_classes: int = 10, bn_before_fc: bool = True) -> PreActResNet18:
    """A freshly initialised PreAct ResNet-18 (PyTorch default initialisation); see the module doc."""
    return PreActResNet18(num_classes, bn_before_fc)
