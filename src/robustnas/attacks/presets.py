"""Named attacks with the settings of the specs (crose-and-arnas.md); ``make_attack("pgd20", seed=1)``.

All L-inf, eps 8/255 (CIFAR convention in every protocol of the specs; 0.031 where the code says so):

* fgsm:   one step of 8/255, no random start (ARNAS eval, §B.6).
* pgd7:   7 steps of 2/255, uniform random start (CRoZe adversarial training, §A.8).
* pgd10:  10 steps of 2/255, uniform random start (Rice et al. PGD-10 evaluation, Part C).
* pgd20, pgd100: 20 / 100 steps of 2/255, uniform random start (ARNAS eval, §B.6).
* pgd20-croze: CRoZe's evaluation PGD, eps 0.031, 20 steps of 0.003, start x + 0.001 N(0,1) (§A.8).
* pgd7-arnas: ARNAS' training PGD, 7 steps of 0.01, start x + 0.001 N(0,1) (§B.5).
* apgd-ce, apgd-t, fab-t, square, autoattack: pyautoattack with the standard-version settings
  (AutoAttack "standard" L-inf 8/255 in CRoZe §A.8 and ARNAS §B.6).
"""
from __future__ import annotations

from functools import partial
from typing import Any, Callable

from robustnas.attacks.autoattack import AutoAttackAdapter
from robustnas.attacks.gradient import FGSM, PGD, Attack
from robustnas.errors import RobustnasError

EPS = 8 / 255
STEP = 2 / 255

ATTACKS: dict[str, Callable[..., Attack]] = {
    "fgsm": partial(FGSM, eps=EPS),
    "pgd7": partial(PGD, eps=EPS, step=STEP, steps=7),
    "pgd10": partial(PGD, eps=EPS, step=STEP, steps=10),
    "pgd20": partial(PGD, eps=EPS, step=STEP, steps=20),
    "pgd100": partial(PGD, eps=EPS, step=STEP, steps=100),
    "pgd20-croze": partial(PGD, eps=0.031, step=0.003, steps=20, start="gaussian"),
    "pgd7-arnas": partial(PGD, eps=EPS, step=0.01, steps=7, start="gaussian"),
    "apgd-ce": partial(AutoAttackAdapter, "apgd-ce", eps=EPS),
    "apgd-t": partial(AutoAttackAdapter, "apgd-t", eps=EPS),
    "fab-t": partial(AutoAttackAdapter, "fab-t", eps=EPS),
    "square": partial(AutoAttackAdapter, "square", eps=EPS),
    "autoattack": partial(AutoAttackAdapter, "standard", eps=EPS),
}


def make_attack(name: str, **overrides: Any) -> Attack:
    """The preset ``name`` with keyword ``overrides`` (e.g. seed=1, eps=4/255)."""
    if name not in ATTACKS:
        raise RobustnasError(f"unknown attack {name!r}; choose one of {', '.join(ATTACKS)}")
    return ATTACKS[name](**overrides)
