"""Robustness proxies jacob_fro and hessian_eig (spec zero-cost-proxies-and-rf-study.md §2.2, §2.3).

Exact values come from closed forms (a linear model's Jacobian is W; a linear softmax model's input
Hessian is W^T (diag p - p p^T) W / B per sample) or from Jacobians/Hessians built explicitly with
torch.autograd.functional on tiny float64 networks; NB201 checks use small NB201 networks.
"""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.functional import hessian, jacobian
from torch.func import functional_call

from robustnas.data import load_dataset, normalization, sample_batch
from robustnas.errors import RobustnasError
from robustnas.proxies import REGISTRY, ProxyUndefined, score
from robustnas.proxies.robustness import HessianEig, _lanczos, hessian_eig_details, jacobian_frobenius
from robustnas.spaces import build

BATCH, FEATURES, HIDDEN, CLASSES = 4, 5, 6, 3
MINE = ["jacob_fro", "hessian_eig"]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """These tensors are tiny: with two OpenMP threads on a busy machine, waiting for the second
    thread costs up to 100x the work, so this file runs on one thread (restored afterwards)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ---- tiny float64 networks ------------------------------------------------------------------
def tiny(kind: str) -> nn.Module:
    torch.manual_seed(7)
    layers = {
        "linear": lambda: [nn.Linear(FEATURES, CLASSES)],
        "tanh_mlp": lambda: [nn.Linear(FEATURES, HIDDEN), nn.Tanh(), nn.Linear(HIDDEN, CLASSES)],
        "bn_mlp": lambda: [nn.Linear(FEATURES, HIDDEN), nn.BatchNorm1d(HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, CLASSES)],
    }[kind]()
    return nn.Sequential(*layers).double().train()


def tiny_batch() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(3)
    x = torch.randn(BATCH, FEATURES, generator=generator, dtype=torch.float64)
    return x, torch.tensor([0, 2, 1, 2])


def batch_jacobian(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """d logits(x_n) / d x_b for the whole (train-mode) batch: [B, C, B, D]."""
    return jacobian(lambda batch: model(batch), x)


def dominant(matrix: torch.Tensor) -> float:
    """The eigenvalue of largest magnitude, with its sign (what hessian_eig finds)."""
    eigenvalues = torch.linalg.eigvalsh(matrix)
    return float(eigenvalues[eigenvalues.abs().argmax()])


def explicit_hessian(model: nn.Module, x: torch.Tensor, y: torch.Tensor, wrt: str) -> torch.Tensor:
    """The full Hessian of the mean cross-entropy, as a square matrix."""
    if wrt == "input":
        return hessian(lambda batch: F.cross_entropy(model(batch), y), x).reshape(x.numel(), x.numel())
    names = [name for name, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]
    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    def loss(vector: torch.Tensor) -> torch.Tensor:
        tensors = [t.reshape(s) for t, s in zip(vector.split([s.numel() for s in shapes]), shapes)]
        return F.cross_entropy(functional_call(model, dict(zip(names, tensors)), (x,)), y)

    return hessian(loss, flat)


# ---- small NB201 networks -------------------------------------------------------------------
@pytest.fixture(scope="module")
def cifar_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """8 normalised images of the embedded CIFAR-10 sample (the network input) and labels."""
    x, y = sample_batch(load_dataset(), 8, seed=0)
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in normalization("cifar10"))
    return (x - mean) / std, y


def small_nb201(arch: tuple[int, ...]) -> nn.Module:
    torch.manual_seed(0)
    return build("nb201", arch, "cifar10", channels=4, cells_per_stage=1)


# ---- jacob_fro ------------------------------------------------------------------------------
def test_linear_model_jacob_fro_is_half_squared_frobenius_norm_of_w():
    model = tiny("linear")
    x, _ = tiny_batch()
    expected = 0.5 * float(model[0].weight.detach().pow(2).sum())
    assert jacobian_frobenius(model, x) == pytest.approx(expected, rel=1e-12)


def test_independent_samples_give_mean_per_sample_jacobian_norm():
    model = tiny("tanh_mlp")
    x, _ = tiny_batch()
    per_sample = [jacobian(model, x[b]).pow(2).sum() for b in range(BATCH)]
    assert jacobian_frobenius(model, x) == pytest.approx(0.5 * float(sum(per_sample)) / BATCH, rel=1e-12)


def test_train_mode_batchnorm_gives_jacobian_of_batch_summed_logits():
    """Documented choice: sample b's block is sum_n d logits(x_n)/d x_b, not the diagonal block."""
    model = tiny("bn_mlp")
    x, _ = tiny_batch()
    full = batch_jacobian(model, x)
    summed = 0.5 * float(full.sum(dim=0).pow(2).sum()) / BATCH
    diagonal = 0.5 * float(sum(full[b, :, b].pow(2).sum() for b in range(BATCH))) / BATCH
    assert jacobian_frobenius(model, x) == pytest.approx(summed, rel=1e-12)
    assert abs(summed - diagonal) > 0.05 * summed  # the choice matters on this network


