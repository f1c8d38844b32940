"""APGD-CE, APGD-T, FAB-T, Square and the standard AutoAttack through ``pyautoattack==0.2.0``.

pyautoattack is the PyPI packaging of the official code (Croce & Hein 2020, fra31/auto-attack;
attack cores identical, see dependencies-survey.md §1), which RobustBench also runs, so numbers
are comparable with RobustBench. Each attack runs with exactly the settings it has inside the
standard ensemble (``AutoAttack(version="standard")``: APGD-CE 100 iterations 1 restart, APGD-T
and FAB-T 9 target classes 1 restart, Square 5000 queries), as fra31's
``run_standard_evaluation_individual`` does; "standard" runs the four in sequence, each on the
points still robust.
"""
from __future__ import annotations

import sys
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import torch
from pyautoattack import AutoAttack
from torch import nn

from robustnas.attacks._gradient import NORMS, check_batch, frozen_eval
from robustnas.errors import RobustnasError

AUTOATTACK_NAMES = ("apgd-ce", "apgd-t", "fab-t", "square", "standard")
_NORM_NAMES = {"linf": "Linf", "l2": "L2"}
_STANDARD_TARGETS = 9  # target classes of APGD-T and FAB-T in the standard version


@dataclass(frozen=True)
class AutoAttackAdapter:
    """``attack(model, x, y) -> x_adv`` running one pyautoattack attack (or "standard") on the batch.

    x_adv equals ``pyautoattack.AutoAttack(model, eps=, norm=, seed=, version="standard",
    device=x.device)`` run on (x, y) as one batch, with ``attacks_to_run=[name]`` unless name is
    "standard"; points it does not break are returned unchanged. The number of classes is read
    from the model's logits; with fewer than 10 classes the targeted attacks use all n-1 other
    classes. pyautoattack seeds the global torch RNG; here that happens inside a forked RNG, so
    the caller's random state is untouched.
    """

    name: str
    eps: float = 8 / 255
    norm: str = "linf"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.name not in AUTOATTACK_NAMES:
            raise RobustnasError(
                f"unknown AutoAttack attack {self.name!r}; choose one of {', '.join(AUTOATTACK_NAMES)}"
            )
        if self.norm not in NORMS or not self.eps > 0:
            raise RobustnasError(
                f"AutoAttack needs norm in {', '.join(NORMS)} and eps > 0, got norm={self.norm!r}, eps={self.eps}"
            )

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        check_batch(x, y)
        if len(x) == 0:
            return x.detach().clone()
        with frozen_eval(model), _forked_rng(x.device), _kept_trace():
            adversary = self._adversary(model, x)
            # contiguous: pyautoattack's zero-gradient check .view()s a zeros_like(x) (APGD-T)
            x_adv, _ = adversary.run_standard_evaluation(x.detach().contiguous(), y, batch_size=len(x))
        return x_adv.to(x.dtype)

    def _adversary(self, model: nn.Module, x: torch.Tensor) -> AutoAttack:
        with torch.no_grad():
            n_classes = model(x[:1]).shape[-1]
        if self.name in ("apgd-t", "standard") and n_classes < 4:
            raise RobustnasError(
                f"{self.name} uses the targeted DLR loss, which needs >= 4 classes (model has {n_classes}); use apgd-ce"
            )
        adversary = AutoAttack(
            model, eps=self.eps, norm=_NORM_NAMES[self.norm], seed=self.seed, version="standard", device=x.device
        )
        adversary.apgd_targeted.n_target_classes = min(_STANDARD_TARGETS, n_classes - 1)
        adversary.fab.n_target_classes = min(_STANDARD_TARGETS, n_classes - 1)
        if self.name != "standard":
            adversary.attacks_to_run = [self.name]
        return adversary


@contextmanager
def _forked_rng(device: torch.device) -> Iterator[None]:
    """pyautoattack calls torch.manual_seed; fork the CPU RNG (and x's CUDA device's) around it."""
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        yield


@contextmanager
def _kept_trace() -> Iterator[None]:
    """pyautoattack's dynamic-defense check ends with sys.settrace(None); give a debugger/coverage tracer back."""
    tracer = sys.gettrace()
    try:
        yield
    finally:
        sys.settrace(tracer)
