"""Adversarial attacks in [0,1] pixel space, robust accuracy and gradient-masking checks.

    from robustnas.attacks import PGD, list_attacks, make_attack, robust_accuracy, sanity_checks
    model = NormalizedModel.for_dataset(net, "cifar10")       # takes [0,1] pixels
    x_adv = PGD(8/255, 2/255, 20)(model, x, y)                # any attack: attack(model, x, y)
    acc = robust_accuracy(model, (x, y), make_attack("autoattack"), batch_size=256)
    report = sanity_checks(model, x, y)                       # {"check": {"passed": ..., numbers}}
    list_attacks()                                            # {"fgsm": "FGSM, L-inf 8/255: ...", ...}

FGSM and PGD are in-house (gradient.py); APGD-CE, APGD-T, FAB-T, Square and the standard
AutoAttack come from pyautoattack, the official code (autoattack.py). Attacks run the model in
eval mode with frozen parameters and leave modes, ``requires_grad`` and ``.grad`` as they were.
The named attacks are registered in presets.py; a new one is a factory and one
``register_attack`` call (registry.py), checked by ``robustnas.testing.check_attack``.
"""
from __future__ import annotations

from robustnas.attacks._autoattack import AUTOATTACK_NAMES, AutoAttackAdapter
from robustnas.attacks._checks import accuracy, robust_accuracy, sanity_checks
from robustnas.attacks._gradient import FGSM, NORMS, PGD, Attack, frozen_eval, input_gradient
from robustnas.attacks._presets import EPS, STEP
from robustnas.attacks._registry import (
    AttackSpec,
    attack_names,
    get_attack,
    list_attacks,
    make_attack,
    register_attack,
)

__all__ = [
    "AUTOATTACK_NAMES",
    "Attack",
    "AttackSpec",
    "AutoAttackAdapter",
    "EPS",
    "FGSM",
    "NORMS",
    "PGD",
    "STEP",
    "accuracy",
    "attack_names",
    "frozen_eval",
    "get_attack",
    "input_gradient",
    "list_attacks",
    "make_attack",
    "register_attack",
    "robust_accuracy",
    "sanity_checks",
]
