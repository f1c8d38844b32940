"""Architecture gradients of a supernet: first order, or DARTS' second-order unrolled hypergradient.

DARTS (Liu et al. 2019, Eq. 6-8) approximates the gradient of a validation loss L_val at the
weights after one training step, w' = w - ξ ∇_w L_train(w, α), by

    ∇_α L_val(w', α) - ξ [∇_α L_train(w⁺, α) - ∇_α L_train(w⁻, α)] / (2r),
    w± = w ± r ∇_{w'} L_val(w', α),  r = 0.01 / ||∇_{w'} L_val(w', α)||

(a central finite difference for the Hessian-vector product). As in the DARTS and ARNAS code
(architect.py ``_compute_unrolled_model``), the virtual step is the SGD step with momentum and
weight decay: w' = w - ξ (μ m + ∇_w L_train + λ w), with m the optimizer's momentum buffer.

ARNAS (spec crose-and-arnas.md §B.2 step 3) needs one such gradient per objective. The reference
code re-builds the unrolled model for each objective; here the training gradient and w' are
computed once and shared, every forward at w' or w± is a ``torch.func.functional_call`` on the one
supernet (no copy), and the finite-difference forwards differentiate the alphas only.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn
from torch.func import functional_call

FINITE_DIFFERENCE_SCALE = 0.01  # r = 0.01 / ||v|| (DARTS architect.py)

Loss = Callable[[Callable[[torch.Tensor], torch.Tensor]], torch.Tensor]  # forward -> scalar loss


def weight_names(supernet: nn.Module) -> list[str]:
    """Names of the supernet's weight parameters (everything but the alphas), in parameter order."""
    alphas = {id(alpha) for alpha in supernet.arch_parameters()}
    return [name for name, param in supernet.named_parameters() if id(param) not in alphas]


def forward_with(supernet: nn.Module, weights: dict[str, torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
    """The supernet's forward with ``weights`` in place of its own (alphas and buffers its own)."""
    return lambda x: functional_call(supernet, weights, (x,))


def first_order(supernet: nn.Module, objectives: Sequence[Loss]) -> tuple[list[list[torch.Tensor]], list[float]]:
    """(∇_α L_k at the current weights for each objective, the losses): DARTS' first-order approximation."""
    alphas = supernet.arch_parameters()
    gradients, losses = [], []
    for objective in objectives:
        loss = objective(supernet)
        gradients.append(list(torch.autograd.grad(loss, alphas)))
        losses.append(float(loss.detach()))
    return gradients, losses


def second_order(
    supernet: nn.Module,
    inner: Loss,
    objectives: Sequence[Loss],
    optimizer: torch.optim.SGD,
    lr: float,
) -> tuple[list[list[torch.Tensor]], list[float]]:
    """(the unrolled hypergradient of each objective w.r.t. the alphas, the losses at w').

    ``inner`` is the training loss (ARNAS: CE on the PGD train batch); ``optimizer`` the weights'
    SGD, whose momentum and weight decay make the virtual step; ``lr`` is ξ.
    """
    names = weight_names(supernet)
    params = dict(supernet.named_parameters())
    weights = [params[name] for name in names]
    alphas = supernet.arch_parameters()
    unrolled = _virtual_step(supernet, names, weights, inner, optimizer, lr)
    gradients, losses = [], []
    for objective in objectives:
        leaves = {name: value.requires_grad_(True) for name, value in unrolled.items()}
        loss = objective(forward_with(supernet, leaves))
        grads = torch.autograd.grad(loss, [*alphas, *leaves.values()])
        direct, vector = grads[: len(alphas)], grads[len(alphas) :]
        implicit = _hessian_vector_product(supernet, names, weights, vector, inner, alphas)
        gradients.append([d - lr * h for d, h in zip(direct, implicit)])
        losses.append(float(loss.detach()))
    return gradients, losses


def _virtual_step(
    supernet: nn.Module, names: list[str], weights: list[torch.Tensor], inner: Loss, optimizer: torch.optim.SGD, lr: float
) -> dict[str, torch.Tensor]:
    """w' = w - ξ (μ m + ∇_w L_train(w) + λ w), detached (architect.py ``_compute_unrolled_model``)."""
    group = optimizer.param_groups[0]
    momentum, decay = group["momentum"], group["weight_decay"]
    grads = torch.autograd.grad(inner(supernet), weights)
    unrolled = {}
    with torch.no_grad():
        for name, weight, grad in zip(names, weights, grads):
            buffer = optimizer.state.get(weight, {}).get("momentum_buffer")
            step = grad + decay * weight
            if buffer is not None:
                step = step + momentum * buffer
            unrolled[name] = weight - lr * step
    return unrolled


def _hessian_vector_product(
    supernet: nn.Module,
    names: list[str],
    weights: list[torch.Tensor],
    vector: Sequence[torch.Tensor],
    inner: Loss,
    alphas: list[torch.Tensor],
) -> list[torch.Tensor]:
    """[∇_α L_train(w + r v) - ∇_α L_train(w - r v)] / (2r), r = 0.01 / ||v|| (architect.py
    ``_hessian_vector_product``).

    w± are rounded as the reference rounds them (w + r v, then that minus 2 r v): the quotient
    divides by 2r, so a one-ulp difference of w± that flips a ReLU or max-pool somewhere changes
    the result visibly (in a C=24, 8-cell supernet, by 1e-2 relative); this way the two agree.
    """
    r = FINITE_DIFFERENCE_SCALE / torch.cat([v.reshape(-1) for v in vector]).norm()
    with torch.no_grad():
        plus = {name: w.add(v, alpha=float(r)) for name, w, v in zip(names, weights, vector)}
        minus = {name: plus[name].sub(v, alpha=float(2 * r)) for name, v in zip(names, vector)}
    sides = [torch.autograd.grad(inner(forward_with(supernet, moved)), alphas) for moved in (plus, minus)]
    return [(high - low).div_(2 * r) for high, low in zip(*sides)]
