"""Gradient-based pruning-at-init proxies, NAS-Bench-Suite-Zero semantics (spec §1.4, §1.6, §1.7,
§1.12, §1.13): one cross-entropy forward/backward on a train-mode copy serves grad_norm, snip,
plain, fisher and the first half of grasp. Only Conv2d/Linear weights count (never biases or BN).
"""
from __future__ import annotations

import torch

from robustnas.proxies._evaluation import Evaluation
from robustnas.proxies._registry import register

ONE_PASS = "1 forward + 1 backward"


def _pairs(ev: Evaluation):
    gradients = ev.gradients()
    return [(w, g) for w, g in zip(gradients.weights, gradients.grads) if g is not None]


@register("grad_norm", needs_data=True, needs_labels=True, higher_is_better=True, passes=1.08, cost=ONE_PASS)
def grad_norm(ev: Evaluation) -> float:
    """Sum over Conv2d/Linear layers of the Frobenius norm of the loss gradient (Abdelfattah et al. 2021)."""
    return float(sum(g.norm() for _, g in _pairs(ev)))


@register("snip", needs_data=True, needs_labels=True, higher_is_better=True, passes=1.09, cost=ONE_PASS)
def snip(ev: Evaluation) -> float:
    """Connection sensitivity sum |W * dL/dW| (Lee et al. 2019)."""
    return float(sum((w * g).abs().sum() for w, g in _pairs(ev)))


@register("plain", needs_data=True, needs_labels=True, higher_is_better=True, passes=1.1, cost=ONE_PASS)
def plain(ev: Evaluation) -> float:
    """First-order Taylor term sum W * dL/dW, signed (Abdelfattah et al. 2021)."""
    return float(sum((w * g).sum() for w, g in _pairs(ev)))


@register(
    "fisher", needs_data=True, needs_labels=True, higher_is_better=True, passes=1.14, cost=ONE_PASS, uses=("layer_outputs",)
)
def fisher(ev: Evaluation) -> float:
    """Channel Fisher information (Turner et al. 2020), broadcast to the weight shape as the suite does.

    Per layer: fan_in * sum_k |Delta_k| with Delta_k = 1/2 mean_n (sum_hw z*g)^2 on the layer's
    raw output z (spec §1.4: the per-channel value is repeated over C_in*k_h*k_w weight entries).
    """
    gradients = ev.gradients()
    total = 0.0
    for layer in gradients.layers:
        if layer in gradients.fisher:
            fan_in = layer.weight[0].numel()
            total += float(gradients.fisher[layer].abs().sum()) * fan_in
    return total


@register(
    "grasp",
    needs_data=True,
    needs_labels=True,
    higher_is_better=True, passes=3.32,
    cost="1 forward + 1 backward with graph + double backward",
    uses=("grad_graph",),
)
def grasp(ev: Evaluation) -> float:
    """GraSP (Wang et al. 2020), as in the suite: -sum W * (H g), H the Hessian of the loss.

    The reference computes g, then grad_f with a graph on a second identical train-mode forward;
    here the shared backward keeps its graph, so grad_f is g itself and Hg = d<stop(g), g>/dW.
    """
    gradients = ev.gradients()
    pairs = [(g, gf) for g, gf in zip(gradients.grads, gradients.grads_with_graph) if g is not None]
    z = sum((g * gf).sum() for g, gf in pairs)
    if not torch.is_tensor(z) or not z.requires_grad:
        return 0.0
    weights = [layer.weight for layer in gradients.layers]
    hessian_g = torch.autograd.grad(z, weights, allow_unused=True)
    return float(sum((-w * hg).sum() for w, hg in zip(gradients.weights, hessian_g) if hg is not None))
