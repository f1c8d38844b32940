"""Parameter and FLOP counts measured on real modules, with NAS-Bench-Suite-Zero's rules.

NAS-Bench-Suite-Zero took ``params``/``flops`` from tensorwatch's ``ModelStats`` (spec
zero-cost-proxies-and-rf-study.md §1.5): forward hooks on the *leaf* modules that actually run, on
one image in eval mode. Per executed leaf module: parameters = numel of its own parameters; FLOPs =
multiply-accumulates of Conv2d (+ bias adds) and Linear (bias ignored), numel(input) for ReLU,
numel(input) x 2 for affine BatchNorm, C*H_out*W_out*k*k for (max/avg) pooling, and torchstat's
off-by-one kernel for adaptive average pooling; everything else (Identity, zero ops, adds) is free.

The network is instantiated on PyTorch's ``meta`` device by the callers that only need counts, so
counting all 15,625 NB201 cells takes seconds: hooks see real module objects and real shapes, no data.
"""
from __future__ import annotations

from dataclasses import dataclass
from math import prod

import torch
from torch import nn


@dataclass(frozen=True)
class Counts:
    """Raw counts for one image; ``params_m``/``flops_m`` are in the suite's units (millions)."""

    params: int
    flops: int

    @property
    def params_m(self) -> float:
        return self.params / 1e6

    @property
    def flops_m(self) -> float:
        return self.flops / 1e6


def _pair(value: int | tuple[int, int]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(value)  # type: ignore[return-value]


def leaf_flops(module: nn.Module, inp: torch.Tensor, out: torch.Tensor) -> int:
    """FLOPs of one call of a leaf module for the batch in ``inp`` (tensorwatch/torchstat rules)."""
    if isinstance(module, nn.Conv2d):
        k_h, k_w = _pair(module.kernel_size)
        out_positions = out.shape[0] * out.shape[2] * out.shape[3]
        macs = k_h * k_w * (module.in_channels // module.groups) * module.out_channels * out_positions
        return macs + (module.out_channels * out_positions if module.bias is not None else 0)
    if isinstance(module, nn.Linear):
        return module.in_features * module.out_features * prod(out.shape[:-1])
    if isinstance(module, (nn.ReLU, nn.ReLU6)):
        return inp.numel()
    if isinstance(module, nn.BatchNorm2d):
        return inp.numel() * (2 if module.affine else 1)
    if isinstance(module, (nn.AvgPool2d, nn.MaxPool2d)):
        k_h, k_w = _pair(module.kernel_size)
        return out.numel() * k_h * k_w
    if isinstance(module, nn.AdaptiveAvgPool2d):
        # torchstat's kernel for adaptive pooling is in // out + 1 (one more than the true extent).
        k_h = inp.shape[2] // out.shape[2] + 1
        k_w = inp.shape[3] // out.shape[3] + 1
        return out.numel() * k_h * k_w
    return 0


def count(model: nn.Module, input_shape: tuple[int, ...]) -> Counts:
    """Count parameters and FLOPs of the leaf modules that run on one input of ``input_shape``.

    ``input_shape`` includes the batch dimension (use 1 for per-image counts, as the suite does).
    The model is put in eval mode for the pass (no gradients, so nothing is updated) and every
    module's train/eval mode is restored afterwards.
    """
    ran: dict[int, nn.Module] = {}
    flops = 0

    def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        nonlocal flops
        ran[id(module)] = module
        flops += leaf_flops(module, inputs[0], output)

    leaves = [m for m in model.modules() if next(m.children(), None) is None]
    handles = [m.register_forward_hook(hook) for m in leaves]
    modes = [(m, m.training) for m in model.modules()]
    device = next(model.parameters()).device
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(input_shape, device=device))
    finally:
        for module, training in modes:
            module.training = training
        for handle in handles:
            handle.remove()
    params = sum(p.numel() for m in ran.values() for p in m.parameters(recurse=False))
    return Counts(params=params, flops=flops)
