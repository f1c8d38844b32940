"""Data-free baseline proxies: params, flops (tensorwatch rules, spec §1.5) and l2_norm (§1.9)."""
from __future__ import annotations

from robustnas.proxies._evaluation import Evaluation, weight_layers
from robustnas.proxies._registry import register
from robustnas.spaces._counting import count


def _counts(ev: Evaluation):
    """Counts for one image of the batch's shape (``count`` leaves the model as it was)."""
    return ev.memo("counts", lambda: count(ev.model, (1, *ev.x.shape[1:])))


@register("params", needs_data=False, needs_labels=False, higher_is_better=True, passes=0.035, cost="1 forward, batch 1")
def params(ev: Evaluation) -> float:
    """Parameters of the modules that run, in millions (NAS-Bench-Suite-Zero units)."""
    return _counts(ev).params_m


@register("flops", needs_data=False, needs_labels=False, higher_is_better=True, passes=0.035, cost="1 forward, batch 1")
def flops(ev: Evaluation) -> float:
    """FLOPs of one image in millions, tensorwatch rules (MACs for conv/linear, see spaces._counting)."""
    return _counts(ev).flops_m


@register("l2_norm", needs_data=False, needs_labels=False, higher_is_better=True, passes=0.002, cost="no pass")
def l2_norm(ev: Evaluation) -> float:
    """Sum over Conv2d/Linear layers of the Frobenius norm of the weights (not squared)."""
    return float(sum(layer.weight.detach().norm() for layer in weight_layers(ev.model)))
