"""Differentiable multi-objective search (ARNAS, spec crose-and-arnas.md §B.2-B.4): ``--strategy mgda``.

A supernet of the space (``Space.supernet``) is trained on one half of the training images while
its architecture parameters (alphas) are trained on the other half. Per step:

1. a train batch and a random validation batch; PGD examples of both against the current
   supernet where a loss needs them (L-inf, eps 8/255, step 2/255, 7 steps, uniform random start,
   BN in train mode; projected onto [0,1] too, unlike cleverhans' default);
2. architecture step: one gradient per objective (natural: CE on clean validation images;
   adversarial: ``adv_weight`` x CE on their PGD examples, 0.1 as the ARNAS code; corruption: CE
   on the validation batch under a random common corruption and severity), first order or DARTS'
   second-order unrolled hypergradient (``_hypergradient``), combined by the min-norm point of
   their convex hull (MGDA, ``_mgda``) or summed; Adam on the alphas (lr 3e-4, betas (0.5, 0.999),
   weight decay 1e-3);
3. weight step on the inner loss (adversarial: CE on the PGD train batch, as ARNAS; clean: DARTS;
   trades: CE + 6 KL), SGD lr 0.025 cosine-annealed to 0.001 over the epochs, momentum 0.9, weight
   decay 3e-4, gradient norm clipped to 5.

``adversarial_epochs=N`` is DSARA's two-stage switch: the first N epochs move the alphas on the
adversarial objective alone. Every random draw is a function of (seed, epoch, step), so a run
killed at any moment resumes from its last per-epoch checkpoint and ends bit for bit as an
uninterrupted run on the CPU. This module (the strategy and its settings) loads without torch;
the step is in ``_gradient_step``, the run in ``_gradient_run``.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from robustnas.errors import RobustnasError
from robustnas.search._base import Strategy, register
from robustnas.spaces import Space

OBJECTIVES = ("natural", "adversarial", "corruption")
COMBINES = ("mgda", "sum")
INNER_LOSSES = ("adversarial", "clean", "trades")
ORDERS = (1, 2)

# Spec §B.3 (the ARNAS code): weights' SGD, alphas' Adam, the search PGD.
WEIGHT_LR, WEIGHT_LR_MIN, MOMENTUM, WEIGHT_DECAY, GRAD_CLIP = 0.025, 0.001, 0.9, 3e-4, 5.0
ALPHA_LR, ALPHA_BETAS, ALPHA_DECAY = 3e-4, (0.5, 0.999), 1e-3
PGD_EPS, PGD_STEP = 8 / 255, 2 / 255
TRADES_BETA = 6.0
BATCH_SIZE = 32


@dataclass(frozen=True)
class GradientSettings:
    """Every setting of a differentiable search, resolved (what ``--dry-run`` prints)."""

    objectives: tuple[str, ...]
    combine: str
    order: int
    inner: str
    epochs: int
    batch_size: int
    sizes: dict[str, int]  # the supernet's sizes (the space's supernet_sizes, overridden)
    per_class: int  # images of each class used (0: all), half for the weights, half for the alphas
    adv_weight: float
    adversarial_epochs: int
    pgd_steps: int
    weight_lr: float = WEIGHT_LR
    weight_lr_min: float = WEIGHT_LR_MIN
    momentum: float = MOMENTUM
    weight_decay: float = WEIGHT_DECAY
    grad_clip: float = GRAD_CLIP
    alpha_lr: float = ALPHA_LR
    alpha_betas: tuple[float, float] = ALPHA_BETAS
    alpha_decay: float = ALPHA_DECAY
    pgd_eps: float = PGD_EPS
    pgd_step: float = PGD_STEP
    trades_beta: float = TRADES_BETA

    def lr_at(self, epoch: int) -> float:
        """The weights' learning rate in ``epoch`` (0-based): cosine from 0.025 to 0.001 (DARTS'
        CosineAnnealingLR with T_max = epochs, stepped per epoch)."""
        return self.weight_lr_min + (self.weight_lr - self.weight_lr_min) * (1 + math.cos(math.pi * epoch / self.epochs)) / 2

    def active_objectives(self, epoch: int) -> tuple[str, ...]:
        """The objectives that move the alphas in ``epoch``: adversarial alone in DSARA's first stage."""
        return ("adversarial",) if epoch < self.adversarial_epochs else self.objectives

    def passes_per_step(self, epoch: int | None = None) -> float:
        """A step's cost in forward+backward passes of the supernet (the unit a dry run and the
        pre-run estimate count in): the PGD iterations, the architecture step (second order: the
        shared training gradient, then per objective the pass at w' and the two finite-difference
        passes), the weight step. ``epoch`` None: the objectives after DSARA's first stage."""
        objectives = self.objectives if epoch is None else self.active_objectives(epoch)
        attacks = {"adversarial": self.pgd_steps, "trades": self.pgd_steps + 1, "clean": 0}[self.inner]
        attacks += self.pgd_steps if "adversarial" in objectives else 0
        arch = 1 + 3 * len(objectives) if self.order == 2 else len(objectives)
        weights = 2 if self.inner == "trades" else 1
        return float(attacks + arch * weights + weights)

    def to_dict(self) -> dict[str, Any]:
        return json_ready(asdict(self))


