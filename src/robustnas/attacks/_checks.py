"""Robust accuracy over a dataset and sanity checks that catch gradient masking.

The checks are the basic ones of Carlini et al. 2019 ("On evaluating adversarial robustness",
§5) and Athalye et al. 2018: a sound gradient attack makes accuracy fall as eps grows, an
iterative attack is at least as strong as a one-step one, and with an unbounded budget
(eps = 1 covers the whole [0,1] pixel range) accuracy must reach ~0. A model whose gradients
are zero or useless (e.g. a non-differentiable input quantisation) fails the last one: PGD only
adds its random start, and the model keeps roughly the accuracy it has on noise.
"""
from __future__ import annotations

from itertools import chain
from typing import Iterable, Sequence

import torch
from torch import nn

from robustnas.attacks._gradient import FGSM, PGD, Attack, check_batch, frozen_eval, input_gradient
from robustnas.errors import RobustnasError

Batch = tuple[torch.Tensor, torch.Tensor]


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Top-1 accuracy of ``model`` on (x, y) in eval mode (modes restored)."""
    with frozen_eval(model), torch.no_grad():
        return int((model(x).argmax(1) == y).sum()) / len(y)


def robust_accuracy(model: nn.Module, data: Batch | Iterable[Batch], attack: Attack, batch_size: int = 256) -> float:
    """Fraction of samples that ``model`` (eval mode) still classifies correctly after ``attack``.

    ``data`` is a pair of tensors (x, y), attacked in chunks of ``batch_size``, or an iterable of
    (x, y) batches (e.g. a DataLoader or ``robustnas.data.iterate_batches``), attacked as they come.
    Batches are moved to the model's device.
    """
    device = next(chain(model.parameters(), model.buffers()), torch.empty(0)).device
    correct = total = 0
    for x, y in _batches(data, batch_size):
        x, y = x.to(device), y.to(device)
        check_batch(x, y)
        x_adv = attack(model, x, y)
        with frozen_eval(model), torch.no_grad():
            correct += int((model(x_adv).argmax(1) == y).sum())
        total += len(y)
    if total == 0:
        raise RobustnasError("robust_accuracy got no samples; pass (x, y) tensors or a non-empty loader")
    return correct / total


def sanity_checks(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float = 8 / 255,
    eps_grid: Sequence[float] = (0.0, 2 / 255, 4 / 255, 8 / 255, 16 / 255),
    huge_eps: float = 1.0,
    steps: int = 20,
    tol: float = 0.02,
    seed: int = 0,
) -> dict[str, dict]:
    """Four gradient-masking checks on one batch, each ``{"passed": bool, ...numbers}`` (JSON-able).

    PGD uses ``steps`` steps of eps/4 (the 2/255-at-8/255 rule of crose-and-arnas.md §B.6) with a
    uniform random start. ``tol`` is the accuracy slack for noise.

    * accuracy_falls_with_eps: PGD accuracy over ``eps_grid`` (eps 0 = clean) never rises by > tol;
    * pgd_not_above_fgsm: PGD accuracy <= FGSM accuracy + tol at ``eps``;
    * near_zero_at_huge_eps: PGD accuracy <= tol at ``huge_eps`` (1.0: any image is reachable);
    * gradients_not_zero: no more than half the correctly classified samples have an input
      gradient that is exactly zero (AutoAttack's own check; a quantised or saturated input
      stage gives zero gradients and a flat curve that passes the first two checks).
    """
    grid = sorted(set(eps_grid) | {eps})
    curve = {e: _pgd_accuracy(model, x, y, e, steps, seed) for e in grid}
    rises = [later - earlier for earlier, later in zip(curve.values(), list(curve.values())[1:])]
    fgsm = accuracy(model, FGSM(eps)(model, x, y), y)
    huge = _pgd_accuracy(model, x, y, huge_eps, steps, seed)
    return {
        "accuracy_falls_with_eps": {
            "passed": all(rise <= tol for rise in rises),
            "eps": grid,
            "accuracy": list(curve.values()),
        },
        "pgd_not_above_fgsm": {"passed": curve[eps] <= fgsm + tol, "eps": eps, "fgsm": fgsm, "pgd": curve[eps]},
        "near_zero_at_huge_eps": {"passed": huge <= tol, "eps": huge_eps, "accuracy": huge},
        "gradients_not_zero": _zero_gradients(model, x, y),
    }


def _zero_gradients(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict:
    """Share of correctly classified samples whose cross-entropy input gradient is exactly zero."""
    with frozen_eval(model):
        with torch.no_grad():
            correct = model(x).argmax(1) == y
        if not correct.any():
            return {"passed": True, "zero_gradient_share": 0.0, "samples": 0}
        grad = input_gradient(model, x[correct], y[correct])
    share = float((grad.flatten(1).abs().sum(1) == 0).float().mean())
    return {"passed": share <= 0.5, "zero_gradient_share": share, "samples": int(correct.sum())}


def _pgd_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, steps: int, seed: int) -> float:
    if eps == 0:
        return accuracy(model, x, y)
    return accuracy(model, PGD(eps, eps / 4, steps, seed=seed)(model, x, y), y)


def _batches(data: Batch | Iterable[Batch], batch_size: int) -> Iterable[Batch]:
    if isinstance(data, (tuple, list)) and len(data) == 2 and all(isinstance(t, torch.Tensor) for t in data):
        if batch_size < 1:
            raise RobustnasError(f"batch_size must be a positive integer, got {batch_size}")
        x, y = data
        return zip(x.split(batch_size), y.split(batch_size))
    return data
