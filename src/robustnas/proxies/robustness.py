"""The two robustness proxies of the robustness dataset (Jung et al. 2023; spec
zero-cost-proxies-and-rf-study.md §2.2, §2.3): the Frobenius norm of the input-output Jacobian
(``jacob_fro``) and the dominant (largest-magnitude) eigenvalue of the input Hessian of the loss
(``hessian_eig``), found by the Lanczos method with full reorthogonalisation.

Both run, like the suite proxies, on a fresh train-mode copy of the untrained network (BatchNorm
uses batch statistics), so the samples of the batch are coupled through the batch statistics;
``ev.model`` is never changed. Eval-mode BatchNorm is deliberately not offered.

Public functions for use outside ``score``:

    jacobian_frobenius(model, x, n_proj=None, seed=0)                  -> float
    hessian_eig_details(model, x, y, wrt="input", max_iter=100, tol=1e-4, seed=0)
        -> HessianEig(value, iterations, converged, relative_change)

``relative_change`` is the larger relative Lanczos residual bound of the two extreme Ritz values at
the last step (|beta_k s_k| / |theta|, error bounds for them), not a change between iterates.

With the same ``seed`` they return exactly what ``score(model, x, y, seed=seed)`` reports.
"""
from __future__ import annotations

import math
from typing import Callable, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from robustnas.errors import RobustnasError
from robustnas.proxies._evaluation import Evaluation, logits_of
from robustnas.proxies._registry import ProxyUndefined, register

HESSIAN_MAX_ITER = 100
HESSIAN_TOL = 1e-4
HESSIAN_WRT = ("input", "parameters")
INVARIANT = 1e-12  # beta_k <= INVARIANT * ||T_k||: the Krylov space is invariant, the Ritz values are exact
NO_INPUT_PATH = "the output does not depend on the input (no path from the input to the logits)"

Vectors = list[torch.Tensor]


# ---- jacob_fro (§2.2) -----------------------------------------------------------------------
@register(
    "jacob_fro",
    needs_data=True,
    needs_labels=False,
    higher_is_better=False, passes=4.48,
    cost="1 forward + min(C, K) backwards (C classes, K features into a linear classifier)",
)
def jacob_fro(ev: Evaluation) -> float:
    """Half the mean squared Frobenius norm of the input-output Jacobian, exact (Hoffman et al. 2019)."""
    return _jacobian_frobenius(ev, n_proj=None)


def jacobian_frobenius(model: nn.Module, x: torch.Tensor, *, n_proj: int | None = None, seed: int = 0) -> float:
    """``jacob_fro`` of ``model`` on the batch ``x`` (``model`` itself is not changed).

    ``n_proj=None``: exact, one backward per class with the one-hot cotangent e_c for all samples
    at once, jf = 1/2 * 1/B * sum_c ||d(sum_n logit_c(x_n))/dX||_F^2. Where the samples are
    independent (no train-mode BatchNorm) row b of that gradient is row c of J(x_b), so
    jf = 1/2 * 1/B * sum_b ||J(x_b)||_F^2 exactly. With train-mode BatchNorm it is the Jacobian of
    the batch-summed logits: sample b's block is sum_n d logits(x_n)/d x_b (its own block plus the
    couplings through the batch statistics), exactly what Hoffman et al.'s reference code computes
    in its exact mode, and consistent with the suite's input Jacobian (d sum of logits / dx) of
    jacov and epe_nas. (The diagonal blocks alone would need B*C backwards.) On 12 untrained NB201
    networks at batch 16 this value was 2.8-10x smaller than the diagonal-block and full-batch
    values but ranked the networks identically (Spearman 1.0 between all three). Where the logits
    are the output of a plain ``nn.Linear`` with K < C input features (NB201 on CIFAR-100: K=64,
    C=100) the same value takes K backwards from the features instead of C (see _head_cotangents).

    ``n_proj=k``: Hoffman et al.'s random-projection estimator, R = 1/2 * C/(k*B) * sum ||v_b^T J||^2
    with v_b uniform on the unit sphere of R^C, independent per sample and projection, drawn from
    the seed. Its expectation is 1/2 * 1/B * sum_{n,b} ||d logits(x_n)/d x_b||_F^2: the exact value
    above where the samples are independent; with train-mode BatchNorm the cross-sample blocks enter
    squared instead of summed.
    """
    if n_proj is not None and (isinstance(n_proj, bool) or not isinstance(n_proj, int) or n_proj < 1):
        raise RobustnasError(f"n_proj must be a positive integer (or None for the exact value), got {n_proj!r}")
    return _jacobian_frobenius(Evaluation(model, x, seed=seed), n_proj)


