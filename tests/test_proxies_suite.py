"""jacov, epe_nas, nwot, zen, synflow: exact values on hand-checkable networks, undefined cases,
determinism, fused == alone, NB201 and DARTS networks (spec zero-cost-proxies-and-rf-study.md §1)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from robustnas.data import load_dataset, normalization, sample_batch
from robustnas.proxies import REGISTRY, compute, score
from robustnas.proxies._evaluation import Evaluation
from robustnas.spaces import build
from robustnas.spaces._darts_ops import DartsNetwork
from robustnas.spaces._nb201_net import NB201Network
from robustnas.spaces.nb201 import NB201Arch

MINE = ["jacov", "epe_nas", "nwot", "zen", "synflow"]
K = 1e-5
LOG_1_PLUS_K = math.log(1 + K)
DEAD_ARCH = (1, 1, 1, 1, 1, 1)  # every edge `none`: the output does not depend on the input



def cifar_batch(size: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A normalised batch of the embedded CIFAR-10 sample, as the networks take it."""
    x, y = sample_batch(load_dataset(None), size, seed=seed)
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in normalization("cifar10"))
    return (x - mean) / std, y


def small_nb201(arch: tuple[int, ...], channels: int = 8) -> NB201Network:
    """An NB201 network of ``arch`` with one cell per stage (fast tests), default-initialised."""
    torch.manual_seed(0)
    return NB201Network(NB201Arch.parse(arch), channels=channels, cells_per_stage=1)


def same(a: dict, b: dict) -> bool:
    """Equal values, NaN equal to NaN."""
    return a.keys() == b.keys() and all(
        (math.isnan(a[k]) and math.isnan(b[k])) or a[k] == b[k] for k in a
    )


