"""The registered attacks, with the settings of the specs (crose-and-arnas.md); ``make_attack("pgd20", seed=1)``.

All L-inf with eps 8/255, the CIFAR convention since Madry et al. 2018 and the one of every
protocol in the specs (pgd20-croze: 0.031, as CRoZe's code writes it). FGSM: Goodfellow et al.,
ICLR 2015; PGD: Madry et al., ICLR 2018. APGD-CE, APGD-T and the standard AutoAttack: Croce &
Hein, "Reliable evaluation of adversarial robustness with an ensemble of diverse parameter-free
attacks", ICML 2020; FAB-T: Croce & Hein, "Minimally distorted adversarial examples with a fast
adaptive boundary attack", ICML 2020; Square: Andriushchenko et al., ECCV 2020. These five run
through pyautoattack with the settings of AutoAttack's standard version (100 iterations, 9
target classes, 5000 queries; the "standard" L-inf 8/255 of CRoZe §A.8 and ARNAS §B.6).
"""
from __future__ import annotations

from typing import Any

from robustnas.attacks._autoattack import AutoAttackAdapter
from robustnas.attacks._gradient import FGSM, PGD
from robustnas.attacks._registry import register_attack

EPS = 8 / 255
STEP = 2 / 255


def _pgd(steps: int, *, eps: float = EPS, step: float = STEP, start: str = "uniform") -> dict[str, Any]:
    """PGD's settings, complete: L-inf, one restart."""
    return {"eps": eps, "step": step, "steps": steps, "norm": "linf", "start": start, "restarts": 1}


def _autoattack(name: str) -> dict[str, Any]:
    """An AutoAttack attack's settings, complete: L-inf 8/255."""
    return {"name": name, "eps": EPS, "norm": "linf"}


register_attack("fgsm", FGSM, settings={"eps": EPS}, uses_gradients=True, seeded=False,
                help="FGSM, L-inf 8/255: one step, no random start (ARNAS eval, §B.6)")
register_attack("pgd7", PGD, settings=_pgd(7), uses_gradients=True, seeded=True,
                help="PGD, L-inf 8/255: 7 steps of 2/255, uniform random start (CRoZe adversarial training, §A.8)")
register_attack("pgd10", PGD, settings=_pgd(10), uses_gradients=True, seeded=True,
                help="PGD, L-inf 8/255: 10 steps of 2/255, uniform random start (Rice et al. 2020 evaluation, Part C)")
register_attack("pgd20", PGD, settings=_pgd(20), uses_gradients=True, seeded=True,
                help="PGD, L-inf 8/255: 20 steps of 2/255, uniform random start (ARNAS eval, §B.6)")
register_attack("pgd100", PGD, settings=_pgd(100), uses_gradients=True, seeded=True,
                help="PGD, L-inf 8/255: 100 steps of 2/255, uniform random start (ARNAS eval, §B.6)")
register_attack("pgd20-croze", PGD, settings=_pgd(20, eps=0.031, step=0.003, start="gaussian"),
                uses_gradients=True, seeded=True,
                help="CRoZe's evaluation PGD, L-inf 0.031: 20 steps of 0.003, start x + 0.001 N(0,1) (§A.8)")
register_attack("pgd7-arnas", PGD, settings=_pgd(7, step=0.01, start="gaussian"), uses_gradients=True, seeded=True,
                help="ARNAS' training PGD, L-inf 8/255: 7 steps of 0.01, start x + 0.001 N(0,1) (§B.5)")
register_attack("apgd-ce", AutoAttackAdapter, settings=_autoattack("apgd-ce"), uses_gradients=True, seeded=True,
                help="APGD on cross-entropy, L-inf 8/255, 100 iterations (AutoAttack standard)")
register_attack("apgd-t", AutoAttackAdapter, settings=_autoattack("apgd-t"), uses_gradients=True, seeded=True,
                help="APGD on the targeted DLR loss, L-inf 8/255, 9 target classes (AutoAttack standard)")
register_attack("fab-t", AutoAttackAdapter, settings=_autoattack("fab-t"), uses_gradients=True, seeded=True,
                help="targeted FAB, L-inf 8/255, 9 target classes (AutoAttack standard)")
register_attack("square", AutoAttackAdapter, settings=_autoattack("square"), uses_gradients=False, seeded=True,
                help="Square, score-based (no gradients), L-inf 8/255, 5000 queries (AutoAttack standard)")
register_attack("autoattack", AutoAttackAdapter, settings=_autoattack("standard"), uses_gradients=True, seeded=True,
                help="the standard AutoAttack, L-inf 8/255: APGD-CE, APGD-T, FAB-T and Square, each on the points "
                "still robust")
