"""Zero-cost proxies: ``nn.Module`` and a batch in, plain numbers out.

    from robustnas.proxies import score
    values = score(net, x, y, proxies="all", seed=0)   # {"epe_nas": ..., "croze": ...}
    values.reasons                                     # why a value is NaN, per proxy

``x`` is the batch exactly as the network takes it (normalised images for the NB201/DARTS/ARNAS
networks), ``y`` the labels. Each proxy follows its reference implementation (spec
zero-cost-proxies-and-rf-study.md §1, crose-and-arnas.md Part A). ``score`` fuses shared passes;
``score(..., fused=False)`` computes every proxy alone, with identical results.

``REGISTRY`` is full on import. Adding a proxy is one function with ``@register(...)``: in a family
module listed in ``FAMILIES`` below for the built-in ones, or anywhere in a user's code.
"""
from __future__ import annotations

import importlib
import math
import time
from typing import Iterable

import torch
from torch import nn

from robustnas.errors import RobustnasError
from robustnas.proxies._evaluation import Evaluation
from robustnas.proxies._registry import REGISTRY, ProxySpec, ProxyUndefined, list_proxies, register, resolve

FAMILIES = ("size", "gradient", "jacobian", "forward", "synflow", "robustness", "croze")

__all__ = [
    "REGISTRY", "ProxySpec", "ProxyUndefined", "Scores", "compute", "list_proxies", "register", "resolve", "score",
]  # fmt: skip


class Scores(dict):
    """Proxy name -> value (NaN where undefined); ``reasons`` and ``seconds`` per proxy."""

    def __init__(self) -> None:
        super().__init__()
        self.reasons: dict[str, str] = {}
        self.seconds: dict[str, float] = {}


def _run(spec: ProxySpec, ev: Evaluation, scores: Scores) -> None:
    start = time.perf_counter()
    try:
        value = float(spec.fn(ev))
        if not math.isfinite(value):
            scores.reasons[spec.name] = f"non-finite value {value}"
            value = math.nan
    except ProxyUndefined as why:
        value = math.nan
        scores.reasons[spec.name] = str(why)
    scores[spec.name] = value
    scores.seconds[spec.name] = time.perf_counter() - start


def score(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor | None = None,
    *,
    proxies: str | Iterable[str] = "all",
    seed: int = 0,
    fused: bool = True,
) -> Scores:
    """Values of ``proxies`` for ``model`` on the batch (x, y); the model itself is not changed."""
    names = resolve(proxies if isinstance(proxies, str) else list(proxies))
    if y is not None and len(y) != len(x):
        raise RobustnasError(f"one label per image: got {len(x)} images and {len(y)} labels")
    scores = Scores()
    shared = Evaluation(model, x, y, seed=seed, proxies=names) if fused else None
    for name in names:
        ev = shared or Evaluation(model, x, y, seed=seed, proxies=[name])
        _run(REGISTRY[name], ev, scores)
    return scores


def compute(name: str, model: nn.Module, x: torch.Tensor, y: torch.Tensor | None = None, *, seed: int = 0) -> float:
    """One proxy, computed alone (NaN where undefined; ``score`` also gives the reason)."""
    return score(model, x, y, proxies=[name], seed=seed)[name]


# The registry is full on import: every family module registers its proxies.
for _family in FAMILIES:
    importlib.import_module(f"robustnas.proxies.{_family}")
