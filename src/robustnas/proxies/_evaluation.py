"""One proxy evaluation: a network, a batch, a seed, and the passes several proxies share.

Reference semantics (NAS-Bench-Suite-Zero, spec zero-cost-proxies-and-rf-study.md §1.1): every
proxy runs on its own deep copy of the untrained network, in train mode (BatchNorm uses batch
statistics), on the same mini-batch. A train-mode forward does not depend on BN running
statistics, so one copy can serve every proxy that needs the plain forward on the batch:

* ``forward()``   one forward of a fresh copy, recording what the wanted proxies need
                  (ReLU codes for nwot, Conv/Linear outputs for fisher, an input that requires
                  grad for the Jacobian proxies);
* ``input_jacobian()``  d(sum of logits)/dx from that forward (jacov, epe_nas);
* ``gradients()``  the cross-entropy backward from that forward (grad_norm, snip, plain, fisher,
                  and, kept differentiable when grasp is wanted, grasp's Hessian-gradient product).

A proxy computed alone builds an ``Evaluation`` that wants only that proxy and runs the same code,
so fused and stand-alone values are equal (tests check it). Proxies that change the network
(synflow, zen, CRoZe) take their own ``fresh_copy()``.
"""
from __future__ import annotations

import copy
import zlib
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn

from robustnas.proxies._registry import REGISTRY, ProxyUndefined


def logits_of(output: Any) -> torch.Tensor:
    """Logits from a network output (DARTS-style networks return (logits, aux) in training)."""
    return output[0] if isinstance(output, (tuple, list)) else output


def weight_layers(net: nn.Module) -> list[nn.Module]:
    """Conv2d and Linear modules in registration order: the layers per-parameter proxies use."""
    return [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


@dataclass
class Forward:
    """The shared train-mode forward on a fresh copy of the network."""

    net: nn.Module
    x: torch.Tensor
    logits: torch.Tensor
    relu_kernel: torch.Tensor | None = None  # NASWOT's K (float64, N x N)
    layer_outputs: dict[nn.Module, torch.Tensor] = field(default_factory=dict)


@dataclass
class Gradients:
    """Cross-entropy gradients of the Conv2d/Linear weights (None where a layer got no gradient)."""

    layers: list[nn.Module]
    weights: list[torch.Tensor]
    grads: list[torch.Tensor | None]
    fisher: dict[nn.Module, torch.Tensor]  # per output channel: 1/2 mean_n (sum_hw z*g)^2
    grads_with_graph: tuple[torch.Tensor | None, ...] = ()  # only when a proxy uses "grad_graph"


class Evaluation:
    """Everything the proxies of one (network, batch, seed) share; passes run once, on demand."""

    def __init__(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor | None = None,
        *,
        seed: int = 0,
        proxies: Iterable[str] = (),
    ) -> None:
        self.model = model
        self.x = x
        self.y = y
        self.seed = seed
        self.uses = frozenset().union(*(REGISTRY[name].uses for name in proxies))
        self._memo: dict[str, Any] = {}

    # ---- helpers -------------------------------------------------------------------------
    def fresh_copy(self) -> nn.Module:
        """A deep copy of the untouched network in train mode (the reference ``copy_net``)."""
        return copy.deepcopy(self.model).train()

    def generator(self, purpose: str) -> torch.Generator:
        """A random generator seeded by (seed, purpose): same seed -> same draws, fused or alone."""
        generator = torch.Generator(device=self.x.device)
        generator.manual_seed(zlib.crc32(f"{self.seed}:{purpose}".encode()))
        return generator

    def labels(self) -> torch.Tensor:
        if self.y is None:
            raise ProxyUndefined("this proxy needs labels; give the batch's labels")
        return self.y

    def memo(self, key: str, compute: Callable[[], Any]) -> Any:
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    # ---- shared passes -------------------------------------------------------------------
    def forward(self) -> Forward:
        return self.memo("forward", self._forward)

    def _forward(self) -> Forward:
        net = self.fresh_copy()
        x = self.x.detach().clone().requires_grad_("input_grad" in self.uses)
        result = Forward(net=net, x=x, logits=torch.empty(0))
        handles = []
        if "relu_codes" in self.uses:
            handles += [m.register_forward_hook(_relu_code_hook(result)) for m in net.modules() if isinstance(m, nn.ReLU)]
        if "layer_outputs" in self.uses:
            handles += [m.register_forward_hook(_output_hook(result)) for m in weight_layers(net)]
        try:
            result.logits = logits_of(net(x))
        finally:
            for handle in handles:
                handle.remove()
        return result

    def input_jacobian(self) -> torch.Tensor:
        """Rows: d(sum of all logits)/d(input of sample n), flattened [N, D] (jacov, epe_nas)."""
        return self.memo("input_jacobian", self._input_jacobian)

    def _input_jacobian(self) -> torch.Tensor:
        forward = self.forward()
        if not forward.x.requires_grad:
            raise RuntimeError("input_jacobian needs a proxy registered with uses=('input_grad',)")
        (grad,) = torch.autograd.grad(forward.logits.sum(), forward.x, retain_graph=True, allow_unused=True)
        if grad is None:
            raise ProxyUndefined("the output does not depend on the input")
        return grad.reshape(grad.shape[0], -1).detach()

    def gradients(self) -> Gradients:
        return self.memo("gradients", self._gradients)

    def _gradients(self) -> Gradients:
        if "input_grad" in self.uses:
            self.input_jacobian()  # needs the graph, which the backward below frees
        forward = self.forward()
        layers = weight_layers(forward.net)
        fisher: dict[nn.Module, torch.Tensor] = {}
        handles = [
            output.register_hook(_fisher_hook(fisher, layer, output))
            for layer, output in forward.layer_outputs.items()
            if output.requires_grad
        ]
        loss = F.cross_entropy(forward.logits, self.labels())
        weights = [layer.weight for layer in layers]
        with_graph = "grad_graph" in self.uses
        grads = torch.autograd.grad(loss, weights, allow_unused=True, create_graph=with_graph)
        for handle in handles:
            handle.remove()
        return Gradients(
            layers=layers,
            weights=[w.detach() for w in weights],
            grads=[g.detach() if g is not None else None for g in grads],
            fisher=fisher,
            grads_with_graph=grads if with_graph else (),
        )


def _relu_code_hook(result: Forward) -> Callable:
    def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        # 0/1 codes: float32 products are exact integers below 2**24 units per ReLU, as in NASWOT
        codes = (inputs[0].detach() > 0).flatten(1).float()
        kernel = (codes @ codes.T + (1.0 - codes) @ (1.0 - codes).T).double()
        result.relu_kernel = kernel if result.relu_kernel is None else result.relu_kernel + kernel

    return hook


def _output_hook(result: Forward) -> Callable:
    def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        result.layer_outputs[module] = output

    return hook


def _fisher_hook(fisher: dict, layer: nn.Module, output: torch.Tensor) -> Callable:
    """Channel Fisher (Turner et al. 2020): Delta_k = 1/2 mean_n (sum_hw z_nkhw g_nkhw)^2."""
    activation = output.detach()

    def hook(grad: torch.Tensor) -> None:
        product = activation * grad.detach()
        per_channel = product.sum(dim=tuple(range(2, product.dim()))) if product.dim() > 2 else product
        fisher[layer] = 0.5 * per_channel.pow(2).mean(0)

    return hook
