"""``check_attack``: does a registered attack keep the contract that ``robustnas evaluate`` relies on?

    from robustnas.testing import check_attack
    check_attack("pgd20")            # a registered name, or an AttackSpec
    for name in attack_names(): check_attack(name)

It checks the declaration (the name usable as a suite item, ``uses_gradients`` and ``seeded``
bools, one help line, settings plain JSON and complete), then runs the attack twice on a tiny
random CNN and 2 random 16x16 images (8/255 breaks both at once, so even AutoAttack takes about a
second): x_adv like x and in [0,1]; x, the model (weights, buffers, train/eval modes,
``requires_grad``, ``.grad``) and torch's global RNG as they were; a gradient back-propagated to
the input exactly when ``uses_gradients`` says so; the same x_adv for the same seed. A failure is
an AssertionError naming the attack and the broken rule.
"""
from __future__ import annotations

import json
from dataclasses import asdict, is_dataclass

import torch
from torch import nn

from robustnas.attacks import AttackSpec, frozen_eval, get_attack
from robustnas.evaluation import CLEAN, CORRUPTIONS_ITEM, SANITY
from robustnas.testing._model import changed_parts, model_state

RESERVED_ITEMS = (CLEAN, CORRUPTIONS_ITEM, SANITY)  # evaluate's own suite items
RESERVED_SETTINGS = ("attack", "seed", "batch_size")  # keys evaluate's record adds to the settings
IMAGES, SIZE, CLASSES = 2, 16, 10


def check_attack(attack: str | AttackSpec, *, seed: int = 0) -> None:
    """Raise AssertionError unless ``attack`` (a registered name or a spec) keeps the attack contract."""
    spec = get_attack(attack) if isinstance(attack, str) else attack
    assert isinstance(spec, AttackSpec), f"expected a registered name or an AttackSpec, got {type(spec).__name__}"
    _check_declaration(spec)
    _check_settings(spec, seed)
    x_adv = _check_run(spec, seed)
    again = _check_run(spec, seed)
    assert torch.equal(x_adv, again), f"{spec.name}: two runs with seed {seed} gave different x_adv (not deterministic)"


def _check_declaration(spec: AttackSpec) -> None:
    name = spec.name
    assert isinstance(name, str) and name and name == "".join(name.split()) and "," not in name, (
        f"attack name {name!r} must be a non-empty string without commas or whitespace (a --suite item)"
    )
    assert name not in RESERVED_ITEMS, f"attack name {name!r} is one of evaluate's own items {RESERVED_ITEMS}"
    for flag in ("uses_gradients", "seeded"):
        value = getattr(spec, flag)
        assert isinstance(value, bool), f"{name}: {flag} must be True or False, got {value!r}"
    assert isinstance(spec.help, str) and spec.help.strip() and "\n" not in spec.help, (
        f"{name}: help must be one non-empty line, got {spec.help!r}"
    )


def _check_settings(spec: AttackSpec, seed: int) -> None:
    """Settings are plain JSON that evaluate can store, and complete: they are all the attack holds."""
    name, settings = spec.name, spec.settings
    assert isinstance(settings, dict) and all(isinstance(key, str) for key in settings), (
        f"{name}: settings must be a dict with string keys, got {settings!r}"
    )
    clash = [key for key in RESERVED_SETTINGS if key in settings]
    assert not clash, f"{name}: settings must not hold {clash} (evaluate adds them to what it stores)"
    try:
        plain = json.loads(json.dumps(spec.record(seed)))
    except (TypeError, ValueError) as error:
        raise AssertionError(f"{name}: settings must be JSON values: {error}") from None
    assert plain == spec.record(seed), f"{name}: settings change in a JSON round trip (lists, not tuples): {settings}"
    built = spec.make(seed)
    if is_dataclass(built):
        held = asdict(built)
        assert held == spec.arguments(seed), (
            f"{name}: the attack holds {held} but the declared settings (and seed) are {spec.arguments(seed)}; "
            "declare every field, defaults included, so that evaluate stores what its values depend on"
        )


def _check_run(spec: AttackSpec, seed: int) -> torch.Tensor:
    """One run of a fresh attack on the tiny problem; returns x_adv after checking its side effects."""
    name = spec.name
    model, x, y = _tiny_problem()
    probe = _GradientProbe(model)
    x_before, state = x.clone(), model_state(model)
    rng = torch.get_rng_state()
    x_adv = spec.make(seed)(probe, x, y)
    assert isinstance(x_adv, torch.Tensor), f"{name}: returned {type(x_adv).__name__}, not a tensor"
    assert (x_adv.shape, x_adv.dtype, x_adv.device) == (x.shape, x.dtype, x.device), (
        f"{name}: x_adv is {x_adv.dtype} {list(x_adv.shape)} on {x_adv.device}, x is {x.dtype} {list(x.shape)}"
    )
    assert x_adv.min() >= 0 and x_adv.max() <= 1, f"{name}: x_adv leaves [0,1] pixels"
    assert torch.equal(x, x_before), f"{name}: changed x in place"
    changed = changed_parts(model, state)
    assert not changed, f"{name}: changed the model's {changed[0]}"
    assert torch.equal(torch.get_rng_state(), rng), (
        f"{name}: changed torch's global RNG; draw from a torch.Generator seeded with the attack's seed"
    )
    assert probe.backward_seen == spec.uses_gradients, (
        f"{name}: declares uses_gradients={spec.uses_gradients} but "
        f"{'back-propagated' if probe.backward_seen else 'never back-propagated'} through the model"
    )
    return x_adv.detach()


def _tiny_problem() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """A CNN with BN and dropout in train mode (one BN in eval mode, one frozen weight, one weight with
    a .grad), and images labelled with its own eval-mode predictions, so every image can be attacked."""
    generator = torch.Generator().manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Dropout(0.5),
        nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(), nn.Linear(8 * SIZE**2, CLASSES),
    )
    with torch.no_grad():
        for param in model.parameters():
            param.copy_(torch.randn(param.shape, generator=generator) * 0.5)
    x = torch.rand(IMAGES, 3, SIZE, SIZE, generator=generator)
    with frozen_eval(model), torch.no_grad():
        y = model(x).argmax(1)
    model.train()
    model[5].eval()
    model[0].weight.grad = torch.ones_like(model[0].weight)
    model[4].weight.requires_grad_(False)
    return model, x, y


class _GradientProbe(nn.Module):
    """The model, noting whether a gradient flowed back to its input."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.backward_seen = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.requires_grad:
            x.register_hook(self._seen)
        return self.model(x)

    def _seen(self, grad: torch.Tensor) -> None:
        self.backward_seen = True
