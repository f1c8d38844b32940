"""CRoZe (Ha et al., "Generalizable Lightweight Proxy for Robust NAS against Diverse Perturbations",
NeurIPS 2023): how consistently a clean and a perturbed copy of one untrained network behave.

Spec crose-and-arnas.md Part A. Per Conv2d/Linear layer m, with cos_d0 the cosine along dimension 0
(across output filters for weights, across the batch for features) summed over the other entries:

    P_m = sum(1 + cos_d0(W^r_m, W_m))   G_m = sum |cos_d0(g^r_m, g_m)|   Z_m = sum(1 + cos_d0(z^r_t, z_t))
    CRoZe = sum_m |P_m * G_m * Z_m|      (layers whose weight gets no gradient add 0)

where the robust copy's weights are pushed along the loss gradient (W^r = W + beta*||W||_F g/||g||_F
per layer), the robust copy sees an FGSM-style input x', and z_t is the feature tap t(m) the layer is
assigned to (spec A.3.7). Two presets (spec A.4):

* ``"official"`` reproduces the released code (HyeonjeongHa/CRoZe, measures/croze.py): every
  state-dict tensor abs'd on both copies, beta=2, a *descent* input step of 0.01 in normalised units
  clamped to [0, 1] *in normalised space*, robust gradients accumulated at x and x', no update step,
  the NB201 tap rule floor(k/5) with its off-by-one, BN disabled except in NB201's two residual
  reduction blocks (train mode, batch statistics), float64, the first 8 images of the batch.
* ``"paper"`` is the paper's formulation (Eq. 3-10): signed weights, a true FGSM ascent of 8/255 in
  pixel space (needs the batch's ``mean``/``std``), robust gradient at x' only, one SGD step of
  lr 0.1 on both copies before the parameter term (Eq. 7-8), every BN disabled, each NB201 cell
  mapped to the output of its own stage. The paper's beta, gamma and epsilon are not retrievable
  (spec A.2); beta=2 is the code's, gamma=0.1 the training lr of CRoZe's code (spec A.8), 8/255 the
  FGSM radius of the robustness targets.

Networks: any classifier ``nn.Module`` (logits out, or DARTS-style ``(logits, aux)``) is scored. A
network says what CRoZe needs through plain methods, as timm models answer ``forward_features``
(``CrozeNetwork`` below has the contracts; robustnas.spaces' NB201Network and CellNetwork implement
them, so this module knows no network class):

* ``feature_taps() -> list[nn.Module]``: modules whose outputs are the taps, in depth order;
* ``layer_taps(rule: str) -> dict[str, int]``: Conv2d/Linear name -> tap index (``rule`` is
  ``nb201_taps``: NB201's "official" floor(k/N) off-by-one or its "stage" rule);
* optional ``trunk_blocks() -> list[nn.Module]``: the stem and cells, where ``_RangeGuard`` may
  rescale activations; ``batch_norm_branches() -> list[tuple[nn.Module, ...]]``: the branches
  whose BN the official mode keeps (NB201's residual reductions); ``remove_training_extras()``:
  drops an auxiliary head and drop path (DARTS/ARNAS).

A network without ``feature_taps``/``layer_taps`` gets the generic rule. Its blocks are its
children in registration order, a plain ``nn.Sequential``/``nn.ModuleList`` being a container whose
own blocks count instead (recursively); the classifier is the last Conv2d/Linear registered, when
it is a Linear. Feature taps: the output of every block holding a Conv2d/Linear other than the
classifier, then the classifier's input (the pooled vector, as for DARTS). Each Conv2d/Linear is
assigned the tap of the block holding it, the classifier its input. Without ``trunk_blocks``
nothing is rescaled (a generic guard could not know which blocks are homogeneous: a bias or a
non-ReLU activation would make rescaling inexact), so such networks compute in plain ``dtype``
(float64, the default, overflows only past ~1e308); without ``batch_norm_branches`` every BN is
disabled, as CRoZe does. E.g. PreAct ResNet-18 gets 10 taps: its stem conv, each of its 8 residual
blocks, the pooled vector. A network whose forward fails on the batch raises as usual.

The NB201 network's last stage output is read after the head's ReLU (``lastact``), as in the official
code, where the head's in-place ReLU rewrites the stored tap. The official NB201 model also has
biases in its cell convolutions; robustnas's NB201 network (the NB201 benchmark's) has none, so
values agree with the released code's in behaviour, not digit for digit.

Precision: with |W| and no BN the activations grow ~10-1000x per cell (1e60 in the robust copy of an
NB201 net), which is why the official code runs in float64 (plain float32 gives NaN for about half
of the NB201 archs). ``dtype=torch.float32`` is ~2.7x faster on CPU and ranks NB201 archs exactly as
float64 does (50 archs: Spearman 1.0, values within 1.1e-4; docs/results/croze-precision.md)
because activations above 2^32 are rescaled by exact powers of two (``_RangeGuard``); similarities
are always taken in float64. One deliberate deviation: on full-size 20-cell ARNAS nets the robust
copy reaches ~1e170, the squared norms inside the official code's cosines overflow float64 and G
comes out 0 for every layer (CRoZe = 0); here such tensors are divided by a power of two first, which
leaves every cosine exact (NB201 stays far below that range: identical). Padding-excluding average
pools run as depthwise convolutions (the same values, several times faster on CPU).
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, replace
from typing import Protocol, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call
from torch.utils.hooks import RemovableHandle

from robustnas.errors import RobustnasError
from robustnas.proxies._evaluation import Evaluation, logits_of, weight_layers
from robustnas.proxies._registry import register

__all__ = [
    "MODES",
    "CrozeLayer",
    "CrozeNetwork",
    "CrozeSettings",
    "croze_layers",
    "croze_score",
    "feature_taps",
    "input_step",
    "layer_taps",
    "perturb_weights",
]

NORM_EPS = 1e-30  # added to ||Delta||_F by the official code
COSINE_EPS = 1e-8  # torch.nn.CosineSimilarity's default, as in the official code
SQUARE_SAFE_EXPONENT = 500  # |x| < 2^500: x^2 and sums of squares stay finite in float64
BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


@dataclass(frozen=True)
class CrozeSettings:
    """Every choice where the released code and the paper differ (spec A.4); see ``MODES``.

    beta: weight perturbation of the robust copy, relative to each layer's Frobenius norm.
    eps: input step, in the units of ``fgsm_space``. fgsm_sign: +1 ascent (FGSM), -1 descent.
    fgsm_space: "normalized" (the network input) or "pixel" (needs mean/std). clamp: clip to [0, 1]
    in ``fgsm_space``. abs_weights: |.| of every state-dict tensor of both copies.
    accumulate_fgsm_grad: robust gradient = grad at x + grad at x' (else at x' only).
    update_lr: SGD step on both copies before the parameter term (0 = none).
    nb201_reduction_bn: the network's ``batch_norm_branches`` (NB201's residual reduction blocks) keep
    train-mode BN (all other BN is off). nb201_taps: the rule passed to the network's ``layer_taps``:
    "official" (NB201 tap floor(k/N)) or "stage" (tap ceil(k/N): each cell's own stage output), with
    k the NB201 cells entered so far and N cells per stage. batch_size: the first images used
    (None: the whole batch).
    """

    beta: float
    eps: float
    fgsm_sign: int
    fgsm_space: str
    clamp: bool
    abs_weights: bool
    accumulate_fgsm_grad: bool
    update_lr: float
    nb201_reduction_bn: bool
    nb201_taps: str
    batch_size: int | None

    def __post_init__(self) -> None:
        problems = []
        if self.fgsm_sign not in (-1, 1):
            problems.append(f"fgsm_sign must be -1 or 1, got {self.fgsm_sign!r}")
        if self.fgsm_space not in ("normalized", "pixel"):
            problems.append(f"fgsm_space must be 'normalized' or 'pixel', got {self.fgsm_space!r}")
        if self.nb201_taps not in ("official", "stage"):
            problems.append(f"nb201_taps must be 'official' or 'stage', got {self.nb201_taps!r}")
        for name in ("beta", "eps", "update_lr"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                problems.append(f"{name} must be a finite number >= 0, got {value!r}")
        if self.batch_size is not None and not (isinstance(self.batch_size, int) and self.batch_size >= 1):
            problems.append(f"batch_size must be None or an integer >= 1, got {self.batch_size!r}")
        if problems:
            raise RobustnasError("CRoZe settings: " + "; ".join(problems))

    def replace(self, **changes) -> "CrozeSettings":
        """A copy with some fields changed, e.g. ``MODES["official"].replace(beta=0.0)``."""
        unknown = sorted(set(changes) - set(self.__dataclass_fields__))
        if unknown:
            raise RobustnasError(
                f"unknown CRoZe setting {', '.join(unknown)}; known: {', '.join(self.__dataclass_fields__)}"
            )
        return replace(self, **changes)


MODES: dict[str, CrozeSettings] = {
    "official": CrozeSettings(
        beta=2.0, eps=0.01, fgsm_sign=-1, fgsm_space="normalized", clamp=True, abs_weights=True,
        accumulate_fgsm_grad=True, update_lr=0.0, nb201_reduction_bn=True, nb201_taps="official", batch_size=8,
    ),
    "paper": CrozeSettings(
        beta=2.0, eps=8 / 255, fgsm_sign=1, fgsm_space="pixel", clamp=True, abs_weights=False,
        accumulate_fgsm_grad=False, update_lr=0.1, nb201_reduction_bn=False, nb201_taps="stage", batch_size=8,
    ),
}  # fmt: skip


@dataclass(frozen=True)
class CrozeLayer:
    """One Conv2d/Linear layer's terms; P, G, Z are 0 where the weight gets no gradient."""

    name: str
    tap: int
    has_grad: bool
    P: float
    G: float
    Z: float

    @property
    def score(self) -> float:
        return abs(self.P * self.G * self.Z)


# ---- network structure: the protocol and the generic rule --------------------------------------
WEIGHT_LAYERS = (nn.Conv2d, nn.Linear)
CONTAINERS = (nn.Sequential, nn.ModuleList)  # groupings of blocks, not blocks (the generic rule)


class CrozeNetwork(Protocol):
    """What a network tells CRoZe about its structure (spec crose-and-arnas.md §A.3.7), as plain
    methods: ``feature_taps`` and ``layer_taps`` go together (a network without them gets the generic
    rule, see the module doc); each of the other three may be missing (then: no rescaling, every BN
    off, nothing to remove)."""

    def feature_taps(self) -> list[nn.Module]:
        """Modules whose outputs are the feature taps, in depth order (the final Linear classifier, if
        listed, stands for its input: the pooled vector)."""

    def layer_taps(self, rule: str) -> dict[str, int]:
        """Every Conv2d/Linear module name -> the index of its tap in ``feature_taps``; ``rule`` is
        ``CrozeSettings.nb201_taps`` ("official" or "stage"), for networks where the two differ."""

    def trunk_blocks(self) -> list[nn.Module]:
        """Blocks called in this order, each fed earlier blocks' outputs, whose outputs the range guard
        may rescale by powers of two: with BN off, each must be positively homogeneous in its tensor
        inputs (but for ``batch_norm_branches``), and the final Linear must read the last one's output
        through homogeneous operations (pooling)."""

    def batch_norm_branches(self) -> list[tuple[nn.Module, ...]]:
        """Branches, as their modules in call order, whose BN ``CrozeSettings.nb201_reduction_bn``
        keeps in train mode; the first BN of each must see a homogeneous function of the branch input."""

    def remove_training_extras(self) -> None:
        """Drop what only training uses (an auxiliary head, drop path): CRoZe scores the plain net."""


def _declares_taps(net: nn.Module) -> bool:
    """Whether ``net`` gives its own taps (both protocol methods); one without the other is an error."""
    declared = [hasattr(net, method) for method in ("feature_taps", "layer_taps")]
    if any(declared) and not all(declared):
        raise RobustnasError(
            f"{type(net).__name__} needs both feature_taps() and layer_taps() for CRoZe, or neither"
        )
    return all(declared)


def _final_linear(net: nn.Module) -> nn.Linear | None:
    """The classifier: the last Conv2d/Linear registered, when it is a Linear."""
    layers = weight_layers(net)
    return layers[-1] if layers and isinstance(layers[-1], nn.Linear) else None


def _blocks(net: nn.Module) -> list[nn.Module]:
    """``net``'s children in registration order, each plain nn.Sequential/nn.ModuleList replaced by
    its own blocks (so a ResNet's stage of residual blocks gives one block per residual block)."""
    blocks: list[nn.Module] = []
    for child in net.children():
        blocks.extend(_blocks(child) if type(child) in CONTAINERS else [child])
    return blocks


def _generic_feature_taps(net: nn.Module) -> list[nn.Module]:
    """The blocks holding a Conv2d/Linear other than the classifier, then the classifier (its input)."""
    classifier = _final_linear(net)
    holds_layers = [
        block for block in _blocks(net)
        if any(isinstance(m, WEIGHT_LAYERS) and m is not classifier for m in block.modules())
    ]  # fmt: skip
    return holds_layers + ([classifier] if classifier is not None else [])


def _generic_layer_taps(net: nn.Module) -> dict[str, int]:
    """Each Conv2d/Linear -> the tap of the block holding it; the classifier -> its own (its input)."""
    taps = _generic_feature_taps(net)
    tap_of = {id(m): index for index, tap in enumerate(taps) for m in tap.modules()}  # the classifier's: last
    return {name: tap_of[id(m)] for name, m in net.named_modules() if isinstance(m, WEIGHT_LAYERS)}


def feature_taps(net: nn.Module) -> list[nn.Module]:
    """Modules whose outputs are CRoZe's feature taps (spec A.3.7), in tap order: ``net.feature_taps()``
    (NB201: 5, DARTS/ARNAS: L+2) or the generic rule (the classifier, listed last, for its input)."""
    return net.feature_taps() if _declares_taps(net) else _generic_feature_taps(net)


def layer_taps(net: nn.Module, nb201_taps: str = "official") -> dict[str, int]:
    """Conv2d/Linear module name -> index of its feature tap (spec A.3.7), in registration order:
    ``net.layer_taps(nb201_taps)`` (NB201's two rules, DARTS/ARNAS: the cell's output) or the
    generic rule."""
    return net.layer_taps(nb201_taps) if _declares_taps(net) else _generic_layer_taps(net)


def _trunk_blocks(net: nn.Module) -> list[nn.Module]:
    """``net.trunk_blocks()``, or none: nothing to rescale."""
    return net.trunk_blocks() if hasattr(net, "trunk_blocks") else []


def _batch_norm_branches(net: nn.Module) -> list[tuple[nn.Module, ...]]:
    """``net.batch_norm_branches()``, or none: every BN is disabled."""
    return net.batch_norm_branches() if hasattr(net, "batch_norm_branches") else []


# ---- the two copies -------------------------------------------------------------------------
def _disable_batch_norm(net: nn.Module, keep_in: Sequence[nn.Module]) -> None:
    """Replace every BatchNorm by the identity, except inside the modules ``keep_in``."""
    kept = {id(bn) for m in keep_in for bn in m.modules()}
    for parent in list(net.modules()):
        for child_name, child in list(parent.named_children()):
            if isinstance(child, BATCH_NORMS) and id(child) not in kept:
                setattr(parent, child_name, nn.Identity())


class _AveragePoolAsConv(nn.Module):
    """Average pooling that excludes the padding, as a depthwise convolution with a ones kernel over
    the count of valid inputs: the same values up to rounding, several times faster on CPU."""

    def __init__(self, pool: nn.AvgPool2d) -> None:
        super().__init__()
        size = pool.kernel_size
        self.kernel = (size, size) if isinstance(size, int) else tuple(size)
        self.stride, self.padding = pool.stride, pool.padding
        self._counts: dict[tuple, torch.Tensor] = {}

    def _sum(self, x: torch.Tensor) -> torch.Tensor:
        ones = x.new_ones((x.shape[1], 1, *self.kernel))
        return F.conv2d(x, ones, stride=self.stride, padding=self.padding, groups=x.shape[1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        key = (x.shape[-2:], x.dtype, x.device)
        if key not in self._counts:
            self._counts[key] = self._sum(x.new_ones((1, 1) + tuple(x.shape[-2:])))
        return self._sum(x) / self._counts[key]


def _replace_average_pools(net: nn.Module) -> None:
    """Swap every padding-excluding AvgPool2d for ``_AveragePoolAsConv`` (the same operation)."""
    for parent in list(net.modules()):
        for child_name, child in list(parent.named_children()):
            if (
                isinstance(child, nn.AvgPool2d) and not child.count_include_pad and not child.ceil_mode
                and child.divisor_override is None
            ):  # fmt: skip
                setattr(parent, child_name, _AveragePoolAsConv(child))


def _clean_copy(model: nn.Module, settings: CrozeSettings, dtype: torch.dtype) -> nn.Module:
    """The clean surrogate: a copy without training extras, BN off (but in the network's
    ``batch_norm_branches`` when the settings keep it), in ``dtype``, train mode."""
    net = copy.deepcopy(model)
    if hasattr(net, "remove_training_extras"):
        net.remove_training_extras()
    kept = _batch_norm_branches(net) if settings.nb201_reduction_bn else []
    _disable_batch_norm(net, [module for branch in kept for module in branch])
    _replace_average_pools(net)
    net.to(dtype).train().requires_grad_(True)
    if settings.abs_weights:
        with torch.no_grad():
            for tensor in net.state_dict().values():
                tensor.abs_()
    return net


def _weights(net: nn.Module) -> list[tuple[str, torch.Tensor]]:
    return [(name, m.weight) for name, m in net.named_modules() if isinstance(m, WEIGHT_LAYERS)]


# ---- range guard: exact power-of-two rescaling ------------------------------------------------
def _range_limit(dtype: torch.dtype) -> float:
    """Largest activation kept as is: 2^32 in float32, 2^256 in float64 (never reached there)."""
    return 2.0 ** (math.frexp(torch.finfo(dtype).max)[1] // 4)


class _RangeGuard:
    """Keeps a network's activations inside its float range by exact power-of-two rescaling.

    With |W| and no BN, activations grow ~10-1000x per cell; the robust copy of an NB201 net reaches
    1e60, beyond float32's 3e38. Every output of the network's ``trunk_blocks`` (stem and cells)
    above ``_range_limit`` is multiplied by 2^-e (exact) and its exponent e is tracked per tensor
    (DARTS cells align their two inputs). Where the network is not positively homogeneous the true
    units are restored: the train-mode BN of its ``batch_norm_branches`` (NB201 reductions: eps
    times 4^-e, branch output times 2^-e) and the classifier bias (times 2^-e); ``_loss`` handles
    the softmax. Gradients come out as 2^-e times the true ones, which CRoZe only uses through
    directions, signs and cosines (``_scaled_sum``/``_updated`` restore units). A network without
    ``trunk_blocks`` is not rescaled (e stays 0).
    """

    def __init__(self, net: nn.Module, dtype: torch.dtype) -> None:
        self.limit = _range_limit(dtype)
        self.reset()
        for block in _trunk_blocks(net):
            block.register_forward_pre_hook(self._before_block)
            block.register_forward_hook(self._after_block)
        for branch in _batch_norm_branches(net):
            self._guard_branch(branch)
        classifier = _final_linear(net)
        if classifier is not None:
            classifier.register_forward_hook(self._classifier)

    def reset(self) -> None:
        self.exponents: dict[int, int] = {}
        self.offsets: dict[int, int] = {}  # id(layer) -> e: its gradient is 2^e times the others'
        self.entry = 0  # exponent of the current block's input
        self.exponent = 0  # exponent of the latest block output (the classifier's input)

    def _before_block(self, module: nn.Module, args: tuple) -> tuple:
        exponents = [self.exponents.get(id(a), 0) if torch.is_tensor(a) else None for a in args]
        self.entry = max(e for e in exponents if e is not None)
        return tuple(a if e in (None, self.entry) else a * 2.0 ** (e - self.entry) for a, e in zip(args, exponents))

    def _after_block(self, module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
        exponent, largest = self.entry, float(output.detach().abs().max())
        if largest > self.limit:
            shift = int(math.frexp(largest)[1])
            output, exponent = output * 2.0**-shift, exponent + shift
        self.exponents[id(output)] = self.exponent = exponent
        return output

    def _guard_branch(self, branch: tuple[nn.Module, ...]) -> None:
        """Train-mode BN makes the branch scale-free: it runs in true units (its first BN's eps times
        4^-e), its output joins the residual times 2^-e, and its backward runs 2^e larger (undone at
        its input) so that its weight gradients do not underflow; ``offsets`` records e."""
        modules = [m for part in branch for m in part.modules()]
        norms = [m for m in modules if isinstance(m, BATCH_NORMS)]
        if not norms:
            return  # BN disabled: the branch is homogeneous
        base_eps = norms[0].eps
        layers = [m for m in modules if isinstance(m, WEIGHT_LAYERS)]

        def enter(module: nn.Module, args: tuple) -> tuple | None:
            norms[0].eps = base_eps * 4.0**-self.entry
            self.offsets.update((id(layer), self.entry) for layer in layers)
            return (_ScaledGradient.apply(args[0], 1.0, 2.0**-self.entry),) if self.entry else None

        def leave(module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor | None:
            return _ScaledGradient.apply(output, 2.0**-self.entry, 1.0) if self.entry else None

        branch[0].register_forward_pre_hook(enter)
        branch[-1].register_forward_hook(leave)

    def _classifier(self, module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor | None:
        if self.exponent == 0 or module.bias is None:
            return None
        return F.linear(args[0], module.weight, module.bias * 2.0**-self.exponent)


class _ScaledGradient(torch.autograd.Function):
    """Multiplies the value by ``forward_scale`` and the gradient by ``backward_scale``."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, forward_scale: float, backward_scale: float) -> torch.Tensor:
        ctx.backward_scale = backward_scale
        return x * forward_scale

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        return grad * ctx.backward_scale, None, None


def _loss(logits: torch.Tensor, y: torch.Tensor, exponent: int) -> torch.Tensor:
    """Cross-entropy of the true logits 2^exponent * logits, differentiated w.r.t. ``logits`` / 2^exponent."""
    if exponent == 0:
        return F.cross_entropy(logits, y)
    shifted = logits.detach().double() - logits.detach().double().amax(dim=1, keepdim=True)
    # softmax(2^e * logits); beyond 2^1000 every non-maximal class has probability 0 anyway
    weights = (F.softmax(shifted * 2.0 ** min(exponent, 1000), dim=1) - F.one_hot(y, logits.shape[1])) / len(y)
    return (logits * weights.to(logits.dtype)).sum()


def _scaled_sum(
    a: Sequence[torch.Tensor | None], a_exps: Sequence[int], b: Sequence[torch.Tensor | None], b_exps: Sequence[int]
) -> tuple[list[torch.Tensor | None], list[int]]:
    """Per layer, the sum of two gradients given as 2^-a_exp and 2^-b_exp times their true values,
    and its exponent."""
    summed, exponents = [], []
    for p, p_exp, q, q_exp in zip(a, a_exps, b, b_exps):
        top = max(p_exp, q_exp)
        summed.append(None if p is None or q is None else p * 2.0 ** (p_exp - top) + q * 2.0 ** (q_exp - top))
        exponents.append(top)
    return summed, exponents


@dataclass
class _Pass:
    """One forward/backward: tap features, weight gradients (2^-exponent times true, per weight), and
    the input gradient (its sign is what counts)."""

    features: list[torch.Tensor] | None
    grads: Sequence[torch.Tensor | None]
    exponents: list[int]
    x_grad: torch.Tensor | None = None


def _run(
    net: nn.Module, guard: _RangeGuard, x: torch.Tensor, y: torch.Tensor, weights: dict[str, torch.Tensor],
    *, taps: bool, input_grad: bool = False, weight_grads: bool = True,
) -> _Pass:  # fmt: skip
    """Forward ``net`` with its Conv2d/Linear weights replaced by ``weights``, then the loss gradient."""
    x = x.clone().requires_grad_(True) if input_grad else x
    guard.reset()
    logits, features = _forward_with_taps(net, weights, guard, x) if taps else (_forward(net, weights, x), None)
    wanted = ([x] if input_grad else []) + (list(weights.values()) if weight_grads else [])
    grads = torch.autograd.grad(_loss(logits, y, guard.exponent), wanted, allow_unused=True)
    layers = [net.get_submodule(key.rsplit(".", 1)[0]) for key in weights]
    exponents = [guard.exponent - guard.offsets.get(id(layer), 0) for layer in layers]
    return _Pass(features, grads[int(input_grad) :], exponents, grads[0] if input_grad else None)


def _forward(net: nn.Module, weights: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    return logits_of(functional_call(net, weights, (x,)))


def _forward_with_taps(
    net: nn.Module, weights: dict[str, torch.Tensor], guard: _RangeGuard, x: torch.Tensor
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Logits and the feature taps in true units, float64 (the taps after the guard's rescaling);
    a tap module's output, or the classifier's input where the classifier is a tap."""
    taps, classifier = feature_taps(net), _final_linear(net)
    features: list[torch.Tensor | None] = [None] * len(taps)

    def record(index: int, tensor: torch.Tensor) -> None:
        features[index] = _for_cosine(tensor.detach(), guard.exponents.get(id(tensor), guard.exponent))

    def recorder(index: int, tap: nn.Module) -> RemovableHandle:
        if tap is classifier:
            return tap.register_forward_pre_hook(lambda module, args: record(index, args[0]))
        return tap.register_forward_hook(lambda module, args, output: record(index, output))

    handles = [recorder(index, tap) for index, tap in enumerate(taps)]
    try:
        logits = _forward(net, weights, x)
    finally:
        for handle in handles:
            handle.remove()
    return logits, features  # type: ignore[return-value]


def _for_cosine(tensor: torch.Tensor, exponent: int = 0) -> torch.Tensor:
    """``tensor`` * 2^exponent (its true units) in float64, where the cosine's eps floor means what it
    means in the official code; divided down to |max| < 1 instead where the squares of the true
    values would overflow float64 (there the official code's cosine is 0: full-size ARNAS nets)."""
    tensor = tensor.double()
    largest = float(tensor.abs().max()) if tensor.numel() else 0.0
    if largest == 0.0 or not math.isfinite(largest):
        return tensor
    top = math.frexp(largest)[1]
    shift = exponent if top + exponent <= SQUARE_SAFE_EXPONENT else -top
    return tensor if shift == 0 else tensor * 2.0**shift


@torch.no_grad()
def perturb_weights(weights: Sequence[torch.Tensor], grads: Sequence[torch.Tensor | None], beta: float) -> None:
    """W += beta * ||W||_F * g / (||g||_F + 1e-30), in place, per layer (spec A.3 step 3).

    The official code takes g as the difference of one ascent step of lr 1e-3; only the direction
    counts, so any positive scale of g gives the same result. Norms are taken in float64 (no
    overflow of float32 squares). Layers without gradient stay as they are.
    """
    for weight, grad in zip(weights, grads):
        if grad is None:
            continue
        direction = grad.double()
        scale = weight.double().norm() / (direction.norm() + NORM_EPS)
        weight.add_((beta * (scale * direction)).to(weight.dtype))


def _pixel_stats(
    mean: Sequence[float] | None, std: Sequence[float] | None, like: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, std) as [1, C, 1, 1] tensors like the batch, for the pixel-space input step."""
    if mean is None or std is None:
        raise RobustnasError(
            "CRoZe with fgsm_space='pixel' (mode='paper') needs the batch's normalisation: pass mean=..., std=... "
            "(e.g. robustnas.data.normalization('cifar10'))"
        )
    shape = (1, -1) + (1,) * (like.dim() - 2)
    mean_t = torch.as_tensor(mean, dtype=like.dtype, device=like.device).reshape(shape)
    std_t = torch.as_tensor(std, dtype=like.dtype, device=like.device).reshape(shape)
    if mean_t.shape[1] != like.shape[1] or std_t.shape[1] != like.shape[1] or bool((std_t <= 0).any()):
        raise RobustnasError(
            f"CRoZe mean/std need one value per input channel ({like.shape[1]}) and std > 0, got mean={mean}, std={std}"
        )
    return mean_t, std_t


def input_step(
    x: torch.Tensor, x_grad: torch.Tensor, settings: CrozeSettings, pixel: tuple[torch.Tensor, torch.Tensor] | None
) -> torch.Tensor:
    """x' = x + sign*eps*sign(dL/dx), optionally clamped to [0, 1], in ``fgsm_space`` (spec A.3 step 4).

    The sign of the gradient is the same in pixel and normalised space (std > 0).
    """
    step = (settings.fgsm_sign * settings.eps) * x_grad.sign()
    if settings.fgsm_space == "normalized":
        moved = x + step
        return moved.clamp(0, 1) if settings.clamp else moved
    mean, std = pixel  # type: ignore[misc]
    moved = x * std + mean + step
    return ((moved.clamp(0, 1) if settings.clamp else moved) - mean) / std


def _cosine_sum(a: torch.Tensor, b: torch.Tensor, offset: float, absolute: bool = False) -> float:
    """sum(offset + [abs] cos_d0(a, b)), on float64 values whose squares cannot overflow."""
    cosine = F.cosine_similarity(_for_cosine(a), _for_cosine(b), dim=0, eps=COSINE_EPS)
    return float(((cosine.abs() if absolute else cosine) + offset).sum())


# ---- the proxy ------------------------------------------------------------------------------
def _settings(mode: str | CrozeSettings) -> CrozeSettings:
    if isinstance(mode, CrozeSettings):
        return mode
    if mode not in MODES:
        raise RobustnasError(f"unknown CRoZe mode {mode!r}; choose one of {', '.join(MODES)} or pass CrozeSettings")
    return MODES[mode]


@torch.enable_grad()
def croze_layers(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    mode: str | CrozeSettings = "official",
    dtype: torch.dtype = torch.float64,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> list[CrozeLayer]:
    """CRoZe's per-layer terms for ``model`` (any classifier, not modified; see the module doc for the
    feature taps) on (x, y).

    ``x`` is the normalised batch the network takes, of which the first ``batch_size`` images are
    used (8 in both presets, the official batch size; the proxy CLI passes 64, so the choice is
    deterministic). ``mode`` is a preset name or ``CrozeSettings``; ``mean``/``std`` (pixel units,
    e.g. ``robustnas.data.normalization("cifar10")``) are needed only for the pixel-space input
    step. Deterministic: nothing random beyond the network's initialisation and the batch.
    """
    settings = _settings(mode)
    if x.shape[0] != y.shape[0]:
        raise RobustnasError(f"CRoZe needs one label per image, got {x.shape[0]} images and {y.shape[0]} labels")
    count = x.shape[0] if settings.batch_size is None else min(settings.batch_size, x.shape[0])
    x, y = x[:count].detach().to(dtype), y[:count].to(x.device)
    pixel = _pixel_stats(mean, std, x) if settings.fgsm_space == "pixel" else None

    clean = _clean_copy(model, settings, dtype)
    guard = _RangeGuard(clean, dtype)
    names = [name for name, _ in _weights(clean)]
    weights = {f"{name}.weight": weight for name, weight in _weights(clean)}
    robust = {key: weight.detach().clone() for key, weight in weights.items()}  # the robust surrogate's

    # The clean gradient is also the official throw-away copy's: its weights are the same.
    clean_pass = _run(clean, guard, x, y, weights, taps=True)
    perturb_weights(list(robust.values()), clean_pass.grads, settings.beta)
    robust = {key: weight.requires_grad_(True) for key, weight in robust.items()}
    at_x = _run(clean, guard, x, y, robust, taps=False, input_grad=True, weight_grads=settings.accumulate_fgsm_grad)
    x_adv = input_step(x, at_x.x_grad, settings, pixel).detach()  # type: ignore[arg-type]
    robust_pass = _run(clean, guard, x_adv, y, robust, taps=True)
    robust_grads, robust_exps = robust_pass.grads, robust_pass.exponents
    if settings.accumulate_fgsm_grad:
        robust_grads, robust_exps = _scaled_sum(at_x.grads, at_x.exponents, robust_grads, robust_exps)

    taps = layer_taps(clean, settings.nb201_taps)
    features, robust_features = clean_pass.features, robust_pass.features
    feature_terms: dict[int, float] = {}
    layers = []
    gradients = zip(clean_pass.grads, clean_pass.exponents, robust_grads, robust_exps)
    for name, w, w_r, (g, g_exp, g_r, g_r_exp) in zip(names, weights.values(), robust.values(), gradients):
        tap = taps[name]
        if g is None or g_r is None:
            layers.append(CrozeLayer(name, tap, False, 0.0, 0.0, 0.0))
            continue
        w, w_r = w.detach(), w_r.detach()
        if settings.update_lr > 0:
            w, w_r = _updated(w, g, g_exp, settings.update_lr), _updated(w_r, g_r, g_r_exp, settings.update_lr)
        if tap not in feature_terms:
            feature_terms[tap] = _cosine_sum(robust_features[tap], features[tap], 1.0)  # type: ignore[index]
        gradient_term = _cosine_sum(_for_cosine(g_r, g_r_exp), _for_cosine(g, g_exp), 0.0, absolute=True)
        layers.append(CrozeLayer(name, tap, True, _cosine_sum(w_r, w, 1.0), gradient_term, feature_terms[tap]))
    return layers


def _updated(weight: torch.Tensor, grad: torch.Tensor, exponent: int, lr: float) -> torch.Tensor:
    """One SGD step W - lr * g (paper Eq. 7), in float64, g given as 2^-exponent times its value."""
    return weight.double() - lr * (grad.double() * 2.0**exponent)


def croze_score(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    mode: str | CrozeSettings = "official",
    dtype: torch.dtype = torch.float64,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> float:
    """CRoZe = sum over Conv2d/Linear layers of |P*G*Z| (higher = more robust); see ``croze_layers``."""
    return float(sum(layer.score for layer in croze_layers(model, x, y, mode=mode, dtype=dtype, mean=mean, std=std)))


@register(
    "croze",
    needs_data=True,
    needs_labels=True,
    higher_is_better=True, passes=1.22,
    cost="3 forwards + 3 backwards (clean and robust weights), first 8 images, float64",
)
def croze(ev: Evaluation) -> float:
    """CRoZe (Ha et al. 2023), the released code's behaviour: clean/robust copy consistency on 8 images."""
    return croze_score(ev.model, ev.x, ev.labels(), mode="official")  # works on its own copies
