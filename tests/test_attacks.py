"""robustnas.attacks: FGSM/PGD against closed forms and foolbox, the AutoAttack adapter against
pyautoattack called directly, side effects (modes, .grad, RNG) and the gradient-masking checks.

Trained checks use a tiny BN CNN fitted for ~2 s on the embedded CIFAR-10 sample (2000 train
images) and evaluated on its test split (1017 images).
"""
from __future__ import annotations

import time

import pytest
import torch
import torch.nn.functional as F
from pyautoattack import AutoAttack
from torch import nn

from robustnas.attacks import (
    FGSM,
    PGD,
    AutoAttackAdapter,
    accuracy,
    attack_names,
    frozen_eval,
    make_attack,
    robust_accuracy,
    sanity_checks,
)
from robustnas.data import NormalizedModel, iterate_batches, load_dataset, sample_batch
from robustnas.errors import RobustnasError

EPS, STEP = 8 / 255, 2 / 255


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_cnn(classes: int = 10, width: int = 16) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, width, 3, stride=2, padding=1),
        nn.BatchNorm2d(width),
        nn.ReLU(),
        nn.Conv2d(width, 2 * width, 3, stride=2, padding=1),
        nn.BatchNorm2d(2 * width),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(2 * width, classes),
    )


@pytest.fixture(scope="module")
def trained() -> nn.Module:
    """Tiny CNN, 4 epochs of Adam on the embedded CIFAR-10 train sample (eval mode afterwards)."""
    torch.manual_seed(0)
    model = NormalizedModel.for_dataset(tiny_cnn(), "cifar10")
    optimiser = torch.optim.Adam(model.parameters(), 3e-3)
    train = load_dataset()
    for epoch in range(4):
        for x, y in iterate_batches(train, 64, seed=epoch, drop_last=True):
            optimiser.zero_grad()
            F.cross_entropy(model(x), y).backward()
            optimiser.step()
    return model.eval()


@pytest.fixture(scope="module")
def test_set() -> tuple[torch.Tensor, torch.Tensor]:
    images = load_dataset(split="test")
    return sample_batch(images, len(images), seed=0)


class Quantised(nn.Module):
    """Gradient masking: rounds pixels to the 1/255 grid first, so every input gradient is zero.
    Clean CIFAR pixels already lie on that grid, so clean predictions are the wrapped model's."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(torch.round(x * 255) / 255)


def random_cnn(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(32, 10)
    ).eval()


def tiny_batch(model: nn.Module, n: int = 16, size: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """Random [0,1] images labelled with the model's own predictions, the first two relabelled wrong."""
    x = torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        y = model(x).argmax(1)
    y[:2] = (y[:2] + 1) % 10
    return x, y


def per_sample_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return F.cross_entropy(model(x), y, reduction="none")


