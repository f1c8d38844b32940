"""CRoZe (spec crose-and-arnas.md Part A, unit tests of D.1 (a)-(f)) on small real networks and the
embedded CIFAR-10 sample; the NB201 tap table of A.3.7 by module name; the generic tap rule on
classifiers that do not declare their taps (a plain nn.Sequential, PreAct ResNet-18)."""
from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from robustnas.data import load_dataset, normalization, sample_batch
from robustnas.errors import RobustnasError
from robustnas.proxies import REGISTRY, compute, score
from robustnas.proxies import croze as croze_module
from robustnas.proxies.croze import (
    MODES,
    croze_layers,
    croze_score,
    feature_taps,
    input_step,
    layer_taps,
    perturb_weights,
)
from robustnas.spaces import build
from robustnas.spaces._darts_ops import ArnasNetwork
from robustnas.spaces.darts import DartsGenotype
from robustnas.spaces._darts_ops import DartsNetwork
from robustnas.spaces._genotypes import DARTS_V2
from robustnas.spaces.nb201 import NB201Arch
from robustnas.spaces._nb201_net import NB201Network
from robustnas.train._preact import preact_resnet18

ALL_CONV = NB201Arch((2, 2, 2, 2, 2, 2))  # nor_conv_3x3 on every edge
MIXED = NB201Arch((2, 4, 0, 3, 2, 1))
MEAN, STD = normalization("cifar10")
PLAIN = MODES["official"].replace(beta=0.0, eps=0.0, clamp=False)  # robust copy == clean copy


@pytest.fixture(scope="module")
def batch():
    x, y = sample_batch(load_dataset(), 16, seed=0, augment=True)
    mean, std = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
    return (x - mean) / std, y


def small_nb201(arch: NB201Arch = MIXED, seed: int = 0, cells_per_stage: int = 2) -> NB201Network:
    torch.manual_seed(seed)
    return NB201Network(arch, channels=4, cells_per_stage=cells_per_stage)


def small_darts(genotype=DARTS_V2, seed: int = 0) -> DartsNetwork:
    torch.manual_seed(seed)
    return DartsNetwork(genotype, C=4, layers=4)