# ---- jacov and epe_nas ---------------------------------------------------------------------------
def linear_net(d: int, classes: int) -> nn.Module:
    """Logits W x + b: every Jacobian row is sum_c W[c], so all correlations are exactly 1."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(d, classes))


def test_jacov_identical_rows_closed_form():
    # corrcoef = all-ones N x N: eigenvalues N and N-1 zeros.
    n = 4
    value = compute("jacov", linear_net(12, 3), torch.randn(n, 3, 2, 2))
    expected = -(math.log(n + K) + 1 / (n + K) + (n - 1) * (math.log(K) + 1 / K))
    assert value == pytest.approx(expected, rel=1e-9)


def reference_jacobian(net: nn.Sequential, x: torch.Tensor) -> np.ndarray:
    """d(sum logits)/dx for Linear-ReLU-Linear written out: sum_j v_j 1[h_j > 0] w_j per sample."""
    first, second = net[1], net[3]
    w, b = first.weight.detach().double().numpy(), first.bias.detach().double().numpy()
    v = second.weight.detach().double().numpy().sum(axis=0)
    pre = x.flatten(1).double().numpy() @ w.T + b
    return ((pre > 0) * v) @ w


def relu_mlp() -> nn.Sequential:
    torch.manual_seed(1)
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 32), nn.ReLU(), nn.Linear(32, 3))


def test_jacov_matches_reference_algorithm():
    # The reference: corrcoef over samples, np.linalg.eig, -sum(log(l+k) + 1/(l+k)); tolerance:
    # the network computes J in float32, the written-out J here is float64.
    net, x = relu_mlp(), torch.randn(6, 12, generator=torch.Generator().manual_seed(2))
    eigenvalues = np.linalg.eig(np.corrcoef(reference_jacobian(net, x)))[0].real
    expected = -np.sum(np.log(eigenvalues + K) + 1 / (eigenvalues + K))
    assert compute("jacov", net, x) == pytest.approx(expected, rel=1e-6)


def test_epe_nas_matches_reference_algorithm():
    net, x = relu_mlp(), torch.randn(9, 12, generator=torch.Generator().manual_seed(3))
    y = torch.tensor([0, 1, 0, 2, 1, 1, 0, 2, 1])
    jacobian = reference_jacobian(net, x)
    expected = sum(
        abs(np.sum(np.log(np.abs(np.corrcoef(jacobian[y.numpy() == c])) + K))) for c in (0, 1, 2)
    )
    assert compute("epe_nas", net, x, y) == pytest.approx(expected, rel=1e-6)


def test_epe_nas_class_rules_closed_form():
    # All correlations 1: s_c = n_c^2 log(1+k), a singleton gives log(1+k) (corrcoef of one row is 1).
    x, y = torch.randn(6, 12), torch.tensor([0, 0, 1, 1, 1, 2])
    assert compute("epe_nas", linear_net(12, 10), x, y) == pytest.approx((4 + 9 + 1) * LOG_1_PLUS_K, rel=1e-9)
    one_hot = torch.nn.functional.one_hot(y, 10)  # arg-maxed, as the reference does
    assert compute("epe_nas", linear_net(12, 10), x, one_hot) == compute("epe_nas", linear_net(12, 10), x, y)
    # C > 100: s_c / n_c, singletons skipped, (1/#classes) sum_c sum_c' |s_c - s_c'|.
    assert compute("epe_nas", linear_net(12, 120), x, y) == pytest.approx(LOG_1_PLUS_K, rel=1e-9)


def test_epe_nas_undefined_cases():
    x = torch.randn(4, 12)
    result = score(linear_net(12, 10), x, None, proxies=["epe_nas"])
    assert math.isnan(result["epe_nas"]) and "labels" in result.reasons["epe_nas"]
    only_singletons = score(linear_net(12, 120), x, torch.tensor([0, 1, 2, 3]), proxies=["epe_nas"])
    assert math.isnan(only_singletons["epe_nas"]) and "at least 2 samples" in only_singletons.reasons["epe_nas"]


def test_jacov_needs_two_samples():
    result = score(linear_net(12, 3), torch.randn(1, 12), proxies=["jacov"])
    assert math.isnan(result["jacov"]) and "at least 2" in result.reasons["jacov"]


# ---- nwot ---------------------------------------------------------------------------------------
class TwiceRelu(nn.Module):
    """Identity layer, then the same ReLU module called twice (each call adds to K)."""

    def __init__(self, calls: int) -> None:
        super().__init__()
        self.linear = nn.Linear(3, 3)
        self.relu = nn.ReLU()
        self.calls = calls
        with torch.no_grad():
            self.linear.weight.copy_(torch.eye(3))
            self.linear.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.linear(x)
        for _ in range(self.calls):
            h = self.relu(h)
        return h


def test_nwot_hand_computed_kernel():
    # Codes 100, 110, 111: K_nm = 3 - Hamming = [[3,2,1],[2,3,2],[1,2,3]], det 8.
    x = torch.tensor([[1.0, -1.0, -1.0], [1.0, 1.0, -1.0], [1.0, 1.0, 1.0]])
    assert compute("nwot", TwiceRelu(1), x) == pytest.approx(math.log(8), rel=1e-12)
    # Two calls of one ReLU (codes unchanged by the ReLU): K doubles, det 2^3 * 8.
    assert compute("nwot", TwiceRelu(2), x) == pytest.approx(math.log(64), rel=1e-12)


def test_nwot_singular_kernel_is_undefined():
    x = torch.tensor([[1.0, -1.0, -1.0], [2.0, -3.0, -1.0], [1.0, 1.0, 1.0]])  # rows 0, 1 share codes
    result = score(TwiceRelu(1), x, proxies=["nwot"])
    assert math.isnan(result["nwot"]) and "singular" in result.reasons["nwot"]
    no_relu = score(nn.Linear(3, 2), x, proxies=["nwot"])
    assert math.isnan(no_relu["nwot"]) and "no nn.ReLU" in no_relu.reasons["nwot"]


# ---- synflow ------------------------------------------------------------------------------------
def test_synflow_linear_by_hand():
    # |W|, |b| on an all-ones input, BN removed: h = |W|1 + |b| = (4, 4.5);
    # sum |V| h + sum_ij |W_ij| |V_i| = 11 + 8.5.
    net = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2), nn.ReLU(), nn.Linear(2, 1))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0, -2.0], [3.0, 0.5]]))
        net[0].bias.copy_(torch.tensor([-1.0, 1.0]))
        net[1].weight.fill_(-10.0)  # ignored: the BN is removed
        net[3].weight.copy_(torch.tensor([[-0.5, 2.0]]))
    assert compute("synflow", net, torch.randn(5, 2)) == pytest.approx(math.log(19.5), rel=1e-12)
    assert net[0].weight[0, 1] == -2.0  # the caller's network is untouched


def test_synflow_conv_by_hand():
    # All-ones 3x3 image, 2x2 kernel: every conv output is S = sum|k|; R = S sum|v|, and both the
    # conv and the linear layer contribute S sum|v|.
    net = nn.Sequential(nn.Conv2d(1, 1, 2, bias=False), nn.Flatten(), nn.Linear(4, 1, bias=False))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[[[1.0, -2.0], [0.5, 3.0]]]]))
        net[2].weight.copy_(torch.tensor([[1.0, -1.0, 0.25, 2.0]]))
    assert compute("synflow", net, torch.randn(7, 1, 3, 3)) == pytest.approx(math.log(2 * 6.5 * 4.25), rel=1e-12)


def test_synflow_overflow_is_undefined():
    net = nn.Sequential(*(nn.Linear(1, 1) for _ in range(12)))  # R = 1e360 + ... overflows float64
    with torch.no_grad():
        for layer in net:
            layer.weight.fill_(1e30)
    result = score(net, torch.randn(2, 1), proxies=["synflow"])
    assert math.isnan(result["synflow"]) and "overflow" in result.reasons["synflow"]


# ---- zen ----------------------------------------------------------------------------------------
def test_zen_matches_written_out_formula():
    net = nn.Sequential(
        nn.Conv2d(1, 2, 1), nn.BatchNorm2d(2), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2, 3)
    )
    x = torch.zeros(5, 1, 3, 3)  # only the shape counts
    # The same draws in the same order: conv weight, linear weight, then x1, x2.
    generator = Evaluation(net, x, seed=7).generator("zen")
    w = torch.empty(2, 1, 1, 1).normal_(generator=generator).double()
    torch.empty(3, 2).normal_(generator=generator)
    x1, x2 = (torch.randn(5, 1, 3, 3, generator=generator) for _ in range(2))
    running_var, features = torch.ones(2, dtype=torch.float64), []
    for batch in (x1, x1 + 0.01 * x2):
        z = torch.einsum("oi,nihw->nohw", w[:, :, 0, 0], batch.double())  # bias reset to 0
        mean, var = z.mean(dim=(0, 2, 3), keepdim=True), z.var(dim=(0, 2, 3), unbiased=False, keepdim=True)
        features.append(torch.relu((z - mean) / torch.sqrt(var + 1e-5)))
        running_var = 0.9 * running_var + 0.1 * z.var(dim=(0, 2, 3), unbiased=True)
    delta = (features[0] - features[1]).abs().sum(dim=(1, 2, 3)).mean()
    expected = math.log(delta) + math.log(math.sqrt(running_var.mean()))
    assert compute("zen", net, x, seed=7) == pytest.approx(expected, rel=1e-5)


def test_zen_requires_one_global_pool():
    result = score(nn.Sequential(nn.Conv2d(1, 2, 1), nn.Flatten()), torch.zeros(2, 1, 3, 3), proxies=["zen"])
    assert math.isnan(result["zen"]) and "AdaptiveAvgPool2d" in result.reasons["zen"]


# ---- NB201 and DARTS networks -------------------------------------------------------------------
def test_dead_nb201_arch_reasons():
    x, y = cifar_batch(8)
    result = score(small_nb201(DEAD_ARCH), x, y, proxies=MINE)
    assert all(math.isnan(result[name]) for name in ("jacov", "epe_nas", "nwot", "zen"))
    assert "constant" in result.reasons["jacov"] and "constant" in result.reasons["epe_nas"]
    assert "singular" in result.reasons["nwot"] and "Delta = 0" in result.reasons["zen"]
    # With |W| on an all-ones input every path through a `none` edge carries 0: raw 0, stored 0.
    assert result["synflow"] == 0.0 and "synflow" not in result.reasons


def test_determinism_and_seeds():
    net, (x, y) = small_nb201((2, 4, 0, 0, 3, 2)), cifar_batch(16)
    first, again, other = (score(net, x, y, proxies=MINE, seed=s) for s in (0, 0, 1))
    assert same(first, again) and all(math.isfinite(v) for v in first.values())
    assert first["zen"] != other["zen"]  # zen draws its weights and inputs from the seed
    assert all(first[name] == other[name] for name in MINE if name != "zen")


@pytest.mark.parametrize("arch", [(4, 0, 3, 1, 4, 3), (2, 3, 1, 0, 2, 4)])
def test_fused_equals_alone_all_proxies(arch):
    net, (x, y) = small_nb201(arch, channels=4), cifar_batch(8)
    fused = score(net, x, y, proxies="all", seed=3)
    assert set(MINE) <= set(fused) == set(REGISTRY)
    assert same(fused, score(net, x, y, proxies="all", seed=3, fused=False))


def test_darts_network():
    torch.manual_seed(0)
    net, (x, y) = DartsNetwork("DARTS_V2", C=4, layers=3), cifar_batch(8)
    fused = score(net, x, y, proxies=MINE)
    assert all(math.isfinite(v) for v in fused.values()), fused.reasons
    assert same(fused, score(net, x, y, proxies=MINE, fused=False))


def test_full_size_nb201_values_in_suite_range():
    # Full NB201 at batch 64 (suite protocol): values of the same order as the suite's for this arch.
    arch = (4, 0, 3, 1, 4, 3)  # suite: jacov -88.3, epe_nas 1283, nwot 754.7, synflow 44.48, zen 63.4
    torch.manual_seed(0)
    x, y = cifar_batch(64)
    result = score(build("nb201", arch, "cifar10"), x, y, proxies=MINE)
    assert 740 < result["nwot"] < 770 and 44.0 < result["synflow"] < 45.0 and 55 < result["zen"] < 70
    assert -100 < result["jacov"] < -50 and 800 < result["epe_nas"] < 2000
