"""What a proxy or an attack must leave as it was: a model's state, compared exactly."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn


def model_state(model: nn.Module) -> dict[str, Any]:
    """Copies of the weights and buffers, the train/eval modes, requires_grad and .grad of ``model``."""
    return {
        "weights and buffers": {key: value.clone() for key, value in model.state_dict().items()},
        "train/eval modes": [module.training for module in model.modules()],
        "requires_grad": [param.requires_grad for param in model.parameters()],
        ".grad": [None if param.grad is None else param.grad.clone() for param in model.parameters()],
    }


def changed_parts(model: nn.Module, before: dict[str, Any]) -> list[str]:
    """The parts of :func:`model_state` that differ now from ``before``."""
    after = model_state(model)
    return [part for part, value in before.items() if not _equal(after[part], value)]


def _equal(a: Any, b: Any) -> bool:
    """Equality of nested dicts/lists of tensors, bools and None."""
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        return torch.equal(a, b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_equal(a[key], b[key]) for key in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_equal(u, v) for u, v in zip(a, b))
    return a == b