def _jacobian_frobenius(ev: Evaluation, n_proj: int | None) -> float:
    net = ev.fresh_copy()
    x = ev.x.detach().clone().requires_grad_(True)
    linear_calls = _record_linear_calls(net)
    try:
        logits = logits_of(net(x))
    finally:
        linear_calls.remove()
    head = linear_calls.producing(logits)
    if n_proj is not None:
        cotangents = _sphere_cotangents(logits, n_proj, ev.generator("jacob_fro"))
        outputs, weights = logits, [logits.shape[1] / n_proj] * n_proj
    elif head is not None and head.features.shape[1] < logits.shape[1]:
        outputs, (cotangents, weights) = head.features, _head_cotangents(head)
    else:
        outputs, cotangents, weights = logits, _one_hot_cotangents(logits), [1.0] * logits.shape[1]
    if not outputs.requires_grad:  # e.g. the features of a head whose input ignores x
        raise ProxyUndefined(NO_INPUT_PATH)
    squared = 0.0
    for cotangent, weight in zip(cotangents, weights):
        (grad,) = torch.autograd.grad(outputs, x, grad_outputs=cotangent, retain_graph=True, allow_unused=True)
        if grad is None:
            raise ProxyUndefined(NO_INPUT_PATH)
        squared += weight * float(grad.double().pow(2).sum())
    if squared == 0.0:
        raise ProxyUndefined(NO_INPUT_PATH + "; the Jacobian is exactly zero")
    return 0.5 * squared / logits.shape[0]


class _LinearHead(NamedTuple):
    """A plain nn.Linear call: logits = features W^T + b."""

    weight: torch.Tensor  # [C, K]
    features: torch.Tensor  # [B, K], its input
    output: torch.Tensor  # [B, C]


class _LinearCalls:
    """Forward hooks recording every plain ``nn.Linear`` call of one forward."""

    def __init__(self) -> None:
        self.calls: list[_LinearHead] = []
        self.handles: list = []

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()

    def producing(self, logits: torch.Tensor) -> _LinearHead | None:
        """The call whose output is the very logits tensor (so d logits/dX = W dfeatures/dX), if any."""
        return next((call for call in self.calls if call.output is logits and call.features.dim() == 2), None)


def _record_linear_calls(net: nn.Module) -> _LinearCalls:
    calls = _LinearCalls()
    for module in net.modules():
        if type(module) is nn.Linear:  # subclasses may compute something else
            hook = lambda m, inputs, output: calls.calls.append(_LinearHead(m.weight, inputs[0], output))
            calls.handles.append(module.register_forward_hook(hook))
    return calls


def _head_cotangents(head: _LinearHead) -> tuple[list[torch.Tensor], list[float]]:
    """Exact jacob_fro through a narrow head with K < C backwards instead of C.

    sum_c ||W_c . dF/dX||^2 = sum_kl (W^T W)_kl <dF_k/dX, dF_l/dX> = sum_i lambda_i ||v_i . dF/dX||^2
    with W^T W = V diag(lambda) V^T: backpropagate each eigenvector v_i (the same row for every
    sample, as e_c is for the logits) from the features F and weight its squared norm by lambda_i.
    """
    eigenvalues, eigenvectors = torch.linalg.eigh(head.weight.detach().double().T @ head.weight.detach().double())
    features = head.features
    cotangents = [eigenvectors[:, i].to(features.dtype).expand_as(features) for i in range(len(eigenvalues))]
    return cotangents, [float(value) for value in eigenvalues.clamp_min(0.0)]  # W^T W is PSD


def _one_hot_cotangents(logits: torch.Tensor) -> list[torch.Tensor]:
    """e_c for every sample at once, c = 1..C."""
    eye = torch.eye(logits.shape[1], dtype=logits.dtype, device=logits.device)
    return [eye[c].expand_as(logits) for c in range(logits.shape[1])]


def _sphere_cotangents(logits: torch.Tensor, n_proj: int, generator: torch.Generator) -> list[torch.Tensor]:
    """``n_proj`` [B, C] cotangents whose rows are uniform on the unit sphere (normalised Gaussians)."""
    draws = []
    for _ in range(n_proj):
        gauss = torch.randn(logits.shape, generator=generator, dtype=logits.dtype, device=logits.device)
        draws.append(gauss / gauss.norm(dim=1, keepdim=True))
    return draws


