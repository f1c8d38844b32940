"""One step of the differentiable search (see ``_gradient``): the batch's adversarial and corrupted
examples are given, the losses are functions of the forward, the alphas move along the combined
objective gradient, then the weights along the inner loss."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from robustnas.search._gradient import GradientSettings
from robustnas.search._hypergradient import first_order, second_order
from robustnas.search._mgda import min_norm_weights
from robustnas.train._losses import trades_kl

Forward = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class StepBatch:
    """The tensors of one step: train and validation images (clean) and the examples derived from them."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_train_adv: torch.Tensor | None = None  # PGD (inner adversarial) or TRADES examples (inner trades)
    x_val_adv: torch.Tensor | None = None
    x_val_corrupt: torch.Tensor | None = None


def inner_loss(settings: GradientSettings, batch: StepBatch) -> Callable[[Forward], torch.Tensor]:
    """The weights' training loss as a function of the forward (w, w' or w± in the hypergradient)."""
    if settings.inner == "clean":
        return lambda forward: F.cross_entropy(forward(batch.x_train), batch.y_train)
    if settings.inner == "adversarial":
        return lambda forward: F.cross_entropy(forward(batch.x_train_adv), batch.y_train)
    def trades(forward: Forward) -> torch.Tensor:
        logits = forward(batch.x_train)
        return F.cross_entropy(logits, batch.y_train) + settings.trades_beta * trades_kl(logits, forward(batch.x_train_adv))

    return trades


def objective_loss(name: str, settings: GradientSettings, batch: StepBatch) -> Callable[[Forward], torch.Tensor]:
    """One validation objective: natural, adversarial (weighted by adv_weight) or corruption."""
    if name == "natural":
        return lambda forward: F.cross_entropy(forward(batch.x_val), batch.y_val)
    if name == "adversarial":
        return lambda forward: settings.adv_weight * F.cross_entropy(forward(batch.x_val_adv), batch.y_val)
    return lambda forward: F.cross_entropy(forward(batch.x_val_corrupt), batch.y_val)


def combine(settings: GradientSettings, gradients: list[list[torch.Tensor]]) -> tuple[list[float], list[torch.Tensor]]:
    """(weight per objective, the combined gradient per alpha tensor): MGDA's min-norm point or the sum."""
    if len(gradients) == 1 or settings.combine == "sum":
        weights = [1.0] * len(gradients)
    else:
        weights = [float(w) for w in min_norm_weights([torch.cat([g.reshape(-1) for g in grads]) for grads in gradients])]
    direction = [sum(w * grads[i] for w, grads in zip(weights, gradients)) for i in range(len(gradients[0]))]
    return weights, direction


def arch_step(
    supernet: torch.nn.Module,
    settings: GradientSettings,
    batch: StepBatch,
    epoch: int,
    weight_optimizer: torch.optim.SGD,
    alpha_optimizer: torch.optim.Adam,
) -> dict[str, float]:
    """Move the alphas one Adam step along the combined objective gradient; returns the losses
    (at w' for the second order), the weight of each objective and the norm of the direction."""
    names = settings.active_objectives(epoch)
    losses = [objective_loss(name, settings, batch) for name in names]
    if settings.order == 2:
        gradients, values = second_order(supernet, inner_loss(settings, batch), losses, weight_optimizer, settings.lr_at(epoch))
    else:
        gradients, values = first_order(supernet, losses)
    weights, direction = combine(settings, gradients)
    alpha_optimizer.zero_grad(set_to_none=True)
    for alpha, grad in zip(supernet.arch_parameters(), direction):
        alpha.grad = grad.detach().clone()
    alpha_optimizer.step()
    record = {f"loss_{name}": value for name, value in zip(names, values)}
    record.update({f"weight_{name}": weight for name, weight in zip(names, weights)})
    record["direction_norm"] = float(torch.cat([d.reshape(-1) for d in direction]).norm())
    return record


def weight_step(
    supernet: torch.nn.Module, settings: GradientSettings, batch: StepBatch, weight_optimizer: torch.optim.SGD
) -> float:
    """One SGD step of the weights on the inner loss (gradient norm clipped); returns the loss."""
    weights = supernet.weight_parameters()
    weight_optimizer.zero_grad(set_to_none=True)
    loss = inner_loss(settings, batch)(supernet)
    loss.backward(inputs=weights)
    torch.nn.utils.clip_grad_norm_(weights, settings.grad_clip)
    weight_optimizer.step()
    return float(loss.detach())


def optimizers(supernet: torch.nn.Module, settings: GradientSettings) -> tuple[torch.optim.SGD, torch.optim.Adam]:
    """The weights' SGD and the alphas' Adam with the spec's settings (§B.3)."""
    weight_optimizer = torch.optim.SGD(
        supernet.weight_parameters(), settings.weight_lr, momentum=settings.momentum, weight_decay=settings.weight_decay
    )
    alpha_optimizer = torch.optim.Adam(
        supernet.arch_parameters(), settings.alpha_lr, betas=settings.alpha_betas, weight_decay=settings.alpha_decay
    )
    return weight_optimizer, alpha_optimizer