def tiny_classifier(seed: int = 0) -> nn.Sequential:
    """A plain classifier without the CRoZe methods; its nested Sequential is a container, not a block."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
        nn.Sequential(nn.Conv2d(4, 8, 3, stride=2, padding=1), nn.ReLU()),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10),
    )  # fmt: skip


def entries(weight_shape: torch.Size) -> int:
    """Number of values cos_d0 returns for a tensor: all but dimension 0."""
    return math.prod(weight_shape[1:])


def weight_of(net: nn.Module, name: str) -> torch.Tensor:
    return dict(net.named_modules())[name].weight


# ---- registration, presets, errors ------------------------------------------------------------
def test_registered_with_the_official_preset(batch):
    spec = REGISTRY["croze"]  # importing robustnas.proxies.croze registered it
    assert (spec.needs_data, spec.needs_labels, spec.higher_is_better) == (True, True, True)
    x, y = batch
    net = small_nb201()
    assert compute("croze", net, x, y) == croze_score(net, x, y, mode="official")


def test_presets_are_the_spec_values():
    official, paper = MODES["official"], MODES["paper"]
    assert (official.beta, official.eps, official.fgsm_sign, official.fgsm_space, official.clamp) == (
        2.0, 0.01, -1, "normalized", True
    )
    assert (official.abs_weights, official.accumulate_fgsm_grad, official.update_lr) == (True, True, 0.0)
    assert (official.nb201_reduction_bn, official.nb201_taps, official.batch_size) == (True, "official", 8)
    assert (paper.fgsm_sign, paper.fgsm_space, paper.eps, paper.abs_weights) == (1, "pixel", 8 / 255, False)
    assert (paper.accumulate_fgsm_grad, paper.update_lr, paper.nb201_reduction_bn, paper.nb201_taps) == (
        False, 0.1, False, "stage"
    )


@pytest.mark.parametrize(
    "change",
    [{"fgsm_sign": 0}, {"fgsm_space": "pixels"}, {"nb201_taps": "floor"}, {"beta": -1.0}, {"eps": math.nan},
     {"update_lr": -0.1}, {"batch_size": 0}],
)  # fmt: skip
def test_bad_settings_are_one_clear_error(change):
    with pytest.raises(RobustnasError, match="CRoZe settings: " + next(iter(change))):
        MODES["official"].replace(**change)


def test_unknown_setting_mode_and_network_are_errors(batch):
    x, y = batch
    with pytest.raises(RobustnasError, match="unknown CRoZe setting lr"):
        MODES["official"].replace(lr=0.1)
    with pytest.raises(RobustnasError, match="unknown CRoZe mode 'fast'"):
        croze_score(small_nb201(), x, y, mode="fast")
    with pytest.raises(RobustnasError, match="needs the batch's normalisation"):
        croze_score(small_nb201(), x, y, mode="paper")
    wrong_input = nn.Sequential(nn.Flatten(), nn.Linear(10, 10))  # a forward that fails stays an error
    with pytest.raises(RuntimeError, match="shapes cannot be multiplied"):
        score(wrong_input, x, y, proxies=["croze"])
    half_protocol = tiny_classifier()
    half_protocol.feature_taps = lambda: [half_protocol[0]]
    with pytest.raises(RobustnasError, match=r"needs both feature_taps\(\) and layer_taps\(\) for CRoZe"):
        croze_score(half_protocol, x, y)


# ---- (e) feature taps and the tap table of A.3.7 -------------------------------------------------
def nb201_expected_taps(rule: str) -> dict[str, int]:
    """Spec A.3.7, written out for the full NB201 net (5 cells per stage) of ALL_CONV."""
    official = {0: 0, 1: 0, 2: 0, 3: 0, 4: 1, 5: 1, 6: 1, 7: 1, 8: 1, 9: 1, 10: 2, 11: 2,
                12: 2, 13: 2, 14: 2, 15: 2, 16: 3}  # fmt: skip  # position in net.cells -> tap
    stage = {i: 1 + (i > 5) + (i > 11) for i in range(17)}  # every cell/reduction -> its stage's tap
    table = official if rule == "official" else stage
    taps = {"stem.0": 0, "classifier": 4}
    for position, tap in table.items():
        if position in (5, 11):
            taps.update({f"cells.{position}.{part}": tap for part in ("conv_a.1", "conv_b.1", "downsample.1")})
        else:
            taps.update({f"cells.{position}.edges.{edge}.1": tap for edge in range(6)})
    return taps


@pytest.mark.parametrize("rule", ["official", "stage"])
def test_nb201_tap_table(rule):
    net = build("nb201", ALL_CONV, "cifar10")
    assert layer_taps(net, rule) == nb201_expected_taps(rule)


def test_nb201_and_darts_feature_tap_shapes():
    shapes = []
    net = build("nb201", MIXED, "cifar10")
    handles = [m.register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape[1:]))) for m in feature_taps(net)]
    net(torch.zeros(2, 3, 32, 32))
    for handle in handles:
        handle.remove()
    assert shapes == [(16, 32, 32), (32, 16, 16), (64, 8, 8), (64, 8, 8), (64, 1, 1)]
    darts = small_darts()
    assert feature_taps(darts) == [darts.stem, *darts.cells, darts.global_pooling]


@pytest.mark.parametrize("network", [small_darts, lambda: ArnasNetwork("ARNAS", C=4, layers=4)])
def test_darts_taps_are_the_cell_outputs(network):
    net = network()
    taps = layer_taps(net)
    assert taps["stem.0"] == 0 and taps["classifier"] == 5  # L + 1: the pooled vector
    for name, tap in taps.items():
        if name.startswith("cells."):
            assert tap == int(name.split(".")[1]) + 1, name


# ---- the generic rule: any classifier ------------------------------------------------------------
def test_generic_taps_of_a_plain_classifier():
    net = tiny_classifier()
    assert feature_taps(net) == [net[0], net[3][0], net[6]]  # the classifier stands for its input
    assert layer_taps(net) == layer_taps(net, "stage") == {"0": 0, "3.0": 1, "6": 2}


def test_generic_taps_of_preact_resnet18():
    """One tap per top-level block (the 8 residual blocks of its nn.Sequential), then the pooled vector."""
    net = preact_resnet18()
    assert feature_taps(net) == [net.conv1, *net.blocks, net.linear]
    in_blocks = {
        name: int(name.split(".")[1]) + 1  # blocks.<i>.conv1 -> tap i + 1
        for name, m in net.blocks.named_modules(prefix="blocks") if isinstance(m, nn.Conv2d)
    }  # fmt: skip
    assert len(in_blocks) == 8 * 2 + 3  # two convs per block, three projection shortcuts
    assert layer_taps(net) == {"conv1": 0, **in_blocks, "linear": 9}


def test_generic_identical_copies_read_the_classifier_input_and_no_batch_norm(batch):
    x, y = batch
    net = tiny_classifier()
    layers = croze_layers(net, x, y, mode=PLAIN)
    assert [layer.tap for layer in layers] == [0, 1, 2] and all(layer.has_grad for layer in layers)
    for layer in layers:
        assert layer.P == pytest.approx(2 * entries(weight_of(net, layer.name).shape), rel=1e-12)
    assert layers[-1].Z == pytest.approx(2 * 8, rel=1e-12)  # the 8 pooled features, not the 10 logits
    without_bn = copy.deepcopy(net)
    without_bn[1] = nn.Identity()
    for mode in ("official", "paper"):
        assert croze_layers(net, x, y, mode=mode, mean=MEAN, std=STD) == croze_layers(
            without_bn, x, y, mode=mode, mean=MEAN, std=STD
        )


@pytest.mark.parametrize("network", [tiny_classifier, preact_resnet18])
def test_scores_any_classifier(network, batch):
    x, y = batch
    x = F.avg_pool2d(x, 4)  # 8x8 images: PreAct ResNet-18 in float64 stays quick
    torch.manual_seed(0)
    net = network().eval()
    before = {key: value.clone() for key, value in net.state_dict().items()}
    values = score(net, x, y, proxies=["croze"])
    assert math.isfinite(values["croze"]) and values["croze"] > 0 and not values.reasons
    assert croze_score(net, x, y) == values["croze"]  # deterministic
    assert not net.training and all(torch.equal(before[key], value) for key, value in net.state_dict().items())
    assert net.state_dict().keys() == before.keys()


# ---- (a) identical copies --------------------------------------------------------------------
def tap_sizes(net: nn.Module, x: torch.Tensor) -> dict[int, int]:
    """C*H*W (or C) of every feature tap: the number of values cos_d0 gives for it."""
    sizes = {}
    handles = [
        m.register_forward_hook(lambda m, i, o, t=t: sizes.__setitem__(t, o[0].numel()))
        for t, m in enumerate(feature_taps(net))
    ]
    net(x[:2])
    for handle in handles:
        handle.remove()
    return sizes


@pytest.mark.parametrize("network", [small_nb201, small_darts])
def test_identical_copies_give_the_maximal_terms(network, batch):
    """beta=0, eps=0, no clamp: P = 2 per column, G = 1 per non-zero gradient column (0 for a zero
    one: cosine_similarity gives 0), Z = 2 per feature position (1 where it is 0 across the batch)."""
    x, y = batch
    net = network()
    layers = croze_layers(net, x, y, mode=PLAIN)
    sizes = tap_sizes(net, x)
    assert all(layer.has_grad for layer in layers)
    for layer in layers:
        n = entries(weight_of(net, layer.name).shape)
        assert layer.P == pytest.approx(2 * n, rel=1e-12)
        assert layer.G <= n * (1 + 1e-12)
        # MIXED's conv1x1 on edge 2->3 feeds only the 'none' edge 3->4: zero gradient, G = 0.
        assert (layer.G == 0.0) == layer.name.endswith("edges.3.1"), layer.name
        assert sizes[layer.tap] <= layer.Z <= 2 * sizes[layer.tap] * (1 + 1e-12)
    stem = layers[0]  # the stem output and its gradient have no zero column
    assert stem.name == "stem.0"
    assert stem.G == pytest.approx(entries(weight_of(net, "stem.0").shape), rel=1e-12)
    assert stem.Z == pytest.approx(2 * sizes[0], rel=1e-12)
    single = croze_layers(net, x, y, mode=PLAIN.replace(accumulate_fgsm_grad=False))
    for a, b in zip(layers, single):  # grad(x) + grad(x') = 2 grad(x) is parallel to grad(x)
        assert (a.P, a.Z) == (b.P, b.Z) and a.G == pytest.approx(b.G, rel=1e-12)


def test_update_step_moves_the_copies_apart_only_with_different_gradients(batch):
    x, y = batch
    net = small_nb201()
    stepped = PLAIN.replace(update_lr=1e-6, accumulate_fgsm_grad=False)  # both copies: W - lr g
    for layer in croze_layers(net, x, y, mode=stepped):
        assert layer.P == pytest.approx(2 * entries(weight_of(net, layer.name).shape), rel=1e-12)
    doubled = stepped.replace(accumulate_fgsm_grad=True)  # robust copy: W - lr (g + g)
    for layer in croze_layers(net, x, y, mode=doubled):
        n = entries(weight_of(net, layer.name).shape)
        if layer.G == 0.0:  # zero gradient: no step
            assert layer.P == pytest.approx(2 * n, rel=1e-12)
        elif ".edges." in layer.name:  # cell convs; the BN'd reduction convs get tiny gradients
            assert layer.P < 2 * n * (1 - 1e-10), layer.name


# ---- (b) non-negative, (c) layers without gradient ----------------------------------------------
@pytest.mark.parametrize("mode", ["official", "paper"])
def test_score_is_positive_and_the_sum_of_layer_scores(mode, batch):
    x, y = batch
    net = small_nb201()
    layers = croze_layers(net, x, y, mode=mode, mean=MEAN, std=STD)
    assert all(layer.score >= 0 for layer in layers)
    total = croze_score(net, x, y, mode=mode, mean=MEAN, std=STD)
    assert total > 0 and total == pytest.approx(sum(layer.score for layer in layers), rel=1e-15)


def test_layers_without_gradient_contribute_zero(batch):
    x, y = batch
    genotype = DartsGenotype(
        normal=DARTS_V2.normal, normal_concat=(2, 3, 4), reduce=DARTS_V2.reduce, reduce_concat=DARTS_V2.reduce_concat
    )
    net = small_darts(genotype)
    layers = croze_layers(net, x, y)
    dead = {layer.name for layer in layers if not layer.has_grad}
    # Node 5 of every normal cell (ops 6 and 7: skip_connect, dil_conv_3x3) is outside the concat list.
    normal_cells = [i for i, cell in enumerate(net.cells) if cell._concat == (2, 3, 4)]
    expected = {
        name for name, m in net.named_modules()
        if isinstance(m, nn.Conv2d) and any(name.startswith(f"cells.{i}._ops.7.") for i in normal_cells)
    }  # fmt: skip
    assert expected and dead == expected
    assert all(layer.score == 0.0 for layer in layers if not layer.has_grad)
    assert all(layer.score > 0 for layer in layers if layer.has_grad)


# ---- (d) weight perturbation -------------------------------------------------------------------
def test_perturbation_has_beta_times_the_weight_norm_along_the_gradient():
    generator = torch.Generator().manual_seed(0)
    weight = torch.rand(8, 4, 3, 3, generator=generator, dtype=torch.float64)
    grad = torch.randn(8, 4, 3, 3, generator=generator, dtype=torch.float64)
    results = []
    for inner_lr in (1e-3, 1.0, 1e3):  # the official code's ascent-step lr scales g; it cancels
        w = weight.clone()
        perturb_weights([w], [inner_lr * grad], beta=2.0)
        results.append(w)
    for w in results[1:]:
        torch.testing.assert_close(w, results[0], rtol=1e-12, atol=1e-15)
    step = results[0] - weight
    assert float(step.norm()) == pytest.approx(2.0 * float(weight.norm()), rel=1e-12)
    assert float(F.cosine_similarity(step.flatten(), grad.flatten(), dim=0)) == pytest.approx(1.0, abs=1e-12)
    untouched = weight.clone()
    perturb_weights([untouched], [None], beta=2.0)
    assert torch.equal(untouched, weight)


# ---- (f) sign invariance -----------------------------------------------------------------------
def flipped_signs(net: nn.Module, seed: int) -> nn.Module:
    other = copy.deepcopy(net)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for tensor in other.state_dict().values():
            if tensor.is_floating_point():
                tensor.mul_(torch.randint(0, 2, tensor.shape, generator=generator).mul(2).sub(1).to(tensor.dtype))
    return other


def test_official_score_ignores_the_initial_signs_the_paper_score_does_not(batch):
    x, y = batch
    net = small_nb201()
    other = flipped_signs(net, seed=3)
    assert croze_score(other, x, y) == croze_score(net, x, y)  # bit for bit: |W| is the same
    paper = dict(mode="paper", mean=MEAN, std=STD)
    assert croze_score(other, x, y, **paper) != pytest.approx(croze_score(net, x, y, **paper), rel=1e-6)
    unsigned = MODES["official"].replace(abs_weights=False)
    assert croze_score(other, x, y, mode=unsigned) != pytest.approx(croze_score(net, x, y, mode=unsigned), rel=1e-6)


# ---- input step ------------------------------------------------------------------------------
def test_input_step_official_descends_and_clamps_in_normalised_space(batch):
    x, _ = batch
    x = x.double()
    grad = torch.randn(x.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    official = MODES["official"]
    assert torch.equal(input_step(x, grad, official, None), torch.clamp(x - 0.01 * grad.sign(), 0, 1))
    unclamped = official.replace(clamp=False, fgsm_sign=1, eps=0.5)
    assert torch.equal(input_step(x, grad, unclamped, None), x + 0.5 * grad.sign())


def test_input_step_paper_ascends_in_pixel_space(batch):
    x, _ = batch
    x = x.double()
    grad = torch.randn(x.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    mean, std = (torch.tensor(v, dtype=torch.float64).view(1, 3, 1, 1) for v in (MEAN, STD))
    pixels = x * std + mean
    moved = input_step(x, grad, MODES["paper"], (mean, std)) * std + mean
    assert float(moved.min()) >= -1e-12 and float(moved.max()) <= 1 + 1e-12
    inside = (pixels > 8 / 255 + 1e-9) & (pixels < 1 - 8 / 255 - 1e-9)
    torch.testing.assert_close(moved[inside], (pixels + 8 / 255 * grad.sign())[inside], rtol=0, atol=1e-12)


# ---- modes, batch, dtype, determinism, fusion ---------------------------------------------------
def test_official_and_paper_differ_and_each_is_deterministic(batch):
    x, y = batch
    net = small_nb201()
    official = croze_score(net, x, y)
    paper = croze_score(net, x, y, mode="paper", mean=MEAN, std=STD)
    assert official != pytest.approx(paper, rel=1e-3)
    assert croze_score(net, x, y) == official
    assert croze_score(net, x, y, mode="paper", mean=MEAN, std=STD) == paper


def test_settings_each_change_the_score(batch):
    x, y = batch
    net = small_nb201()
    base = croze_score(net, x, y)
    for change in [dict(nb201_reduction_bn=False), dict(nb201_taps="stage"), dict(fgsm_sign=1), dict(eps=0.05),
                   dict(beta=1.0), dict(accumulate_fgsm_grad=False), dict(update_lr=0.1)]:  # fmt: skip
        assert croze_score(net, x, y, mode=MODES["official"].replace(**change)) != pytest.approx(base, rel=1e-9), change


def test_official_uses_the_first_eight_images(batch):
    x, y = batch
    net = small_nb201()
    assert croze_score(net, x, y) == croze_score(net, x[:8], y[:8])
    whole = MODES["official"].replace(batch_size=None)
    assert croze_score(net, x, y, mode=whole) != pytest.approx(croze_score(net, x, y), rel=1e-6)


def test_model_is_not_modified(batch):
    x, y = batch
    net = small_nb201().eval()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    croze_score(net, x, y)
    croze_score(net, x, y, mode="paper", mean=MEAN, std=STD)
    assert not net.training and all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_fused_equals_alone(batch):
    x, y = batch
    net = small_nb201(cells_per_stage=1)
    fused = score(net, x, y, proxies=["croze", "grad_norm", "synflow"], seed=1)
    alone = score(net, x, y, proxies=["croze"], fused=False, seed=1)
    assert fused["croze"] == alone["croze"] == croze_score(net, x, y)


def test_float32_matches_float64_where_plain_float32_overflows(batch, monkeypatch):
    x, y = batch
    torch.manual_seed(0)
    net = NB201Network(ALL_CONV, channels=4, cells_per_stage=5)  # |W|, no BN: activations pass 1e38
    reference = croze_score(net, x, y)
    assert croze_score(net, x, y, dtype=torch.float32) == pytest.approx(reference, rel=1e-5)
    monkeypatch.setattr(croze_module, "_range_limit", lambda dtype: math.inf)
    assert math.isnan(croze_score(net, x, y, dtype=torch.float32))


@pytest.mark.parametrize("mode", ["official", "paper"])
@pytest.mark.parametrize("network", [lambda: small_nb201(ALL_CONV), small_darts])
def test_rescaling_is_exact(mode, network, batch, monkeypatch):
    """The range guard rescales by powers of two only: forcing it everywhere changes nothing."""
    x, y = batch
    net = network()
    reference = croze_layers(net, x, y, mode=mode, mean=MEAN, std=STD)
    monkeypatch.setattr(croze_module, "_range_limit", lambda dtype: 2.0)
    rescaled = croze_layers(net, x, y, mode=mode, mean=MEAN, std=STD)
    for a, b in zip(reference, rescaled):
        assert (a.P, a.G, a.Z) == pytest.approx((b.P, b.G, b.Z), rel=1e-9), a.name


def test_cosines_survive_values_whose_squares_overflow_float64(batch):
    """The robust copy of a 20-cell ARNAS net reaches ~1e170: squared norms overflow float64 and the
    official code's cosines (hence G) come out 0. Scaling by a power of two leaves cosines exact."""
    generator = torch.Generator().manual_seed(0)
    a, b = (torch.randn(6, 5, generator=generator, dtype=torch.float64) for _ in range(2))
    huge = 2.0**600
    expected = float((F.cosine_similarity(a, b, dim=0) + 1).sum())
    assert croze_module._cosine_sum(a * huge, b * huge, 1.0) == pytest.approx(expected, rel=1e-14)
    small = a * 2.0**-40  # true units are kept below the limit: the 1e-8 floor applies as in the code
    assert torch.equal(croze_module._for_cosine(small, 40), a)
    x, y = batch
    torch.manual_seed(0)
    layers = croze_layers(ArnasNetwork("ARNAS", C=4, layers=20), x, y)
    assert all(layer.G > 0 for layer in layers if layer.has_grad)