# ---- hessian_eig (§2.3) ---------------------------------------------------------------------
class HessianEig(NamedTuple):
    """Lanczos result: the eigenvalue estimate and how it got there."""

    value: float  # Ritz value of largest magnitude (signed) of the last tridiagonal T_k
    iterations: int  # Hessian-vector products done
    converged: bool  # relative residual bound below tol, or an invariant Krylov space (exact)
    relative_change: float  # relative residual bound |beta_k s_k[k]| / |theta| at the last step


@register(
    "hessian_eig",
    needs_data=True,
    needs_labels=True,
    higher_is_better=False, passes=168.5,
    cost=f"1 forward + double backward + up to {HESSIAN_MAX_ITER} Hessian-vector products (Lanczos, "
    f"until the relative residual bound is below {HESSIAN_TOL:g})",
)
def hessian_eig(ev: Evaluation) -> float:
    """Dominant eigenvalue of the input Hessian of the mean cross-entropy (Zhao et al. 2020), Lanczos.

    Not converging within 100 products is not an error: the last estimate is returned and
    ``hessian_eig_details`` (same seed) reports products, convergence and the last relative
    residual bound.
    """
    return _hessian_eig(ev, "input", HESSIAN_MAX_ITER, HESSIAN_TOL).value


def hessian_eig_details(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    wrt: str = "input",
    max_iter: int = HESSIAN_MAX_ITER,
    tol: float = HESSIAN_TOL,
    seed: int = 0,
) -> HessianEig:
    """Dominant eigenvalue of the Hessian of the mean cross-entropy of (x, y), by Lanczos (``model`` is not changed).

    ``wrt="input"``: H = d^2 L / dX^2 for the whole batch tensor X (``hessian_eig``; with train-mode
    BatchNorm the samples are coupled, so H is not block-diagonal). ``wrt="parameters"``: the
    Hessian w.r.t. all trainable parameters (PyHessian style, the spec's alternative).
    Hv = d<dL/dX, v>/dX by double backprop; the Lanczos start vector is Gaussian from the seed.
    The estimate is the Ritz value of largest magnitude, with its sign: the eigenvalue of largest
    magnitude, lambda_max wherever H is positive semi-definite (e.g. piecewise-linear networks
    without batch coupling, any parameter Hessian of a linear softmax). Train-mode BatchNorm makes
    H indefinite: with power iteration the value was negative for 22 of 30 untrained NB201
    networks at batch 64. Lanczos stops when the residual bounds of both extreme Ritz values,
    |beta_k s_k[k]| (Golub & Van Loan 2013, §10.1.4), relative to |theta|, are below ``tol`` (default 1e-4),
    on an invariant Krylov space (exact), or after ``max_iter`` products (default 100).
    ``relative_change`` reports that bound at the last step. The basis is kept in float64
    (max_iter vectors of the size of X, or of all parameters for ``wrt="parameters"``).
    Raises ProxyUndefined where the loss does not depend on the input.
    """
    if wrt not in HESSIAN_WRT:
        raise RobustnasError(f"wrt must be one of {', '.join(HESSIAN_WRT)}, got {wrt!r}")
    if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
        raise RobustnasError(f"max_iter must be a positive integer, got {max_iter!r}")
    if not tol > 0:
        raise RobustnasError(f"tol must be a positive number, got {tol!r}")
    return _hessian_eig(Evaluation(model, x, y, seed=seed), wrt, max_iter, tol)


def _hessian_eig(ev: Evaluation, wrt: str, max_iter: int, tol: float) -> HessianEig:
    net = ev.fresh_copy()
    x = ev.x.detach().clone().requires_grad_(wrt == "input")
    loss = F.cross_entropy(logits_of(net(x)), ev.labels())
    variables = [x] if wrt == "input" else [p for p in net.parameters() if p.requires_grad]
    grads = torch.autograd.grad(loss, variables, create_graph=True, allow_unused=True)
    # Variables the loss does not reach have zero Hessian rows: leaving them out keeps lambda.
    pairs = [(variable, grad) for variable, grad in zip(variables, grads) if grad is not None]
    if wrt == "input" and (not pairs or not bool(pairs[0][1].detach().any())):
        raise ProxyUndefined("the loss does not depend on the input (no path from the input to the logits)")
    generator = ev.generator("hessian_eig")
    start = [torch.randn(v.shape, generator=generator, dtype=v.dtype, device=v.device) for v, _ in pairs]
    return _lanczos(_hessian_vector_product(pairs), start, max_iter, tol)


