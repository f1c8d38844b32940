"""Conformance checks every registered zero-cost proxy must pass (``check_proxy``).

    from robustnas.testing import check_proxy
    check_proxy("croze")                  # raises AssertionError naming the broken promise

A proxy declares its contract when it registers (``robustnas.proxies.register``); the checks run
it on a tiny NB201 network and an 8-image batch and hold it to what scoring relies on: a plain
float (NaN only with a reason), the same value for the same seed, the same value fused with the
other proxies as alone, the model and the global random state left as they were, and bad input
refused with a one-line ``RobustnasError``.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from robustnas.errors import RobustnasError
from robustnas.proxies import REGISTRY, score
from robustnas.testing._model import changed_parts, model_state

BATCH = 8
CLASSES = 10
COMPANIONS = ("grad_norm", "fisher", "nwot", "jacov")  # cheap proxies sharing the forward, backward, Jacobian


def tiny_network() -> nn.Module:
    """A seeded NB201 network with every op kind (C=4, one cell per stage): fast for every proxy."""
    from robustnas import spaces

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return spaces.build("nb201", "|nor_conv_3x3~0|+|avg_pool_3x3~0|nor_conv_1x1~1|+|skip_connect~0|none~1|nor_conv_3x3~2|",
                            channels=4, cells_per_stage=1)  # fmt: skip


def tiny_batch() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return torch.randn(BATCH, 3, 16, 16, generator=generator), torch.arange(BATCH) % CLASSES


def check_proxy(name: str, model: nn.Module | None = None) -> None:
    """Run every check on the registered proxy ``name`` (on ``model`` instead of the tiny network)."""
    assert name in REGISTRY, f"{name!r} is not a registered proxy"
    check_declaration(name)
    model = tiny_network() if model is None else model
    x, y = tiny_batch()
    first = _checked_run(name, model, x, y)
    second = _checked_run(name, model, x, y)
    assert _same(first, second), f"{name}: {first} then {second} for the same network, batch and seed"
    fused = score(model, x, y, proxies=[*COMPANIONS, name], seed=0)[name]
    assert _same(first, fused), f"{name}: {first} alone but {fused} fused with the other proxies"
    check_bad_input(name, model, x, y)


def check_declaration(name: str) -> None:
    """The registration states the contract: flags are bools, cost and summary are one line."""
    spec = REGISTRY[name]
    for flag in ("needs_data", "needs_labels", "higher_is_better"):
        assert isinstance(getattr(spec, flag), bool), f"{name}: {flag} must be a bool"
    assert isinstance(spec.passes, (int, float)) and math.isfinite(spec.passes) and spec.passes > 0, (
        f"{name}: passes (its time in forward+backward passes) must be a positive number"
    )
    for text in ("summary", "cost"):
        value = getattr(spec, text)
        assert isinstance(value, str) and value and "\n" not in value, f"{name}: {text} must be one line of text"


def _checked_run(name: str, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """The proxy's value, checking it is a float with a reason when NaN and that nothing changed."""
    before = model_state(model)
    rng = torch.get_rng_state()
    values = score(model, x, y, proxies=[name], seed=0)
    value = values[name]
    assert isinstance(value, float), f"{name}: returned {type(value).__name__}, not a float"
    assert not math.isinf(value), f"{name}: returned {value}; an undefined value is NaN with a reason"
    assert not math.isnan(value) or values.reasons.get(name), f"{name}: NaN without a reason"
    assert torch.equal(torch.get_rng_state(), rng), f"{name}: changed the global torch random state"
    changed = changed_parts(model, before)
    assert not changed, f"{name}: changed the model's {changed[0]} (work on a copy)"
    return value


def check_bad_input(name: str, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
    """One label per image, or a one-line RobustnasError (for proxies that read labels)."""
    if not REGISTRY[name].needs_labels:
        return
    try:
        score(model, x, y[:3], proxies=[name])
    except RobustnasError as error:
        assert "\n" not in str(error), f"{name}: the error for mismatched labels spans several lines"
        return
    except Exception as error:  # noqa: BLE001 - any other type is the failure reported
        raise AssertionError(f"{name}: mismatched labels raised {type(error).__name__}, not RobustnasError") from None
    raise AssertionError(f"{name}: 8 images with 3 labels raised no error")


def _same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))
