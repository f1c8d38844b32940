"""The attack registry: each attack is a factory plus one ``register_attack`` call declaring its contract.

    from robustnas.attacks import register_attack

    @dataclass(frozen=True)
    class Nudge:                                  # attack(model, x, y) -> x_adv, see ``Attack``
        eps: float
        def __call__(self, model, x, y):
            return (x + self.eps).clamp(0, 1)

    register_attack("nudge", Nudge, settings={"eps": 2 / 255}, uses_gradients=False, seeded=False,
                    help="every pixel brighter by 2/255")

From then on ``robustnas.evaluate`` takes "nudge" as a suite item: it builds the attack, stores
its settings with every value and adds the gradient-masking checks only to suites with an attack
that uses gradients. The command line takes and lists the attacks registered when it runs: those
of presets.py, those of installed plug-ins (``robustnas.plugins``) and any registered before
calling ``robustnas.cli.main``.
``robustnas.testing.check_attack("nudge")`` checks that an attack keeps the contract.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from robustnas.attacks._gradient import Attack
from robustnas._registry import lookup


@dataclass(frozen=True)
class AttackSpec:
    """A registered attack: how to build it and what evaluate needs to know about it.

    ``factory(**settings, seed=SEED)`` is the attack (without ``seed`` unless ``seeded``): a
    callable ``attack(model, x, y) -> x_adv`` (see ``Attack``) that leaves the model as it was
    and returns the same x_adv for the same seed. ``settings`` are complete, defaults included,
    and plain JSON values: evaluate stores them with every value and recomputes a value only when
    they change. ``uses_gradients``: the attack back-propagates through the model, so evaluate
    adds the gradient-masking checks. ``help``: one line for ``robustnas evaluate --help``.
    """

    name: str
    factory: Callable[..., Attack]
    settings: dict[str, Any]
    uses_gradients: bool
    seeded: bool
    help: str

    def arguments(self, seed: int) -> dict[str, Any]:
        """The factory's keyword arguments: the settings, and ``seed`` where the attack takes one."""
        return {**self.settings, **({"seed": seed} if self.seeded else {})}

    def make(self, seed: int = 0, **overrides: Any) -> Attack:
        """The attack seeded with ``seed`` (ignored unless ``seeded``); ``overrides`` replace settings."""
        return self.factory(**{**self.arguments(seed), **overrides})

    def record(self, seed: int) -> dict[str, Any]:
        """What evaluate stores for the attack: the factory's name, the settings and the seed (if seeded)."""
        return {"attack": self.factory.__name__, **self.arguments(seed)}


REGISTRY: dict[str, AttackSpec] = {}


def register_attack(
    name: str,
    factory: Callable[..., Attack],
    *,
    settings: dict[str, Any],
    uses_gradients: bool,
    seeded: bool,
    help: str,
) -> AttackSpec:
    """Add an attack under ``name`` (see :class:`AttackSpec` for the fields); returns its spec."""
    if name in REGISTRY:
        raise RuntimeError(f"attack {name!r} registered twice")
    spec = AttackSpec(name, factory, dict(settings), uses_gradients, seeded, help)
    REGISTRY[name] = spec
    return spec


def get_attack(name: str) -> AttackSpec:
    """The spec registered under ``name``; an unknown name is a one-line error listing the known ones."""
    return lookup(REGISTRY, name, "attack")


def attack_names() -> tuple[str, ...]:
    """Every registered attack, in registration order."""
    return tuple(REGISTRY)


def list_attacks() -> dict[str, str]:
    """Every registered attack with its one-line help, in registration order."""
    return {name: spec.help for name, spec in REGISTRY.items()}


def make_attack(name: str, **overrides: Any) -> Attack:
    """The attack registered as ``name`` with keyword ``overrides`` (e.g. seed=1, eps=4/255)."""
    return get_attack(name).make(**overrides)
