"""Deterministic batches: [0,1] float32 NCHW tensors and int64 labels from an ImageSet.

All randomness comes from one ``numpy.random.default_rng(seed)`` per call, drawn in a fixed
order (image choice, then crop offsets, then flips), so a seed gives the same batch bit for bit
on every machine. Training augmentation is the one NB201 (Dong & Yang 2020) trains with and
NAS-Bench-Suite-Zero draws proxy batches with (spec zero-cost-proxies-and-rf-study.md §1.1):
random crop after zero padding (4 px for 32x32 CIFAR, 2 px for 16x16 ImageNet16; 4 px, the
common choice, for 64x64 Tiny-ImageNet) and a horizontal flip with probability 1/2.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np
import torch

from robustnas.data._imageset import ImageSet
from robustnas.errors import RobustnasError


def crop_padding(size: int) -> int:
    """Padding of the random crop: 2 px for 16 px images, 4 px for 32 px and larger."""
    return min(4, max(1, size // 8))


def sample_batch(
    images: ImageSet, batch_size: int, seed: int, augment: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """``batch_size`` distinct images chosen by ``seed``: (x float32 [B,3,H,W] in [0,1], y int64 [B])."""
    if not 1 <= batch_size <= len(images):
        raise RobustnasError(
            f"batch_size must be in 1..{len(images)} (the images in {images.source}), got {batch_size}"
        )
    rng = np.random.default_rng(seed)
    positions = rng.choice(len(images), size=batch_size, replace=False)
    return _to_tensors(images, positions, rng if augment else None)


def iterate_batches(
    images: ImageSet, batch_size: int, seed: int, augment: bool = False, drop_last: bool = False
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """One epoch over all images in an order shuffled by ``seed`` (use a new seed per epoch).

    ``drop_last`` skips a final short batch (batch-norm training needs more than one image).
    """
    if batch_size < 1:
        raise RobustnasError(f"batch_size must be a positive integer, got {batch_size}")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(images))
    stop = len(order) - len(order) % batch_size if drop_last else len(order)
    for start in range(0, stop, batch_size):
        yield _to_tensors(images, order[start : start + batch_size], rng if augment else None)


def _to_tensors(
    images: ImageSet, positions: np.ndarray, rng: np.random.Generator | None
) -> tuple[torch.Tensor, torch.Tensor]:
    pixels = images.images[positions]
    if rng is not None:
        pixels = random_crop_flip(pixels, rng)
    x = torch.from_numpy(
        np.ascontiguousarray(pixels.transpose(0, 3, 1, 2), dtype=np.float32) / np.float32(255)
    )
    return x, torch.from_numpy(images.labels[positions].copy())


def random_crop_flip(pixels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Zero-pad, crop back to H x W at a random offset and flip half of the images (uint8 NHWC)."""
    count, height, width, _ = pixels.shape
    pad = crop_padding(min(height, width))
    padded = np.pad(pixels, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    top = rng.integers(0, 2 * pad + 1, size=count)
    left = rng.integers(0, 2 * pad + 1, size=count)
    flip = rng.random(count) < 0.5
    rows = top[:, None] + np.arange(height)[None, :]
    columns = left[:, None] + np.arange(width)[None, :]
    columns = np.where(flip[:, None], columns[:, ::-1], columns)
    return padded[np.arange(count)[:, None, None], rows[:, :, None], columns[:, None, :]]
