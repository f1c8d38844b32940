"""Training data: any accepted input as NHWC pixels, seeded epochs with crop+flip and cutout.

An epoch's batches depend only on (seed, epoch): one ``numpy.random.default_rng([seed, epoch])``
draws the order, then per batch the crop offsets and flips (``robustnas.data.random_crop_flip``,
the NB201/CIFAR augmentation) and the cutout centres. A resumed run therefore sees exactly the
batches an uninterrupted run sees, without storing any data-loader state.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
import torch

from robustnas.data import ImageSet, random_crop_flip
from robustnas.errors import RobustnasError


@dataclass(frozen=True)
class Pixels:
    """Images [N,H,W,3] (uint8 0..255 or float32 in [0,1]) and int64 labels [N]."""

    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)


def as_pixels(data: Any, role: str) -> Pixels:
    """An ImageSet, or a pair (x, y): x uint8 [N,H,W,3], or float in [0,1] as [N,H,W,3] or [N,3,H,W]
    (numpy or torch), y integer labels [N]. ``role`` ("train_data", "val_data") names it in errors."""
    if isinstance(data, ImageSet):
        return Pixels(data.images, data.labels)
    if not (isinstance(data, (tuple, list)) and len(data) == 2):
        raise RobustnasError(f"{role} must be an ImageSet or a pair (x, y), got {type(data).__name__}")
    x, y = (t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t) for t in data)
    if x.ndim == 4 and x.shape[-1] != 3 and x.shape[1] == 3:
        x = x.transpose(0, 2, 3, 1)
    if x.ndim != 4 or x.shape[-1] != 3 or y.shape != (len(x),) or not np.issubdtype(y.dtype, np.integer):
        raise RobustnasError(
            f"{role}: need x [N,H,W,3] or [N,3,H,W] and N integer labels, "
            f"got x {list(x.shape)}, y {y.dtype} {list(y.shape)}"
        )
    if x.dtype != np.uint8:
        x = x.astype(np.float32)
        if x.size and (x.min() < 0 or x.max() > 1):
            raise RobustnasError(
                f"{role}: float images must be [0,1] pixels, got values in [{x.min():.3g}, {x.max():.3g}]"
            )
    return Pixels(np.ascontiguousarray(x), y.astype(np.int64))


def to_tensor(pixels: np.ndarray) -> torch.Tensor:
    """NHWC uint8 or [0,1] float -> float32 NCHW in [0,1]."""
    x = np.array(pixels.transpose(0, 3, 1, 2), dtype=np.float32, order="C")  # a contiguous copy: inputs may be read-only
    return torch.from_numpy(x / np.float32(255) if pixels.dtype == np.uint8 else x)


def epoch_batches(
    data: Pixels, batch_size: int, seed: int, epoch: int, augment: bool, cutout_length: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The training batches of ``epoch`` (shuffled, short last batch dropped for batch norm)."""
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(data))
    for start in range(0, len(order) - batch_size + 1, batch_size):
        positions = order[start : start + batch_size]
        pixels = data.images[positions]
        x = to_tensor(random_crop_flip(pixels, rng) if augment else pixels)
        if cutout_length:
            x = cutout(x, cutout_length, cutout_centres(len(x), x.shape[2], x.shape[3], rng))
        yield x, torch.from_numpy(data.labels[positions])


def eval_batches(data: Pixels, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The held-out images in order, unaugmented."""
    for start in range(0, len(data), batch_size):
        stop = start + batch_size
        yield to_tensor(data.images[start:stop]), torch.from_numpy(data.labels[start:stop].copy())


def cutout_centres(count: int, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """Square centres (row, column) uniform over the whole image, so squares may be cut by the border."""
    return np.stack([rng.integers(0, height, size=count), rng.integers(0, width, size=count)], axis=1)


def cutout(x: torch.Tensor, length: int, centres: np.ndarray) -> torch.Tensor:
    """Zero a ``length`` x ``length`` square at each image's centre, clipped at the borders
    (DeVries & Taylor 2017, the ``Cutout`` of the DARTS/ARNAS code; rows centre - length//2 up to
    centre - length//2 + length, so odd lengths keep their size). Zero is a black pixel here, since
    the images are [0,1] pixels; x is [N,C,H,W] and is not modified."""
    out = x.clone()
    height, width = x.shape[2], x.shape[3]
    for image, (row, column) in enumerate(centres.tolist()):
        top, left = row - length // 2, column - length // 2
        out[image, :, max(top, 0) : min(top + length, height), max(left, 0) : min(left + length, width)] = 0
    return out
