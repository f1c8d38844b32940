"""In-house gradient attacks in [0,1] pixel space: FGSM and PGD (L-inf, L2), batched, on x.device.

Every attack is a callable ``attack(model, x, y) -> x_adv`` configured at construction. ``model``
takes [0,1] pixels (wrap networks in ``robustnas.data.NormalizedModel``); x_adv has x's shape,
dtype and device. The model runs in eval mode (BN uses running statistics, as in the evaluation
protocols of crose-and-arnas.md §A.8/§B.6) with frozen parameters during the attack; afterwards
every module's train/eval mode and every parameter's ``requires_grad`` are as before and no
parameter ``.grad`` has changed (see ``frozen_eval``).
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from robustnas.errors import RobustnasError

NORMS = ("linf", "l2")
STARTS = ("uniform", "gaussian", "none")
GAUSSIAN_START_STD = 0.001  # x + 0.001 * N(0, 1): CRoZe's evaluation PGD and ARNAS' training PGD (spec §A.8, §B.5)


class Attack(Protocol):
    """``attack(model, x, y) -> x_adv``: x in [0,1] [B,...], y int64 [B], x_adv in [0,1] like x."""

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor: ...


@contextmanager
def frozen_eval(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode and ``requires_grad=False`` on every parameter inside; both restored per module/parameter.

    Freezing means gradients reach only the input, so no parameter ``.grad`` is written (also
    by attack code that calls ``backward``, e.g. FAB) and no parameter gradients are computed.
    """
    modes = [(module, module.training) for module in model.modules()]
    flags = [(param, param.requires_grad) for param in model.parameters()]
    try:
        model.eval()
        for param, _ in flags:
            param.requires_grad_(False)
        yield model
    finally:
        for module, training in modes:
            module.training = training
        for param, requires_grad in flags:
            param.requires_grad_(requires_grad)


def check_batch(x: torch.Tensor, y: torch.Tensor) -> None:
    """Attacks need floating [0,1] pixels [B,...] and B integer labels on the same device."""
    if not x.is_floating_point() or x.dim() < 2 or y.shape != (x.shape[0],) or y.device != x.device:
        raise RobustnasError(
            f"attacks take x float [B,C,H,W] and y int64 [B] on one device, got x {x.dtype} "
            f"{list(x.shape)} on {x.device}, y {y.dtype} {list(y.shape)} on {y.device}"
        )
    if x.numel() and (x.min() < 0 or x.max() > 1):
        raise RobustnasError(
            f"attacks work on [0,1] pixels, got values in [{x.min():.3g}, {x.max():.3g}]; "
            "pass unnormalised images and wrap the network in robustnas.data.NormalizedModel"
        )


def input_gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """d/dx of the summed cross-entropy: per-sample gradients, independent of the batch size."""
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        loss = F.cross_entropy(model(x), y, reduction="sum")
        (grad,) = torch.autograd.grad(loss, x)
    return grad


@dataclass(frozen=True)
class FGSM:
    """Fast gradient sign method (Goodfellow et al. 2015): clip(x + eps * sign(grad_x CE), 0, 1)."""

    eps: float

    def __post_init__(self) -> None:
        if not self.eps >= 0:
            raise RobustnasError(f"FGSM eps must be >= 0 (pixel units, e.g. 8/255), got {self.eps}")

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        check_batch(x, y)
        with frozen_eval(model):
            grad = input_gradient(model, x, y)
        return (x.detach() + self.eps * grad.sign()).clamp(0, 1)


