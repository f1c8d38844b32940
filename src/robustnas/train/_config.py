"""TrainConfig: every setting of a training run, validated, plus the closed-form schedules.

Defaults are the CRoZe final-training protocol (crose-and-arnas.md §A.8): SGD lr 0.1, momentum 0.9,
weight decay 5e-4, batch 128, 200 epochs with lr x0.1 at epochs 100 and 150, gradient clipping 5;
the adversarial settings are its PGD-7 (eps 8/255, step 2/255) and the logged evaluation is the
PGD-20 of ARNAS (§B.6). ARNAS (§B.5) differs by wd 1e-4, batch 32, cutout 16, aux weight 0.4.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from robustnas.attacks._gradient import STARTS
from robustnas.errors import RobustnasError

SCHEDULES = ("step", "cosine")
ADVERSARIAL = (None, "pgd", "trades")
ATTACK_BN = ("eval", "train")


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one training run (all pixel budgets in [0,1] units, e.g. 8/255).

    * SGD with momentum; weight decay on every parameter, BN included (as the CRoZe, ARNAS and
      DARTS training codes); augment = random crop (zero padding 4 px at 32 px) + horizontal flip.

    * schedule "step": lr * gamma ** (number of milestones <= epoch); "cosine": lr_min +
      (lr - lr_min) * (1 + cos(pi * epoch / epochs)) / 2 (SGDR without restarts). Epochs count from 0
      and the lr is set once per epoch, as the reference codes step their schedulers.
    * grad_clip: max total L2 norm of the gradients (0 = off); cutout: side of the zeroed square (0 = off).
    * aux_weight: weight of the auxiliary head's CE (DARTS/ARNAS nets built with ``auxiliary=True``).
    * drop_path_prob: DARTS drop path, raised linearly from 0 at epoch 0 (p * epoch / epochs).
    * adversarial: None (standard), "pgd" (Madry et al. 2018: CE on PGD examples) or "trades"
      (Zhang et al. 2019: CE(clean) + trades_beta * KL(p_clean || p_adv)); the training attack
      uses attack_eps/attack_step/attack_steps from ``attack_start`` (robustnas.attacks.PGD: "uniform"
      as Madry/CRoZe, "gaussian" = x + 0.001 N(0,1) as ARNAS' code, "none") with BN in ``attack_bn`` mode.
    * amp: float16 autocast + gradient scaling; CUDA only (a CPU run with amp=True is refused).
    * eval_every: evaluate on the held-out split every k epochs and after the last one, with
      PGD (eval_eps, eval_step, eval_steps, uniform random start seeded by ``seed``).
    """

    epochs: int = 200
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "step"
    milestones: tuple[int, ...] = (100, 150)
    gamma: float = 0.1
    lr_min: float = 0.0
    grad_clip: float = 5.0
    augment: bool = True
    cutout: int = 0
    aux_weight: float = 0.0
    drop_path_prob: float = 0.0
    adversarial: str | None = None
    attack_eps: float = 8 / 255
    attack_step: float = 2 / 255
    attack_steps: int = 7
    attack_start: str = "uniform"
    attack_bn: str = "eval"
    trades_beta: float = 6.0
    amp: bool = False
    seed: int = 0
    eval_every: int = 1
    eval_eps: float = 8 / 255
    eval_step: float = 2 / 255
    eval_steps: int = 20

    def __post_init__(self) -> None:
        if not isinstance(self.milestones, (tuple, list)):
            raise RobustnasError(f"TrainConfig.milestones must be a list of epochs, got {self.milestones!r}")
        object.__setattr__(self, "milestones", tuple(self.milestones))
        _check_types(self)
        _check_values(self)

    def to_dict(self) -> dict[str, Any]:
        """Plain values (lists, not tuples): what the checkpoint stores and resumes compare."""
        values = asdict(self)
        values["milestones"] = list(self.milestones)
        return values


