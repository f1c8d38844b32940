"""Adversarial attacks in [0,1] pixel space, robust accuracy and gradient-masking checks.

    from robustnas.attacks import PGD, make_attack, robust_accuracy, sanity_checks
    model = NormalizedModel.for_dataset(net, "cifar10")       # takes [0,1] pixels
    x_adv = PGD(8/255, 2/255, 20)(model, x, y)                # any attack: attack(model, x, y)
    acc = robust_accuracy(model, (x, y), make_attack("autoattack"), batch_size=256)
    report = sanity_checks(model, x, y)                       # {"check": {"passed": ..., numbers}}

FGSM and PGD are in-house (gradient.py); APGD-CE, APGD-T, FAB-T, Square and the standard
AutoAttack come from pyautoattack, the official code (autoattack.py). Attacks run the model in
eval mode with frozen parameters and leave modes, ``requires_grad`` and ``.grad`` as they were.
"""
from __future__ import annotations

from robustnas.attacks.autoattack import AUTOATTACK_NAMES, AutoAttackAdapter
from robustnas.attacks.checks import accuracy, robust_accuracy, sanity_checks
from robustnas.attacks.gradient import FGSM, NORMS, PGD, Attack, frozen_eval, input_gradient
from robustnas.attacks.presets import ATTACKS, EPS, STEP, make_attack

__all__ = [
    "ATTACKS",
    "AUTOATTACK_NAMES",
    "Attack",
    "AutoAttackAdapter",
    "EPS",
    "FGSM",
    "NORMS",
    "PGD",
    "STEP",
    "accuracy",
    "frozen_eval",
    "input_gradient",
    "make_attack",
    "robust_accuracy",
    "sanity_checks",
]