def wrong(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(x).argmax(1) != y


# ---- FGSM / PGD: closed forms and geometry ---------------------------------------------------
def test_fgsm_matches_closed_form_on_linear_model():
    """Linear softmax model z = Wx + b: grad_x CE = W^T (p - onehot(y)), so FGSM is a formula."""
    torch.manual_seed(3)
    model = nn.Sequential(nn.Flatten(), nn.Linear(48, 5)).double()
    x = torch.rand(32, 3, 4, 4, dtype=torch.float64)
    y = torch.randint(0, 5, (32,))
    weight, bias = model[1].weight.detach(), model[1].bias.detach()
    probs = torch.log_softmax(x.flatten(1) @ weight.T + bias, dim=1).exp()
    grad = ((probs - F.one_hot(y, 5)) @ weight).view_as(x)
    expected = (x + 0.1 * grad.sign()).clamp(0, 1)
    x_adv = FGSM(0.1)(model, x, y)
    assert torch.equal(x_adv, expected)
    assert (expected == 0).any() and (expected == 1).any()  # the clip to [0,1] is exercised
    inside = (expected > 0) & (expected < 1)
    assert torch.allclose((x_adv - x).abs()[inside], torch.full_like(x[inside], 0.1))


def test_pgd_one_step_of_eps_without_random_start_is_fgsm(trained, test_set):
    x, y = test_set[0][:64], test_set[1][:64]
    assert torch.equal(PGD(EPS, EPS, 1, start="none")(trained, x, y), FGSM(EPS)(trained, x, y))


def test_pgd_linf_stays_in_ball_and_pixel_range(trained, test_set):
    x, y = test_set[0][:64], test_set[1][:64]
    x_adv = PGD(EPS, STEP, 5)(trained, x, y)
    distance = (x_adv - x).abs().amax(dim=(1, 2, 3))
    assert distance.max() <= EPS + 1e-6
    assert distance.min() >= EPS - 1e-6  # every sample uses the budget somewhere
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert wrong(trained, x_adv, y).sum() > wrong(trained, x, y).sum()


def test_pgd_l2_stays_in_ball_and_pixel_range(trained, test_set):
    x, y = test_set[0][:64], test_set[1][:64]
    x_adv = PGD(0.5, 0.1, 10, norm="l2")(trained, x, y)
    norms = (x_adv - x).flatten(1).norm(dim=1)
    assert norms.max() <= 0.5 + 1e-5
    assert norms.median() > 0.45  # the steps reach the sphere, clipping trims only a little
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert wrong(trained, x_adv, y).sum() > wrong(trained, x, y).sum()


def test_restarts_never_worse_than_the_first_run(trained, test_set):
    """Per sample: broken by one run => broken (by the same point) with restarts; else loss >=."""
    x, y = test_set[0][:256], test_set[1][:256]
    single = PGD(4 / 255, 0.5 / 255, 1, restarts=1, seed=5)(trained, x, y)
    several = PGD(4 / 255, 0.5 / 255, 1, restarts=5, seed=5)(trained, x, y)
    broken_single, broken_several = wrong(trained, single, y), wrong(trained, several, y)
    assert not (broken_single & ~broken_several).any()
    assert torch.equal(several[broken_single], single[broken_single])
    robust = ~broken_several
    assert (per_sample_loss(trained, several, y)[robust] >= per_sample_loss(trained, single, y)[robust]).all()
    assert broken_several.sum() > broken_single.sum()  # here the extra restarts break more (193 vs 191)


@pytest.mark.parametrize("norm, eps", [("linf", EPS), ("l2", 0.5)])
def test_pgd_is_deterministic_per_seed(trained, test_set, norm, eps):
    x, y = test_set[0][:32], test_set[1][:32]
    attack = PGD(eps, eps / 4, 3, norm=norm, restarts=2, seed=0)
    assert torch.equal(attack(trained, x, y), attack(trained, x, y))
    assert not torch.equal(attack(trained, x, y), PGD(eps, eps / 4, 3, norm=norm, restarts=2, seed=1)(trained, x, y))


# ---- side effects ----------------------------------------------------------------------------
def test_attacks_restore_modes_grads_and_rng():
    torch.manual_seed(0)
    model = nn.Sequential(tiny_cnn(), nn.Dropout(0.5))
    model.train()
    model[0][1].eval()  # mixed modes must come back exactly
    params = list(model.parameters())
    params[0].grad = torch.ones_like(params[0])
    params[1].requires_grad_(False)
    x = torch.rand(8, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    with frozen_eval(model), torch.no_grad():
        y = model(x).argmax(1)  # all correct, so AutoAttack attacks every point
    modes = [m.training for m in model.modules()]
    stats = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    attacks = (
        FGSM(EPS), PGD(EPS, STEP, 2, restarts=2), PGD(0.5, 0.1, 2, norm="l2"), AutoAttackAdapter("fab-t", eps=0.15)
    )
    for attack in attacks:
        attack(model, x, y)
        robust_accuracy(model, (x, y), attack, batch_size=4)
    assert [m.training for m in model.modules()] == modes
    assert torch.equal(params[0].grad, torch.ones_like(params[0]))
    assert all(p.grad is None for p in params[1:])
    assert [p.requires_grad for p in params] == [True, False] + [True] * (len(params) - 2)
    assert all(torch.equal(v, stats[k]) for k, v in model.state_dict().items())  # BN stats: eval mode
    assert torch.equal(torch.get_rng_state(), rng)  # own generator; pyautoattack's seeding is forked


def test_bad_inputs_raise():
    model = random_cnn()
    x, y = tiny_batch(model)
    with pytest.raises(RobustnasError, match="NormalizedModel"):
        PGD(EPS, STEP, 2)(model, x * 3 - 1, y)
    with pytest.raises(RobustnasError, match="norm"):
        PGD(EPS, STEP, 2, norm="l1")
    with pytest.raises(RobustnasError, match="unknown attack"):
        make_attack("cw")
    with pytest.raises(RobustnasError, match=">= 4 classes"):
        AutoAttackAdapter("apgd-t")(nn.Sequential(nn.Flatten(), nn.Linear(192, 3)), x, y % 3)


# ---- presets and robust accuracy -------------------------------------------------------------
def test_presets_carry_the_spec_settings():
    assert make_attack("fgsm") == FGSM(EPS)
    assert make_attack("pgd7") == PGD(EPS, STEP, 7, start="uniform")
    assert make_attack("pgd20") == PGD(EPS, STEP, 20, norm="linf", start="uniform", restarts=1)
    assert make_attack("pgd20-croze") == PGD(0.031, 0.003, 20, start="gaussian")
    assert make_attack("pgd7-arnas") == PGD(EPS, 0.01, 7, start="gaussian")
    assert make_attack("pgd100", seed=3) == PGD(EPS, STEP, 100, seed=3)
    assert make_attack("autoattack") == AutoAttackAdapter("standard", eps=EPS, norm="linf", seed=0)
    assert sorted(attack_names()) == sorted(
        ["fgsm", "pgd7", "pgd10", "pgd20", "pgd100", "pgd20-croze", "pgd7-arnas", "apgd-ce", "apgd-t", "fab-t", "square",
         "autoattack"]
    )


def test_robust_accuracy_tensors_and_loader_agree(trained, test_set):
    x, y = test_set[0][:100], test_set[1][:100]
    attack = FGSM(EPS)
    x_adv = torch.cat([attack(trained, xb, yb) for xb, yb in zip(x.split(30), y.split(30))])
    by_hand = int((~wrong(trained, x_adv, y)).sum())
    assert robust_accuracy(trained, (x, y), attack, batch_size=30) == by_hand / 100
    assert robust_accuracy(trained, list(zip(x.split(30), y.split(30))), attack) == by_hand / 100
    assert robust_accuracy(trained, (x, y), attack) < accuracy(trained, x, y)


# ---- AutoAttack adapter == pyautoattack ------------------------------------------------------
def test_autoattack_adapter_equals_pyautoattack_individual_attacks():
    """Same x_adv as fra31's run_standard_evaluation_individual (standard-version settings)."""
    model = random_cnn()
    x, y = tiny_batch(model)
    reference = AutoAttack(model, eps=0.15, norm="Linf", seed=0, version="standard").run_standard_evaluation_individual(
        x, y, batch_size=len(x)
    )
    results = {}
    for name in ("apgd-ce", "apgd-t", "fab-t", "square"):
        results[name] = AutoAttackAdapter(name, eps=0.15, norm="linf", seed=0)(model, x, y)
        assert torch.equal(results[name], reference[name][0]), name
        assert wrong(model, results[name], y)[2:].sum() == 14  # every clean-correct point broken
    assert not torch.equal(results["apgd-ce"], results["square"])


def test_autoattack_adapter_equals_pyautoattack_standard():
    model = random_cnn()
    x, y = tiny_batch(model)
    expected, _ = AutoAttack(model, eps=0.11, norm="Linf", seed=0, version="standard").run_standard_evaluation(
        x, y, batch_size=len(x)
    )
    x_adv = AutoAttackAdapter("standard", eps=0.11)(model, x, y)
    assert torch.equal(x_adv, expected)
    # APGD-CE alone leaves 3 of 16 correct; the ensemble's later attacks break them
    assert accuracy(model, AutoAttackAdapter("apgd-ce", eps=0.11)(model, x, y), y) == 3 / 16
    assert accuracy(model, x_adv, y) == 0.0


def test_autoattack_adapter_takes_channels_last_strides():
    """APGD-T used to crash on NHWC-strided input (pyautoattack .view()s a zeros_like(x))."""
    model = random_cnn()
    x, y = tiny_batch(model)
    strided = x.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)
    assert not strided.is_contiguous() and torch.equal(strided, x)
    for name in ("apgd-t", "standard"):
        attack = AutoAttackAdapter(name, eps=0.15)
        assert torch.equal(attack(model, strided, y), attack(model, x, y)), name


# ---- gradient-masking checks and the foolbox oracle ------------------------------------------
def test_sanity_checks_pass_a_normal_model_and_flag_a_masking_one(trained, test_set):
    x, y = test_set[0][:200], test_set[1][:200]
    normal = sanity_checks(trained, x, y)
    masked_model = Quantised(trained)
    masked = sanity_checks(masked_model, x, y)
    print("\nsanity checks, normal:", normal, "\nsanity checks, quantised input:", masked)
    assert all(check["passed"] for check in normal.values())
    assert normal["near_zero_at_huge_eps"]["accuracy"] == 0.0
    clean = accuracy(trained, x, y)
    assert masked["accuracy_falls_with_eps"]["accuracy"][0] == clean
    assert masked["pgd_not_above_fgsm"]["fgsm"] == clean  # zero gradient: FGSM does not move
    assert not masked["near_zero_at_huge_eps"]["passed"]  # PGD only adds noise and cannot reach ~0
    assert masked["near_zero_at_huge_eps"]["accuracy"] > 0.05
    assert normal["gradients_not_zero"]["zero_gradient_share"] == 0.0
    assert masked["gradients_not_zero"] == {"passed": False, "zero_gradient_share": 1.0,
                                            "samples": round(clean * 200)}


def test_pgd_agrees_with_foolbox(trained, test_set):
    """Our PGD vs foolbox LinfPGD, same eps/step/steps, no random start: within 0.5 points."""
    fb = pytest.importorskip("foolbox")
    x, y = test_set[0][:512], test_set[1][:512]
    fmodel = fb.PyTorchModel(trained.eval(), bounds=(0, 1))
    for eps, step, steps in ((EPS, STEP, 20), (1 / 255, 0.25 / 255, 10)):
        start = time.perf_counter()
        ours = robust_accuracy(trained, (x, y), PGD(eps, step, steps, start="none"), batch_size=512)
        middle = time.perf_counter()
        _, _, success = fb.attacks.LinfPGD(abs_stepsize=step, steps=steps, random_start=False)(
            fmodel, x, y, epsilons=eps
        )
        theirs = 1 - success.float().mean().item()
        print(
            f"\nPGD-{steps} eps {eps * 255:.0f}/255: ours {ours:.4f} ({middle - start:.1f} s), "
            f"foolbox {theirs:.4f} ({time.perf_counter() - middle:.1f} s), clean {accuracy(trained, x, y):.4f}"
        )
        assert abs(ours - theirs) <= 0.005
        assert ours < accuracy(trained, x, y)


def test_gaussian_start_is_x_plus_a_thousandth_of_a_seeded_normal():
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    x = torch.full((4, 3, 2, 2), 0.5)
    y = torch.tensor([0, 1, 2, 0])
    zero_steps = PGD(EPS, 1e-12, 1, start="gaussian", seed=3)  # one negligible step: the start itself
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(3))
    assert torch.allclose(zero_steps(model, x, y), x + 0.001 * noise, atol=1e-9)
    with pytest.raises(RobustnasError, match="PGD start must be one of uniform, gaussian, none, got 'normal'"):
        PGD(EPS, STEP, 1, start="normal")
