"""Forward-only proxies, NAS-Bench-Suite-Zero semantics (spec zero-cost-proxies-and-rf-study.md
§1.10 nwot, §1.15 zen).

nwot reads the ReLU-code kernel recorded during the shared train-mode forward. zen needs no
images: it re-initialises its own copy of the network and feeds Gaussian noise shaped like the
batch, so only the batch's shape matters (it is registered with ``needs_data=False``).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from robustnas.proxies._evaluation import Evaluation
from robustnas.proxies._registry import ProxyUndefined, register

MIXUP_GAMMA = 0.01  # Zen-NAS default, as in the suite (spec §1.15)


@register("nwot", needs_data=True, needs_labels=False, higher_is_better=True, passes=0.89, cost="1 forward", uses=("relu_codes",))
def nwot(ev: Evaluation) -> float:
    """NASWOT (Mellor et al. 2021 v2): log|det K|, K_nm = number of ReLU units where samples n, m agree.

    K sums c c^T + (1-c)(1-c)^T over every ``nn.ReLU`` call, c = 1[pre-activation > 0] per sample
    (spec §1.10); ``numpy.linalg.slogdet`` as in the reference, sign discarded.
    """
    kernel = ev.forward().relu_kernel
    if kernel is None:
        raise ProxyUndefined("the network has no nn.ReLU that ran, so the NASWOT kernel is empty")
    sign, logabsdet = np.linalg.slogdet(kernel.cpu().numpy())
    if sign == 0 or not np.isfinite(logabsdet):
        raise ProxyUndefined(
            "the NASWOT kernel is singular: samples share identical ReLU codes (e.g. the output does not "
            "depend on the input, or the batch repeats an image)"
        )
    return float(logabsdet)


@register("zen", needs_data=False, needs_labels=False, higher_is_better=True, passes=0.98, cost="2 forwards, no grad")
def zen(ev: Evaluation) -> float:
    """Zen-score (Lin et al. 2021): log E_n||Phi(x1) - Phi(x1 + 0.01 x2)||_1 + sum_BN log sqrt(mean running_var).

    On a re-initialised train-mode copy (Conv/Linear weights N(0,1), biases 0, norm gamma 1 beta 0,
    BN statistics reset); x1, x2 ~ N(0, I) with the batch's shape; Phi is the input of the network's
    one ``AdaptiveAvgPool2d``. The BN term reads running_var after the two forwards (momentum
    updates from 1), exactly as the reference, in float32.
    """
    net = ev.fresh_copy()
    generator = ev.generator("zen")
    with torch.no_grad():
        _gaussian_init(net, generator)
        shape, options = ev.x.shape, {"device": ev.x.device, "dtype": torch.float32, "generator": generator}
        x1 = torch.randn(shape, **options)
        x2 = torch.randn(shape, **options)
        phi1 = _features_before_global_pool(net, x1)
        phi_mix = _features_before_global_pool(net, x1 + MIXUP_GAMMA * x2)
        delta = torch.mean(torch.sum(torch.abs(phi1 - phi_mix), dim=[1, 2, 3]))
        if delta == 0:
            raise ProxyUndefined("the features before global pooling do not depend on the input (Delta = 0)")
        return float(torch.log(delta) + _log_bn_scaling(net))


def _gaussian_init(net: nn.Module, generator: torch.Generator) -> None:
    """Zen-NAS ``network_weight_gaussian_init``, drawing from ``generator`` in module order."""
    for module in net.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            module.weight.normal_(generator=generator)
            if module.bias is not None:
                module.bias.zero_()
        elif isinstance(module, (nn.BatchNorm2d, nn.GroupNorm)) and module.weight is not None:
            module.weight.fill_(1.0)
            module.bias.zero_()
        if isinstance(module, nn.BatchNorm2d) and module.track_running_stats:
            module.reset_running_stats()  # a freshly built network starts from running_var = 1


def _features_before_global_pool(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Phi(x): the input of the network's single AdaptiveAvgPool2d (``forward_before_global_avg_pool``)."""
    captured: list[torch.Tensor] = []
    pools = [m for m in net.modules() if isinstance(m, nn.AdaptiveAvgPool2d)]
    handles = [pool.register_forward_hook(lambda m, inputs, output: captured.append(inputs[0])) for pool in pools]
    try:
        net(x)
    finally:
        for handle in handles:
            handle.remove()
    if len(captured) != 1 or captured[0].dim() != 4:
        raise ProxyUndefined(
            f"zen needs exactly one AdaptiveAvgPool2d call on a 4-D feature map, the network made {len(captured)}"
        )
    return captured[0]


def _log_bn_scaling(net: nn.Module) -> torch.Tensor | float:
    """sum over every BatchNorm2d of log sqrt(mean_c running_var_c), float32 as the reference."""
    total: torch.Tensor | float = 0.0
    for module in net.modules():
        if isinstance(module, nn.BatchNorm2d):
            if module.running_var is None:
                raise ProxyUndefined(
                    "zen reads BatchNorm2d running_var, but a BatchNorm2d has track_running_stats=False"
                )
            total = total + torch.log(torch.sqrt(torch.mean(module.running_var)))
    return total