def json_ready(value: Any) -> Any:
    """Tuples as lists (how JSON stores them), recursively."""
    if isinstance(value, dict):
        return {key: json_ready(item) for key, item in value.items()}
    if isinstance(value, (tuple, list)):
        return [json_ready(item) for item in value]
    return value


@register
class MGDASearch(Strategy):
    """The differentiable strategy: its options become :class:`GradientSettings` (checked here)."""

    name = "mgda"
    summary = (
        "differentiable search (ARNAS): an adversarially trained supernet whose alphas follow the MGDA "
        "common descent of natural, adversarial and corruption losses; its options select the baselines "
        "(DARTS: objectives=natural inner=clean; a fixed sum: combine=sum; first order: order=1)"
    )
    differentiable = True
    options = {
        "objectives": f"comma-separated losses that move the alphas: {', '.join(OBJECTIVES)} (one alone: a single-objective baseline)",
        "combine": "mgda (min-norm common descent) or sum (fixed equal weights)",
        "order": "1 (first-order) or 2 (DARTS' unrolled hypergradient, as ARNAS)",
        "inner": f"the weights' training loss: {', '.join(INNER_LOSSES)} (clean + natural alone = DARTS)",
        "epochs": "search epochs (ARNAS: 50)",
        "channels": "supernet width C (0: the space's search default)",
        "layers": "cells (DARTS/ARNAS, at least 3/4 so that every cell type has one; NB201: cells per stage) "
        "(0: the space's search default)",
        "per_class": "images of each class used, split half for weights, half for alphas (0: all)",
        "adv_weight": "factor on the adversarial loss before combining (ARNAS: 0.1; steps.csv logs the product)",
        "adversarial_epochs": "DSARA's first stage: epochs whose alpha steps use the adversarial loss alone",
        "pgd_steps": "PGD steps of the search's adversarial examples (ARNAS: 7)",
    }

    def __init__(
        self,
        space: Space,
        seed: int,
        objectives: str = "natural,adversarial",
        combine: str = "mgda",
        order: int = 2,
        inner: str = "adversarial",
        epochs: int = 50,
        channels: int = 0,
        layers: int = 0,
        per_class: int = 0,
        adv_weight: float = 0.1,
        adversarial_epochs: int = 0,
        pgd_steps: int = 7,
        batch_size: int = BATCH_SIZE,
    ) -> None:
        super().__init__(space, seed)
        if space.supernet_sizes is None:
            space.supernet(10)  # the space's one-line refusal
        chosen = _objective_names(objectives)
        _choice("combine", combine, COMBINES)
        _choice("order", order, ORDERS)
        _choice("inner", inner, INNER_LOSSES)
        for name, value, low in (("epochs", epochs, 1), ("channels", channels, 0), ("layers", layers, 0),
                                 ("per_class", per_class, 0), ("adversarial_epochs", adversarial_epochs, 0),
                                 ("pgd_steps", pgd_steps, 1)):
            if value < low:
                raise RobustnasError(f"mgda option {name} must be >= {low}, got {value}")
        if batch_size < 2:
            raise RobustnasError(f"--batch-size must be >= 2 for mgda (batch norm in train mode), got {batch_size}")
        if not (adv_weight > 0 and math.isfinite(adv_weight)):
            raise RobustnasError(f"mgda option adv_weight must be a positive number, got {adv_weight}")
        if adversarial_epochs and "adversarial" not in chosen:
            raise RobustnasError("mgda option adversarial_epochs needs the adversarial objective; add it to objectives")
        if adversarial_epochs >= epochs:
            raise RobustnasError(f"mgda option adversarial_epochs ({adversarial_epochs}) must be below epochs ({epochs})")
        width, depth = space.supernet_sizes
        sizes = {width: channels or space.supernet_sizes[width], depth: layers or space.supernet_sizes[depth]}
        self.settings = GradientSettings(
            chosen, combine, order, inner, epochs, batch_size, sizes, per_class, adv_weight, adversarial_epochs, pgd_steps
        )

    def ask(self) -> list:
        raise RobustnasError("mgda trains a supernet instead of asking for architectures; run it with robustnas.search.run")


def _objective_names(text: str) -> tuple[str, ...]:
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = [name for name in names if name not in OBJECTIVES]
    if not names or unknown or len(set(names)) != len(names):
        problem = f"{unknown[0]!r} is no objective" if unknown else "give distinct names"
        raise RobustnasError(
            f"mgda option objectives={text!r}: {problem}; choose from {', '.join(OBJECTIVES)}, comma-separated"
        )
    return names


def _choice(name: str, value: Any, choices: tuple) -> None:
    if value not in choices:
        raise RobustnasError(f"mgda option {name} must be one of {', '.join(map(str, choices))}, got {value!r}")
