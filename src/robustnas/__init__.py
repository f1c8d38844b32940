"""robustnas: find neural network architectures that are both accurate and robust.

What a user calls, from the top (each loads its module on first use, so ``import robustnas`` and the
command line stay fast):

    import robustnas
    net = robustnas.build("darts", "DARTS_V2", "cifar10")        # a space's evaluation network
    values = robustnas.score(net, x, y, proxies="croze,synflow")  # zero-cost proxies
    attack = robustnas.make_attack("pgd20")                       # a registered attack
    result = robustnas.evaluate(model, images, labels, "clean,fgsm,pgd20")
    strategy = robustnas.make_strategy("evolution", robustnas.get_space("nb201"), seed=0)

The subpackages hold the rest (``robustnas.spaces``, ``proxies``, ``attacks``, ``search``,
``train``, ``predict``, ``testing``), each with its ``__all__``.
"""
from __future__ import annotations

import importlib
from typing import Any

from robustnas.errors import ArchError, RobustnasError

__version__ = "0.1.0"

_LAZY = {
    "build": ("robustnas.spaces", "build"),
    "get_space": ("robustnas.spaces", "get"),
    "score": ("robustnas.proxies", "score"),
    "make_attack": ("robustnas.attacks", "make_attack"),
    "evaluate": ("robustnas.evaluation", "evaluate"),
    "make_strategy": ("robustnas.search._base", "make_strategy"),
    "Predictor": ("robustnas.predict", "Predictor"),
}

__all__ = ["ArchError", "RobustnasError", "__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module, attribute = _LAZY[name]
        return getattr(importlib.import_module(module), attribute)
    raise AttributeError(f"module 'robustnas' has no attribute {name!r}")
