"""The minimum-norm point of the convex hull of k gradients: MGDA's common descent direction.

Désidéri's MGDA (2012) moves along ``d = sum_k w_k g_k`` with ``w`` on the simplex minimising ``||d||``;
when ``d`` is not zero, ``-d`` decreases every objective. Sener & Koltun ("Multi-Task Learning as
Multi-Objective Optimization", NeurIPS 2018) solve it in closed form for two gradients and with
Frank-Wolfe for more (their Algorithm 2); ARNAS applies the two-gradient form to its natural and
adversarial architecture gradients (spec crose-and-arnas.md §B.2 step 3).

Everything works on the Gram matrix ``M = G Gᵀ`` of the gradients (k x k, float64), so the cost
beyond one matrix product does not grow with the number of parameters.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

FRANK_WOLFE_STEPS = 250
TOLERANCE = 1e-12


def two_point_weight(aa: float, ab: float, bb: float) -> float:
    """γ in [0, 1] minimising ``||γ a + (1 - γ) b||²`` from ``a·a``, ``a·b``, ``b·b``.

    ``γ* = clip((b - a)·b / ||b - a||², 0, 1)``; γ* = 1 when ``a·b >= a·a``, 0 when ``a·b >= b·b``.
    Equal vectors (0/0) give 0.5: every point of the segment is the same.
    """
    gap = aa - 2.0 * ab + bb  # ||a - b||²
    if gap <= TOLERANCE * max(aa, bb, 1e-300):
        return 0.5
    return min(1.0, max(0.0, (bb - ab) / gap))


def min_norm_weights(gradients: Sequence[torch.Tensor]) -> torch.Tensor:
    """The simplex weights (k,) of the minimum-norm point of the gradients' convex hull (float64).

    Two gradients: the closed form. More: Frank-Wolfe from the best pair, each step a line search
    toward the vertex with the smallest ``(M w)_i`` (Sener & Koltun 2018, Alg. 2).
    """
    flat = torch.stack([g.detach().reshape(-1).to(torch.float64) for g in gradients])
    gram = (flat @ flat.T).cpu()  # k x k: the solver runs on the CPU whatever the gradients' device
    k = len(gradients)
    if k == 1:
        return torch.ones(1, dtype=torch.float64)
    weights = _best_pair(gram)
    for _ in range(FRANK_WOLFE_STEPS if k > 2 else 0):
        products = gram @ weights
        vertex = int(torch.argmin(products))
        current = float(weights @ products)  # ||d||²
        gamma = two_point_weight(current, float(products[vertex]), float(gram[vertex, vertex]))
        step = torch.zeros_like(weights)
        step[vertex] = 1.0
        updated = gamma * weights + (1.0 - gamma) * step
        if float((updated - weights).abs().sum()) < TOLERANCE:
            break
        weights = updated
    return weights


def min_norm_direction(gradients: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(weights, d): the min-norm combination ``d = sum_k w_k g_k`` in the gradients' shape and dtype."""
    weights = min_norm_weights(gradients)
    direction = sum(float(w) * g.detach() for w, g in zip(weights, gradients))
    return weights, direction


def _best_pair(gram: torch.Tensor) -> torch.Tensor:
    """Weights of the minimum-norm point over every pair of gradients (Frank-Wolfe's start)."""
    k = gram.shape[0]
    best, best_norm = None, float("inf")
    for i in range(k):
        for j in range(i + 1, k):
            aa, ab, bb = float(gram[i, i]), float(gram[i, j]), float(gram[j, j])
            gamma = two_point_weight(aa, ab, bb)
            norm = gamma * gamma * aa + 2 * gamma * (1 - gamma) * ab + (1 - gamma) ** 2 * bb
            if norm < best_norm:
                best_norm, best = norm, (i, j, gamma)
    i, j, gamma = best  # type: ignore[misc]
    weights = torch.zeros(k, dtype=torch.float64)
    weights[i], weights[j] = gamma, 1.0 - gamma
    return weights
