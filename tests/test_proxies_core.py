"""Proxy engine core: registry, fusion, and the gradient/size families against independent maths."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from robustnas.errors import RobustnasError
from robustnas.proxies import REGISTRY, compute, resolve, score
from robustnas.spaces import build

GRADIENT_FAMILY = ["grad_norm", "snip", "plain", "fisher", "grasp"]


def tiny_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(),
        nn.Conv2d(4, 4, 3, padding=1, bias=True), nn.Flatten(), nn.Linear(4 * 5 * 5, 3),
    )


def tiny_batch():
    generator = torch.Generator().manual_seed(1)
    return torch.randn(6, 3, 5, 5, generator=generator), torch.tensor([0, 1, 2, 0, 1, 2])


def reference_gradients(model, x, y):
    """Independent: plain .backward() on a train-mode copy, weights of Conv2d/Linear in order."""
    import copy

    net = copy.deepcopy(model).train()
    F.cross_entropy(net(x), y).backward()
    layers = [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    return net, layers


def test_gradient_proxies_equal_direct_formulas():
    model, (x, y) = tiny_model(), tiny_batch()
    values = score(model, x, y, proxies=["grad_norm", "snip", "plain"])
    _, layers = reference_gradients(model, x, y)
    assert values["grad_norm"] == pytest.approx(sum(float(m.weight.grad.norm()) for m in layers), rel=1e-6)
    assert values["snip"] == pytest.approx(sum(float((m.weight.detach() * m.weight.grad).abs().sum()) for m in layers), rel=1e-6)
    assert values["plain"] == pytest.approx(sum(float((m.weight.detach() * m.weight.grad).sum()) for m in layers), rel=1e-5)


def test_fisher_equals_channel_fisher_with_fan_in_broadcast():
    model, (x, y) = tiny_model(), tiny_batch()
    import copy

    net = copy.deepcopy(model).train()
    layers = [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    outputs = {}
    handles = [m.register_forward_hook(lambda m, i, o: outputs.__setitem__(m, o)) for m in layers]
    loss = F.cross_entropy(net(x), y)
    for h in handles:
        h.remove()
    grads = torch.autograd.grad(loss, [outputs[m] for m in layers])
    expected = 0.0
    for m, g in zip(layers, grads):
        z = outputs[m].detach()
        a = (z * g).sum(dim=(2, 3)) if z.dim() == 4 else z * g
        delta = 0.5 * a.pow(2).mean(0)
        expected += float(delta.abs().sum()) * m.weight[0].numel()
    assert compute("fisher", model, x, y) == pytest.approx(expected, rel=1e-6)


def test_grasp_equals_minus_w_hessian_g_from_the_explicit_hessian():
    model, (x, y) = tiny_model(), tiny_batch()
    net, layers = reference_gradients(model, x, y)
    weights = [m.weight for m in layers]
    sizes = [w.numel() for w in weights]
    flat = torch.cat([w.detach().flatten() for w in weights])

    def loss_of(flat_weights):
        chunks = torch.split(flat_weights, sizes)
        params = dict(net.named_parameters())
        names = [n for n, p in params.items() if any(p is w for w in weights)]
        replaced = {n: c.view_as(params[n]) for n, c in zip(names, chunks)}
        return F.cross_entropy(torch.func.functional_call(net, replaced, (x,)), y)

    flat_req = flat.clone().requires_grad_()
    (g,) = torch.autograd.grad(loss_of(flat_req), flat_req)
    hessian = torch.autograd.functional.hessian(loss_of, flat)
    expected = float(-(flat * (hessian @ g)).sum())
    assert compute("grasp", model, x, y) == pytest.approx(expected, rel=1e-4, abs=1e-7)


def test_size_proxies():
    model, (x, y) = tiny_model(), tiny_batch()
    values = score(model, x, y, proxies=["params", "flops", "l2_norm"])
    convs_linear = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert values["params"] == sum(p.numel() for p in model.parameters()) / 1e6
    # conv1 MACs + BN 2x + ReLU + conv2 MACs + bias + linear (tensorwatch rules, per image)
    flops = 3 * 4 * 9 * 25 + 2 * 4 * 25 + 4 * 25 + (4 * 4 * 9 * 25 + 4 * 25) + 100 * 3
    assert values["flops"] == flops / 1e6
    assert values["l2_norm"] == pytest.approx(sum(float(m.weight.detach().norm()) for m in convs_linear), rel=1e-6)


def test_nb201_params_and_flops_through_the_proxy_api():
    x = torch.randn(2, 3, 32, 32)
    values = score(build("nb201", (0, 2, 3, 2, 3, 1), "cifar10"), x, proxies="params,flops")
    assert (values["params"], values["flops"]) == (0.615386, 88.307392)


def test_fused_equals_alone_and_model_is_untouched():
    torch.manual_seed(3)
    net = build("nb201", "|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|none~2|")
    before = {k: v.clone() for k, v in net.state_dict().items()}
    x, y = torch.randn(8, 3, 32, 32), torch.arange(8) % 10
    fused = score(net, x, y, proxies="all")
    alone = score(net, x, y, proxies="all", fused=False)
    assert list(fused) == list(alone) == resolve("all")
    for name in fused:
        assert fused[name] == alone[name] or (math.isnan(fused[name]) and math.isnan(alone[name])), name
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert net.training


def test_labels_needed_gives_nan_with_reason():
    model, (x, _) = tiny_model(), tiny_batch()
    values = score(model, x, None, proxies=["grad_norm", "params"])
    assert math.isnan(values["grad_norm"]) and "labels" in values.reasons["grad_norm"]
    assert values["params"] > 0 and "params" not in values.reasons


def test_registry_metadata_and_resolve_errors():
    resolve("all")
    for spec in REGISTRY.values():
        assert spec.summary and spec.cost and isinstance(spec.higher_is_better, bool)
    assert resolve("snip, grad_norm,snip") == ["snip", "grad_norm"]
    with pytest.raises(RobustnasError, match="unknown proxy snipp; choose from: all, "):
        resolve("snipp")
    with pytest.raises(RobustnasError, match="none given"):
        resolve("")