class Scaled(nn.Module):
    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        return 2.0 * logits


@pytest.mark.parametrize(
    ("tail", "backwards"),
    [([], 2), ([Scaled()], 7)],  # logits straight from the Linear: K=2 backwards; scaled after it: C=7
)
def test_narrow_linear_head_takes_k_backwards_for_the_same_exact_value(monkeypatch, tail, backwards):
    """K=2 features into C=7 classes behind train-mode BatchNorm: the eigenvector path of
    _head_cotangents gives the batch-summed Jacobian norm of the one-hot path, with K backwards."""
    torch.manual_seed(7)
    layers = [nn.Linear(FEATURES, 2), nn.BatchNorm1d(2), nn.ReLU(), nn.Linear(2, 7), *tail]
    model = nn.Sequential(*layers).double().train()
    x, _ = tiny_batch()
    summed = 0.5 * float(batch_jacobian(model, x).sum(dim=0).pow(2).sum()) / BATCH
    calls = []
    grad = torch.autograd.grad
    monkeypatch.setattr(torch.autograd, "grad", lambda *args, **kwargs: calls.append(1) or grad(*args, **kwargs))
    assert jacobian_frobenius(model, x) == pytest.approx(summed, rel=1e-12)
    assert len(calls) == backwards


class IgnoresInput(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros(x.shape[0], 2, dtype=x.dtype)


def test_narrow_head_without_input_path_is_undefined():
    model = nn.Sequential(IgnoresInput(), nn.Linear(2, 7)).double()
    x, _ = tiny_batch()
    with pytest.raises(ProxyUndefined, match="does not depend on the input"):
        jacobian_frobenius(model, x)


@pytest.mark.parametrize("kind", ["tanh_mlp", "bn_mlp"])
def test_projection_estimator_is_unbiased(kind):
    """Mean of 200 seeds x 16 projections within 5 standard errors (deterministic seeds, cannot flake).

    Target: 1/2 * 1/B * sum_{n,b} ||d logits(x_n)/d x_b||^2, the exact jacob_fro where samples are
    independent (tanh MLP); with train-mode BatchNorm the cross-sample blocks enter squared.
    """
    model = tiny(kind)
    x, _ = tiny_batch()
    target = 0.5 * float(batch_jacobian(model, x).pow(2).sum()) / BATCH
    if kind == "tanh_mlp":
        assert target == pytest.approx(jacobian_frobenius(model, x), rel=1e-12)
    estimates = torch.tensor([jacobian_frobenius(model, x, n_proj=16, seed=seed) for seed in range(200)])
    standard_error = float(estimates.std()) / math.sqrt(len(estimates))
    assert standard_error < 0.02 * target  # the check can see a 10% bias
    assert abs(float(estimates.mean()) - target) < 5 * standard_error


def test_projection_estimator_is_seeded_and_exact_value_is_not_random():
    model = tiny("bn_mlp")
    x, _ = tiny_batch()
    assert jacobian_frobenius(model, x, n_proj=2, seed=1) == jacobian_frobenius(model, x, n_proj=2, seed=1)
    assert jacobian_frobenius(model, x, n_proj=2, seed=1) != jacobian_frobenius(model, x, n_proj=2, seed=2)
    assert jacobian_frobenius(model, x, seed=1) == jacobian_frobenius(model, x, seed=2)


# ---- hessian_eig ----------------------------------------------------------------------------
def test_linear_softmax_input_hessian_has_closed_form_and_lanczos_finds_its_top():
    model = tiny("linear")
    x, y = tiny_batch()
    weight = model[0].weight.detach()
    p = model(x).softmax(dim=1).detach()
    blocks = [weight.T @ (torch.diag(p[b]) - torch.outer(p[b], p[b])) @ weight / BATCH for b in range(BATCH)]
    assert torch.allclose(explicit_hessian(model, x, y, "input"), torch.block_diag(*blocks), atol=1e-14)
    expected = max(float(torch.linalg.eigvalsh(block).max()) for block in blocks)
    result = hessian_eig_details(model, x, y, tol=1e-12, max_iter=5000)
    assert result.converged
    assert result.value == pytest.approx(expected, rel=1e-4)


@pytest.mark.parametrize("wrt", ["input", "parameters"])
@pytest.mark.parametrize("kind", ["linear", "tanh_mlp", "bn_mlp"])
def test_lanczos_matches_explicit_hessian(kind, wrt):
    model = tiny(kind)
    x, y = tiny_batch()
    expected = dominant(explicit_hessian(model, x, y, wrt))
    result = hessian_eig_details(model, x, y, wrt=wrt, tol=1e-12, max_iter=5000)
    assert result.converged and result.relative_change < 1e-12
    assert result.value == pytest.approx(expected, rel=1e-4)


def test_default_stopping_rule_and_non_convergence_are_reported():
    model = tiny("tanh_mlp")
    x, y = tiny_batch()
    default = hessian_eig_details(model, x, y)
    assert default.converged and default.relative_change < 1e-4 and default.iterations <= 100
    assert default.value == pytest.approx(dominant(explicit_hessian(model, x, y, "input")), rel=1e-2)
    cut = hessian_eig_details(model, x, y, max_iter=2)
    assert isinstance(cut, HessianEig) and cut.iterations == 2 and not cut.converged
    assert cut.relative_change >= 1e-4 and math.isfinite(cut.value)


def diagonal_operator(diagonal: list[float], seed: int = 0):
    """v -> diag(d) v on one float64 vector, and a Gaussian start from the seed: a known spectrum."""
    d = torch.tensor(diagonal, dtype=torch.float64)
    start = torch.randn(len(diagonal), generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return (lambda vectors: [d * vectors[0]]), [start]


def test_lanczos_finds_a_negative_dominant_eigenvalue_of_a_known_spectrum():
    product, start = diagonal_operator([-5.0, 3.0, 1.0, 0.5, -0.25, 0.1, 2.0, -1.5])
    result = _lanczos(product, start, max_iter=100, tol=1e-12)
    assert result.converged and result.iterations <= 8
    assert result.value == pytest.approx(-5.0, abs=1e-10)


def test_lanczos_separates_close_magnitudes_of_opposite_sign():
    """|-3.99| / 4 = 0.9975: power iteration from this start needs 3,368 products for 1e-8 (its
    Rayleigh quotient error shrinks like 0.9975^(2k)); Lanczos resolves both ends of the spectrum
    at once, well within the dimension."""
    product, start = diagonal_operator([4.0, -3.99, *torch.linspace(-3.0, 3.0, 48).tolist()])
    result = _lanczos(product, start, max_iter=100, tol=1e-6)
    assert result.converged and result.iterations < 50
    assert result.value == pytest.approx(4.0, abs=1e-8)
    assert abs(result.value - 4.0) <= result.relative_change * abs(result.value)  # the residual bound holds


def test_default_lanczos_matches_explicit_hessian_of_a_batchnorm_conv_net():
    """Train-mode BatchNorm2d makes the input Hessian indefinite (both signs near the top magnitude)."""
    torch.manual_seed(11)
    net = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.BatchNorm2d(3), nn.Tanh(), nn.Flatten(), nn.Linear(48, 3))
    net = net.double().train()
    x = torch.randn(4, 2, 4, 4, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    y = torch.tensor([0, 2, 1, 2])
    matrix = explicit_hessian(net, x, y, "input")
    eigenvalues = torch.linalg.eigvalsh(matrix)
    assert eigenvalues[0] < -0.8 * eigenvalues[-1] < 0
    expected = dominant(matrix)
    result = hessian_eig_details(net, x, y)
    assert result.converged and result.relative_change < 1e-4 and result.iterations < x.numel()
    assert result.value == pytest.approx(expected, rel=1e-6)
    assert abs(result.value - expected) <= result.relative_change * abs(result.value)


def test_hessian_eig_is_deterministic_per_seed():
    model = tiny("bn_mlp")
    x, y = tiny_batch()
    first = hessian_eig_details(model, x, y, max_iter=3, seed=5)
    assert first == hessian_eig_details(model, x, y, max_iter=3, seed=5)
    assert first.value != hessian_eig_details(model, x, y, max_iter=3, seed=6).value


# ---- as registered proxies on NB201 ---------------------------------------------------------
def test_registration():
    for name in MINE:
        spec = REGISTRY[name]
        assert spec.needs_data and not spec.higher_is_better
    assert not REGISTRY["jacob_fro"].needs_labels and REGISTRY["hessian_eig"].needs_labels


def test_registered_proxies_equal_the_public_functions(cifar_batch):
    x, y = cifar_batch
    net = small_nb201((0, 2, 3, 2, 3, 1))
    values = score(net, x, y, proxies=MINE, seed=3)
    assert values["jacob_fro"] == jacobian_frobenius(net, x, seed=3) > 0
    assert values["hessian_eig"] == hessian_eig_details(net, x, y, seed=3).value != 0
    assert values == score(net, x, y, proxies=MINE, seed=3)


def test_no_input_path_is_undefined_with_reason(cifar_batch):
    x, y = cifar_batch
    net = small_nb201((1, 1, 1, 1, 1, 1))
    values = score(net, x, y, proxies=MINE)
    for name in MINE:
        assert math.isnan(values[name])
        assert "does not depend on the input" in values.reasons[name]
    with pytest.raises(ProxyUndefined, match="does not depend on the input"):
        hessian_eig_details(net, x, y)
    assert not math.isnan(hessian_eig_details(net, x, y, wrt="parameters", max_iter=2).value)


def test_fused_equals_alone_and_the_model_is_untouched(cifar_batch):
    x, y = cifar_batch
    net = small_nb201((0, 2, 3, 4, 0, 2))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    fused = score(net, x, y, proxies="all", seed=1)
    alone = score(net, x, y, proxies=MINE, seed=1, fused=False)
    for name in MINE:
        assert fused[name] == alone[name] and math.isfinite(fused[name])
    after = net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_bad_arguments_raise_one_clear_error():
    model = tiny("linear")
    x, y = tiny_batch()
    with pytest.raises(RobustnasError, match="n_proj must be a positive integer"):
        jacobian_frobenius(model, x, n_proj=0)
    with pytest.raises(RobustnasError, match="wrt must be one of input, parameters"):
        hessian_eig_details(model, x, y, wrt="weights")
    with pytest.raises(RobustnasError, match="max_iter must be a positive integer"):
        hessian_eig_details(model, x, y, max_iter=0)
    with pytest.raises(RobustnasError, match="tol must be a positive number"):
        hessian_eig_details(model, x, y, tol=0.0)


@pytest.mark.parametrize("seed", range(3))
def test_lanczos_waits_for_both_ends_of_the_spectrum(seed):
    """+4 at the top of a dense cluster, an isolated -3.99 at the other end: the isolated end
    converges first; stopping on the current largest-magnitude Ritz value alone returned -3.99."""
    cluster = torch.linspace(3.0, 4.0, 1999, dtype=torch.float64).tolist()
    product, start = diagonal_operator([-3.99, *cluster], seed=seed)
    result = _lanczos(product, start, max_iter=300, tol=1e-4)
    assert result.converged
    assert result.value == pytest.approx(4.0, rel=1e-3)
