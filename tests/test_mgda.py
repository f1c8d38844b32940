"""The minimum-norm solver of MGDA (search/_mgda.py) against grid searches and known cases."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from robustnas.search._mgda import min_norm_direction, min_norm_weights, two_point_weight


def norm_of(weights, vectors) -> float:
    return float(np.linalg.norm(np.asarray(weights) @ np.stack(vectors)))


@pytest.mark.parametrize("seed", range(5))
def test_two_gradients_closed_form_equals_a_grid_search(seed):
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=50), rng.normal(size=50) + (seed - 2)  # some pairs at the boundary
    weights = min_norm_weights([torch.tensor(a), torch.tensor(b)])
    grid = np.linspace(0, 1, 100_001)
    norms = np.linalg.norm(grid[:, None] * a + (1 - grid[:, None]) * b, axis=1)
    assert norm_of(weights, [a, b]) <= norms.min() + 1e-12
    assert abs(float(weights[0]) - grid[norms.argmin()]) <= 1e-5


def test_boundary_cases_and_the_zero_over_zero_guard():
    a, b = torch.tensor([1.0, 0.0]), torch.tensor([2.0, 1.0])  # a·b = 2 >= a·a = 1: a itself is the point
    assert min_norm_weights([a, b]).tolist() == [1.0, 0.0]
    assert min_norm_weights([b, a]).tolist() == [0.0, 1.0]
    same = torch.tensor([0.3, -0.4])
    assert min_norm_weights([same, same.clone()]).tolist() == [0.5, 0.5]  # 0/0: any point, the middle
    assert two_point_weight(0.0, 0.0, 0.0) == 0.5
    opposite = min_norm_direction([a, -a])[1]
    assert torch.equal(opposite, torch.zeros(2))  # a conflict: no common descent direction


def test_orthogonal_unit_gradients_meet_at_the_centroid():
    basis = list(torch.eye(3, dtype=torch.float64))
    weights, direction = min_norm_direction(basis)
    assert torch.allclose(weights, torch.full((3,), 1 / 3, dtype=torch.float64), atol=1e-9)
    assert float(direction.norm() ** 2) == pytest.approx(1 / 3, abs=1e-12)


@pytest.mark.parametrize("seed", range(4))
def test_three_gradients_frank_wolfe_matches_a_simplex_grid(seed):
    rng = np.random.default_rng(10 + seed)
    vectors = [rng.normal(size=6) + shift for shift in (0.0, 0.5 * seed, -0.3)]
    weights = min_norm_weights([torch.tensor(v) for v in vectors])
    assert torch.all(weights >= 0) and float(weights.sum()) == pytest.approx(1.0, abs=1e-12)
    steps = 400
    best = min(
        norm_of((i / steps, j / steps, 1 - (i + j) / steps), vectors)
        for i, j in itertools.product(range(steps + 1), repeat=2)
        if i + j <= steps
    )
    assert norm_of(weights, vectors) <= best + 1e-6


def test_the_direction_keeps_the_gradients_shape_and_dtype():
    grads = [torch.randn(14, 7, generator=torch.Generator().manual_seed(s)) for s in range(2)]
    weights, direction = min_norm_direction(grads)
    assert direction.shape == (14, 7) and direction.dtype == torch.float32 and weights.dtype == torch.float64