def _check_types(config: TrainConfig) -> None:
    for field in fields(config):
        value = getattr(config, field.name)
        kind = field.type  # a string: this module uses postponed annotations
        if kind == "int" and not _is_int(value):
            raise RobustnasError(f"TrainConfig.{field.name} must be an integer, got {value!r}")
        if kind == "float" and not (_is_number(value) and math.isfinite(value)):
            raise RobustnasError(f"TrainConfig.{field.name} must be a finite number, got {value!r}")
        if kind == "bool" and not isinstance(value, bool):
            raise RobustnasError(f"TrainConfig.{field.name} must be True or False, got {value!r}")
    if not all(_is_int(m) for m in config.milestones):
        raise RobustnasError(f"TrainConfig.milestones must be integers, got {list(config.milestones)}")


def _check_values(c: TrainConfig) -> None:
    rules = [
        (c.epochs >= 1, "epochs", "epochs must be >= 1"),
        (c.batch_size >= 2, "batch_size", "batch_size must be >= 2 (batch norm needs two images)"),
        (c.lr > 0, "lr", "lr must be > 0"),
        (0 <= c.momentum < 1, "momentum", "momentum must be in [0, 1)"),
        (c.weight_decay >= 0, "weight_decay", "weight_decay must be >= 0"),
        (c.schedule in SCHEDULES, "schedule", f"schedule must be one of {', '.join(SCHEDULES)}"),
        (list(c.milestones) == sorted(set(c.milestones)) and all(m > 0 for m in c.milestones),
         "milestones", "milestones must be increasing positive epochs"),
        (0 < c.gamma <= 1, "gamma", "gamma must be in (0, 1]"),
        (0 <= c.lr_min <= c.lr, "lr_min lr", "lr_min must be in [0, lr]"),
        (c.grad_clip >= 0, "grad_clip", "grad_clip must be >= 0 (0 = off)"),
        (c.cutout >= 0, "cutout", "cutout must be >= 0 (0 = off)"),
        (c.aux_weight >= 0, "aux_weight", "aux_weight must be >= 0"),
        (0 <= c.drop_path_prob < 1, "drop_path_prob", "drop_path_prob must be in [0, 1)"),
        (c.adversarial in ADVERSARIAL, "adversarial", "adversarial must be None, 'pgd' or 'trades'"),
        (c.attack_eps >= 0 and c.attack_step > 0 and c.attack_steps >= 1, "attack_eps attack_step attack_steps",
         "the training attack needs attack_eps >= 0, attack_step > 0, attack_steps >= 1"),
        (c.attack_start in STARTS, "attack_start", f"attack_start must be one of {', '.join(STARTS)}"),
        (c.attack_bn in ATTACK_BN, "attack_bn", "attack_bn must be 'eval' or 'train'"),
        (c.trades_beta >= 0, "trades_beta", "trades_beta must be >= 0"),
        (c.seed >= 0, "seed", "seed must be >= 0"),
        (c.eval_every >= 1, "eval_every", "eval_every must be >= 1"),
        (c.eval_eps >= 0 and c.eval_step > 0 and c.eval_steps >= 1, "eval_eps eval_step eval_steps",
         "the logged PGD needs eval_eps >= 0, eval_step > 0, eval_steps >= 1"),
    ]
    for ok, names, rule in rules:
        if not ok:
            got = ", ".join(f"{name}={getattr(c, name)!r}" for name in names.split())
            raise RobustnasError(f"TrainConfig: {rule}, got {got}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def lr_at(config: TrainConfig, epoch: int) -> float:
    """The learning rate of 0-based ``epoch`` (closed forms in :class:`TrainConfig`)."""
    if config.schedule == "cosine":
        return config.lr_min + (config.lr - config.lr_min) * (1 + math.cos(math.pi * epoch / config.epochs)) / 2
    return config.lr * config.gamma ** sum(1 for m in config.milestones if m <= epoch)


def drop_path_at(config: TrainConfig, epoch: int) -> float:
    """DARTS' linear drop-path schedule (``drop_path_prob * epoch / epochs`` in DARTS train.py)."""
    return config.drop_path_prob * epoch / config.epochs


def config_differences(saved: dict[str, Any], current: TrainConfig) -> list[str]:
    """``name: saved -> current`` for every field that differs (a resume must not change any)."""
    now = current.to_dict()
    names = sorted(set(saved) | set(now))
    return [
        f"{n}: {saved.get(n, '<absent>')!r} -> {now.get(n, '<absent>')!r}" for n in names if saved.get(n) != now.get(n)
    ]
