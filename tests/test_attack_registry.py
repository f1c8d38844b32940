"""The attack registry: every registered attack keeps the contract (``robustnas.testing.check_attack``),
the check catches each way of breaking it, and a new attack, one class plus one ``register_attack``
call, runs in evaluate and shows in ``robustnas evaluate --help`` with no change to either.
"""
from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest
import torch
from torch import nn

from robustnas.attacks import (
    PGD,
    AttackSpec,
    attack_names,
    get_attack,
    list_attacks,
    register_attack,
)
from robustnas.attacks import _registry as registry
from robustnas.cli import main
from robustnas.errors import RobustnasError
from robustnas.evaluation import evaluate, plan
from robustnas.testing import check_attack

pytestmark = pytest.mark.usefixtures("one_thread")


@dataclasses.dataclass(frozen=True)
class TowardsGrey:
    """A toy attack: every pixel moves ``eps`` towards mid-grey."""

    eps: float

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return (x + self.eps * torch.sign(0.5 - x)).clamp(0, 1)


@pytest.fixture
def toy(monkeypatch) -> AttackSpec:
    """TowardsGrey registered as "grey" for one test; the registry is as before afterwards."""
    monkeypatch.setattr(registry, "REGISTRY", dict(registry.REGISTRY))
    return register_attack("grey", TowardsGrey, settings={"eps": 32 / 255}, uses_gradients=False, seeded=False,
                           help="every pixel 32/255 closer to mid-grey")


@pytest.mark.parametrize("name", attack_names())
def test_every_registered_attack_keeps_the_contract(name):
    check_attack(name)


def test_registry_lists_every_attack_with_its_help(toy):
    assert list(list_attacks()) == list(attack_names()) and attack_names()[-1] == "grey"
    assert list_attacks()["grey"] == "every pixel 32/255 closer to mid-grey" and get_attack("grey") is toy
    assert not get_attack("square").uses_gradients and get_attack("fab-t").uses_gradients
    assert not get_attack("fgsm").seeded and get_attack("pgd20").seeded
    with pytest.raises(RobustnasError, match="unknown attack 'cw'; choose one of fgsm, pgd7, "):
        get_attack("cw")
    with pytest.raises(RuntimeError, match="registered twice"):
        register_attack("grey", TowardsGrey, settings={}, uses_gradients=False, seeded=False, help="again")


def test_a_new_attack_runs_in_evaluate_and_the_cli_help(toy, capsys):
    check_attack("grey")
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 10)).eval()
    images = np.random.default_rng(0).integers(0, 256, (6, 8, 8, 3), dtype=np.uint8)
    x = torch.from_numpy(images.transpose(0, 3, 1, 2).astype(np.float32) / np.float32(255))
    with torch.no_grad():
        labels = model(x).argmax(1).numpy()
        expected = float((model(TowardsGrey(32 / 255)(model, x, None)).argmax(1).numpy() == labels).mean())
    result = evaluate(model, images, labels, "clean,grey", batch_size=4, progress=False)
    assert result["clean"] == 1.0 and result["grey"] == expected < 1.0
    assert result["settings"] == {"grey": {"attack": "TowardsGrey", "eps": 32 / 255, "batch_size": 4}}
    assert result["sanity"] is None and plan(["grey"]) == ["grey"]  # gradient-free: no masking checks
    with pytest.raises(SystemExit):
        main(["evaluate", "--help"])
    assert "grey every pixel 32/255 closer to mid-grey" in " ".join(capsys.readouterr().out.split())


_calls = itertools.count()


class LeavesEvalMode(TowardsGrey):
    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        model.eval()
        return super().__call__(model, x, y)


class DrawsFromTorch(TowardsGrey):
    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return (x + self.eps * torch.rand_like(x)).clamp(0, 1)


class ChangesX(TowardsGrey):
    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return x.clamp_(0.1, 0.9)


class DriftsPerCall(TowardsGrey):
    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return (x + self.eps * (next(_calls) % 2)).clamp(0, 1)


GOOD = AttackSpec("grey", TowardsGrey, {"eps": 4 / 255}, uses_gradients=False, seeded=False, help="towards grey")


@pytest.mark.parametrize("spec, message", [
    (dataclasses.replace(GOOD, name="grey,pgd20"), "without commas"),
    (dataclasses.replace(GOOD, name="clean"), "evaluate's own items"),
    (dataclasses.replace(GOOD, help="towards\ngrey"), "one non-empty line"),
    (dataclasses.replace(GOOD, seeded=1), "seeded must be True or False"),
    (dataclasses.replace(GOOD, settings={"eps": 4 / 255, "seed": 0}), r"must not hold \['seed'\]"),
    (dataclasses.replace(GOOD, settings={"eps": (4 / 255,)}), "lists, not tuples"),
    (AttackSpec("pgd2", PGD, {"eps": 8 / 255, "step": 2 / 255, "steps": 2}, True, True, "PGD-2"), "declare every field"),
    (dataclasses.replace(GOOD, uses_gradients=True), "uses_gradients=True but never back-propagated"),
    (AttackSpec("fgsm-ish", get_attack("fgsm").factory, {"eps": 8 / 255}, False, False, "FGSM"),
     "uses_gradients=False but back-propagated"),
    (dataclasses.replace(GOOD, factory=LeavesEvalMode), "changed the model's train/eval modes"),
    (dataclasses.replace(GOOD, factory=DrawsFromTorch), "changed torch's global RNG"),
    (dataclasses.replace(GOOD, factory=ChangesX), "changed x in place"),
    (dataclasses.replace(GOOD, factory=DriftsPerCall), "not deterministic"),
])
def test_check_attack_names_the_broken_rule(spec, message):
    with pytest.raises(AssertionError, match=message):
        check_attack(spec)
