"""The 15 common corruptions of CIFAR-10-C / ImageNet-C (Hendrycks & Dietterich, ICLR 2019) at
severities 1..5, in numpy, scipy and Pillow (no OpenCV, scikit-image or ImageMagick).

    from robustnas.corruptions import CORRUPTIONS, corrupt
    noisy = corrupt(images, "gaussian_noise", 3, seed=0)   # uint8 [N,H,W,3] or [H,W,3] in and out

Parameters come from the published scripts (``CIFAR_TABLE``: make_cifar_c.py, ``IMAGENET_TABLE``:
make_imagenet_c.py; see ``robustnas.corruptions._tables``). ``table="auto"`` uses the CIFAR table
for images below 64 px (the smaller side) and the ImageNet table from 64 px up; spatial constants
are pixels of 32 px and 224 px images respectively and are applied unscaled.

Determinism: all random draws of a call come from one ``numpy.random.Generator`` seeded with
(seed, corruption name, severity), so equal inputs and seed give bit-identical outputs on any
machine with the same numpy, scipy and Pillow, and different settings never share noise. Batches
draw their noise together (internally in steps of ``CHUNK`` images, in order, from the same
Generator): corrupt a dataset in one call, or give each of your chunks its own seed.

Bitwise parity with the released CIFAR-10-C files is impossible: the scripts draw from numpy's
global legacy RNG in an unrecorded state, and their frost photographs are replaced here by
procedural textures (``robustnas.corruptions._frost``). Otherwise outputs follow the scripts'
algorithms, so they agree in distribution; the OpenCV, scikit-image and ImageMagick steps are
re-implemented in ops.py (differences: rounding, and cv2.warpAffine's 1/32 px coordinate grid).
"""
from __future__ import annotations

import zlib

import numpy as np

from robustnas.bench._names import CORRUPTIONS, SEVERITIES
from robustnas.corruptions._functions import CORRUPTION_FUNCTIONS
from robustnas.corruptions._tables import CIFAR_TABLE, IMAGENET_TABLE, TABLES
from robustnas.errors import RobustnasError

TABLE_CHOICES: tuple[str, ...] = ("auto", "cifar", "imagenet")
IMAGENET_MIN_SIZE = 64  # "auto" switches to the ImageNet-C table at this image size (px)
MIN_SIZE = 8  # smallest image side every corruption supports
CHUNK = 2048  # images per internal step: bounds memory (~0.4 GB for elastic_transform at 32 px)

__all__ = [
    "CIFAR_TABLE",
    "CORRUPTIONS",
    "IMAGENET_TABLE",
    "SEVERITIES",
    "TABLE_CHOICES",
    "corrupt",
    "table_for",
]


def corrupt(
    images: np.ndarray, name: str, severity: int, seed: int = 0, table: str = "auto"
) -> np.ndarray:
    """Corrupt uint8 images [N,H,W,3] or [H,W,3] with ``name`` at ``severity`` 1..5.

    ``table``: "cifar", "imagenet" or "auto" (by image size, see ``table_for``). Returns a new
    uint8 array of the input's shape. Bad input raises RobustnasError.
    """
    batch = _check_images(images)
    _check_setting(name, severity, seed)
    chosen = table_for(batch.shape[1], batch.shape[2], table)
    param, function = TABLES[chosen][name][severity - 1], CORRUPTION_FUNCTIONS[name]
    rng = _generator(seed, name, severity)
    out = np.empty_like(batch)
    for start in range(0, len(batch), CHUNK):
        out[start : start + CHUNK] = function(batch[start : start + CHUNK], param, rng, chosen)
    return out[0] if images.ndim == 3 else out


def table_for(height: int, width: int, table: str = "auto") -> str:
    """The parameter table ("cifar" or "imagenet") used for images of ``height`` x ``width``."""
    if table not in TABLE_CHOICES:
        raise RobustnasError(f"unknown corruption table {table!r}; choose one of: {', '.join(TABLE_CHOICES)}")
    if table != "auto":
        return table
    return "cifar" if min(height, width) < IMAGENET_MIN_SIZE else "imagenet"


def _generator(seed: int, name: str, severity: int) -> np.random.Generator:
    """Generator of one call: keyed by seed, name (CRC-32, stable across processes) and severity."""
    return np.random.default_rng([seed, zlib.crc32(name.encode()), severity])


def _check_images(images: np.ndarray) -> np.ndarray:
    """The input as a contiguous batch [N,H,W,3], or a one-line error."""
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8:
        kind = images.dtype if isinstance(images, np.ndarray) else type(images).__name__
        raise RobustnasError(
            f"corrupt needs a uint8 numpy array [N,H,W,3] or [H,W,3], got {kind}; "
            "convert with np.asarray(x, dtype=np.uint8)"
        )
    if images.ndim not in (3, 4) or images.shape[-1] != 3:
        raise RobustnasError(
            f"corrupt needs images shaped [N,H,W,3] or [H,W,3], got {list(images.shape)}; put RGB channels last"
        )
    batch = images[None] if images.ndim == 3 else images
    if min(batch.shape[1:3]) < MIN_SIZE:
        raise RobustnasError(
            f"images of {batch.shape[1]}x{batch.shape[2]} px are too small to corrupt; "
            f"the minimum side is {MIN_SIZE} px"
        )
    return np.ascontiguousarray(batch)


def _check_setting(name: str, severity: int, seed: int) -> None:
    if name not in CORRUPTION_FUNCTIONS:
        raise RobustnasError(f"unknown corruption {name!r}; choose one of: {', '.join(CORRUPTIONS)}")
    if isinstance(severity, bool) or not isinstance(severity, (int, np.integer)) or severity not in SEVERITIES:
        raise RobustnasError(f"corruption severity must be an integer 1..5, got {severity!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise RobustnasError(f"seed must be a non-negative integer, got {seed!r}")