@dataclass(frozen=True)
class PGD:
    """Projected gradient descent on CE (Madry et al. 2018), L-inf (sign steps) or L2 (unit-norm steps).

    Each step: x <- Proj(x + step * direction(grad)) onto ball(x0, eps) and [0,1]. ``start``:
    "uniform" draws the start uniformly from the eps-ball (Madry et al.; clipped to [0,1]),
    "gaussian" adds 0.001 * N(0, 1) as CRoZe's and ARNAS' code do, "none" starts at x; draws come
    from a generator seeded by ``seed``, so a call is deterministic. ``restarts`` > 1 keeps, per sample, the first restart
    that misclassifies it (later restarts only attack samples not yet broken, as AutoAttack's
    APGD does) and, for samples never broken, the restart with the highest loss. Success first
    because robust accuracy counts a sample as broken if *any* restart breaks it, and the
    highest-loss point can still be classified correctly; so per sample R restarts are never
    worse than the first run alone, which is the same as ``restarts=1`` with the same seed.
    """

    eps: float
    step: float
    steps: int
    norm: str = "linf"
    start: str = "uniform"
    restarts: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        if self.norm not in NORMS:
            raise RobustnasError(f"PGD norm must be one of {', '.join(NORMS)}, got {self.norm!r}")
        if self.start not in STARTS:
            raise RobustnasError(f"PGD start must be one of {', '.join(STARTS)}, got {self.start!r}")
        if not (self.eps >= 0 and self.step > 0 and self.steps >= 1 and self.restarts >= 1):
            raise RobustnasError(
                f"PGD needs eps >= 0, step > 0, steps >= 1, restarts >= 1, got eps={self.eps}, "
                f"step={self.step}, steps={self.steps}, restarts={self.restarts}"
            )

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        check_batch(x, y)
        x = x.detach()
        generator = torch.Generator(device=x.device).manual_seed(self.seed)
        with frozen_eval(model):
            if self.restarts == 1:
                return self._run(model, x, y, generator)
            return self._restarts(model, x, y, generator)

    def _restarts(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator
    ) -> torch.Tensor:
        best = x.clone()
        best_loss = torch.full((len(x),), -torch.inf, device=x.device)
        broken = torch.zeros(len(x), dtype=torch.bool, device=x.device)
        for _ in range(self.restarts):
            todo = (~broken).nonzero().squeeze(1)
            if todo.numel() == 0:
                break
            x_adv = self._run(model, x[todo], y[todo], generator)
            with torch.no_grad():
                logits = model(x_adv)
            wrong = logits.argmax(1) != y[todo]
            loss = F.cross_entropy(logits, y[todo], reduction="none").float()
            take = wrong | (loss > best_loss[todo])
            best[todo[take]] = x_adv[take]
            best_loss[todo[take]] = loss[take]
            broken[todo[wrong]] = True
        return best

    def _run(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        x_adv = x if self.start == "none" else x + self._start(x, generator)
        x_adv = self._project(x_adv, x)
        for _ in range(self.steps):
            x_adv = self._project(x_adv + self.step * self._direction(input_gradient(model, x_adv, y)), x)
        return x_adv

    def _start(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Gaussian, or uniform in the eps-ball (L2 by Voelker et al. 2017: first n of a unit vector in n+2 dims)."""
        if self.start == "gaussian":
            return GAUSSIAN_START_STD * torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        if self.norm == "linf":
            noise = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
            return (2 * noise - 1) * self.eps
        flat = torch.randn((len(x), x[0].numel() + 2), generator=generator, device=x.device, dtype=x.dtype)
        unit = flat / flat.norm(dim=1, keepdim=True)
        return self.eps * unit[:, :-2].reshape(x.shape)

    def _direction(self, grad: torch.Tensor) -> torch.Tensor:
        if self.norm == "linf":
            return grad.sign()
        return grad / _per_sample_norm(grad).clamp_min(1e-12)

    def _project(self, x_adv: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """L-inf: the nearest point of ball ∩ [0,1] (exact, so 1 step of size eps is FGSM bit for bit).
        L2: scale into the ball, then clip to [0,1], which stays inside the ball (as foolbox does)."""
        if self.norm == "linf":
            return torch.min(torch.max(x_adv, (x - self.eps).clamp(min=0)), (x + self.eps).clamp(max=1))
        delta = x_adv - x
        factor = (self.eps / _per_sample_norm(delta).clamp_min(1e-12)).clamp(max=1)
        return (x + delta * factor).clamp(0, 1)


def _per_sample_norm(t: torch.Tensor) -> torch.Tensor:
    """L2 norm of each sample, shaped to broadcast against t."""
    return t.flatten(1).norm(dim=1).view(-1, *([1] * (t.dim() - 1)))
