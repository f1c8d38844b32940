"""SynFlow (Tanaka et al. 2020), NAS-Bench-Suite-Zero semantics (spec zero-cost-proxies-and-rf-study.md §1.14).

Data-free: on its own copy with every BatchNorm removed, in float64 with every state entry made
non-negative, R = sum of the logits for one all-ones image of the batch's shape, and
synflow = sum over Conv2d/Linear weights of |W * dR/dW|. The suite stores the logarithm
(NASLib ``ZeroCost.query``, spec §1.1), and so does this proxy.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from robustnas.proxies._evaluation import Evaluation, logits_of, weight_layers
from robustnas.proxies._registry import ProxyUndefined, register

BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d)  # the suite's ``bn=False`` copy drops exactly these


@register(
    "synflow", needs_data=False, needs_labels=False, higher_is_better=True, passes=0.15, cost="1 forward + 1 backward, batch 1, float64"
)
def synflow(ev: Evaluation) -> float:
    """Synaptic flow sum |W * dR/dW| on the BN-free, all-positive float64 copy, stored as its signed log."""
    raw = synflow_raw(ev)
    if not math.isfinite(raw):
        raise ProxyUndefined(f"the raw synflow sum is {raw} (float64 overflow), so its log is undefined")
    return signed_log(raw)


def synflow_raw(ev: Evaluation) -> float:
    """The raw synflow sum before the suite's log (float64)."""
    net = _without_batch_norm(ev.fresh_copy()).double()
    with torch.no_grad():
        for tensor in net.state_dict().values():
            tensor.abs_()
    layers = weight_layers(net)
    ones = torch.ones((1, *ev.x.shape[1:]), dtype=torch.float64, device=ev.x.device)
    weights = [layer.weight for layer in layers]
    grads = torch.autograd.grad(logits_of(net(ones)).sum(), weights, allow_unused=True)
    total = torch.zeros((), dtype=torch.float64, device=ev.x.device)
    for weight, grad in zip(weights, grads):
        if grad is not None:
            total = total + (weight.detach() * grad).abs().sum()
    return float(total)


def signed_log(value: float) -> float:
    """The suite's transform: log(v) for v > 0, -log(-v) for v < 0, 0 stays 0."""
    if value > 0:
        return math.log(value)
    if value < 0:
        return -math.log(-value)
    return 0.0


def _without_batch_norm(net: nn.Module) -> nn.Module:
    """``net`` with every BatchNorm1d/2d submodule replaced by the identity (the suite's ``bn=False``)."""
    for parent in list(net.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, BATCH_NORMS):
                setattr(parent, name, nn.Identity())
    return net