def _hessian_vector_product(pairs: list[tuple[torch.Tensor, torch.Tensor]]) -> Callable[[Vectors], Vectors]:
    """v -> Hv with Hv = d<g, v>/dw, g = dL/dw built with create_graph (double backprop)."""
    variables = [variable for variable, _ in pairs]

    def product(vectors: Vectors) -> Vectors:
        inner = sum((grad * vector).sum() for (_, grad), vector in zip(pairs, vectors))
        if not inner.requires_grad:  # the gradient is constant: H = 0
            return [torch.zeros_like(vector) for vector in vectors]
        hv = torch.autograd.grad(inner, variables, retain_graph=True, allow_unused=True)
        return [h.detach() if h is not None else torch.zeros_like(v) for h, v in zip(hv, vectors)]

    return product


def _lanczos(product: Callable[[Vectors], Vectors], start: Vectors, max_iter: int, tol: float) -> HessianEig:
    """Eigenvalue of largest magnitude of the symmetric operator ``product`` by Lanczos from ``start``.

    Lanczos with full reorthogonalisation (modified Gram-Schmidt twice, float64) builds the
    tridiagonal T_k = Q_k^T H Q_k; its eigenpairs (theta, s) are the Ritz pairs, and
    ||H Q_k s - theta Q_k s|| = |beta_k s[k]| bounds the distance from theta to an eigenvalue of H
    (Golub & Van Loan 2013, §10.1.4). The extreme eigenvalues converge at both ends at once, so
    two close magnitudes of opposite sign, where power iteration stalls, cost no extra products.
    """
    dimension = sum(v.numel() for v in start)
    basis = [_unit(_flat(start))]
    alphas: list[float] = []
    betas: list[float] = []
    for k in range(1, max_iter + 1):
        w = _flat(product(_unflat(basis[-1], start)))
        alphas.append(float(basis[-1] @ w))
        for _ in range(2):  # "twice is enough" (Parlett 1998, §6.9)
            for q in basis:
                w -= (q @ w) * q
        betas.append(float(w.norm()))
        theta, bound = _dominant_ritz(alphas, betas)
        relative = 0.0 if bound == 0.0 else bound / abs(theta) if theta != 0.0 else math.inf
        invariant = betas[-1] <= INVARIANT * max(abs(theta), abs(betas[-1])) or k == dimension
        if invariant or relative < tol:
            return HessianEig(theta, k, True, relative)
        basis.append(w / betas[-1])
    return HessianEig(theta, max_iter, False, relative)


def _dominant_ritz(alphas: list[float], betas: list[float]) -> tuple[float, float]:
    """Ritz value of largest magnitude of T_k (diagonal alphas, off-diagonal betas[:-1]) and the larger
    residual bound of the two extreme Ritz pairs.

    Both ends must have settled, not only the current largest magnitude: otherwise an isolated
    eigenvalue at the other end, not yet found, could have the larger magnitude (a dense cluster
    at +4 with an isolated -3.99 fooled the one-end rule; both ends cost 0-14 more products on 8
    NB201 networks).
    """
    diagonal = torch.tensor(alphas, dtype=torch.float64)
    off = torch.tensor(betas[:-1], dtype=torch.float64)
    tridiagonal = torch.diag(diagonal) + torch.diag(off, 1) + torch.diag(off, -1)
    values, vectors = torch.linalg.eigh(tridiagonal)
    index = int(values.abs().argmax())
    ends = abs(betas[-1]) * vectors[-1, [0, -1]].abs()
    return float(values[index]), float(ends.max())


def _flat(vectors: Vectors) -> torch.Tensor:
    """One float64 vector of all the tensors, in order."""
    return torch.cat([v.detach().reshape(-1).double() for v in vectors])


def _unflat(flat: torch.Tensor, like: Vectors) -> Vectors:
    """``flat`` cut back into tensors shaped (and typed) like ``like``."""
    pieces = flat.split([v.numel() for v in like])
    return [piece.reshape(v.shape).to(v.dtype) for piece, v in zip(pieces, like)]


def _unit(vector: torch.Tensor) -> torch.Tensor:
    return vector / vector.norm()
