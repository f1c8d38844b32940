"""Batched numpy/scipy building blocks of the corruptions: the OpenCV and ImageMagick steps of
hendrycks/robustness ``make_cifar_c.py`` re-expressed on arrays [N,H,W,C] (float32, [0,1]).

Boundary names follow scipy.ndimage: 'mirror' is OpenCV's BORDER_REFLECT_101 (d c b | a b c d),
'reflect' is half-sample symmetric (c b a | a b c d), 'nearest' repeats the edge pixel.
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from scipy import ndimage


def to_float(images: np.ndarray) -> np.ndarray:
    """uint8 [0,255] -> float32 [0,1]."""
    return images.astype(np.float32) / np.float32(255)


def to_uint8(x: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """Clip to [0, scale], map to [0, 255] and truncate to uint8, as the scripts' ``np.uint8(...)``.

    The 1e-3 grey-level tolerance only absorbs float round-off (255 * (v / 255) may land just below
    v), so pixels a corruption leaves unchanged stay unchanged.
    """
    y = np.clip(x * np.float32(255.0 / scale), 0.0, 255.0)
    return np.floor(y + np.float32(1e-3)).astype(np.uint8)


def gaussian_hw(x: np.ndarray, sigma: float, mode: str = "nearest", truncate: float = 4.0) -> np.ndarray:
    """Gaussian blur over the image axes (1, 2) of [N,H,W] or [N,H,W,C] only.

    Defaults are ``skimage.filters.gaussian``'s (mode 'nearest', truncate 4), which the scripts call.
    """
    sigmas = (0.0, sigma, sigma) + (0.0,) * (x.ndim - 3)
    return ndimage.gaussian_filter(x, sigmas, mode=mode, truncate=truncate)


def disk_kernel(radius: float, alias_blur: float) -> np.ndarray:
    """Anti-aliased disk of ``disk()`` in make_cifar_c.py, trimmed to its non-zero support.

    The aliased disk (x^2 + y^2 <= r^2 on a grid of half-width max(8, r), normalised) is blurred
    with a 3x3 Gaussian of sigma ``alias_blur`` (5x5 when r > 8), as cv2.GaussianBlur with
    BORDER_REFLECT_101. All-zero border rows/columns are dropped: they do not change the filter.
    """
    half, ksize = (8, 3) if radius <= 8 else (int(radius), 5)
    grid = np.arange(-half, half + 1)
    disk = (grid[:, None] ** 2 + grid[None, :] ** 2 <= radius**2).astype(np.float64)
    disk /= disk.sum()
    taps = np.arange(ksize) - (ksize - 1) / 2
    gauss = np.exp(-(taps**2) / (2 * alias_blur**2))
    gauss /= gauss.sum()
    blurred = ndimage.correlate1d(disk, gauss, axis=0, mode="mirror")
    blurred = ndimage.correlate1d(blurred, gauss, axis=1, mode="mirror")
    nonzero = np.flatnonzero(np.abs(blurred).sum(axis=1) > 0)
    trim = int(nonzero[0])
    return blurred[trim : len(blurred) - trim, trim : len(blurred) - trim].astype(np.float32)


def correlate_hw(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """cv2.filter2D (correlation, BORDER_REFLECT_101) of every image and channel of [N,H,W,C]."""
    return ndimage.correlate(x, kernel[None, :, :, None], mode="mirror")


@lru_cache(maxsize=256)
def zoom_matrix(size: int, factor: float) -> np.ndarray:
    """``clipped_zoom`` of make_cifar_c.py along one axis of length ``size`` as a [size, size] matrix.

    The script crops the central ceil(size / factor) pixels, enlarges them with
    ``scipy.ndimage.zoom(order=1)`` to round(crop * factor) pixels (corner-aligned linear
    interpolation: output o samples input o * (crop - 1) / (out - 1)) and keeps the central ``size``.
    """
    crop = int(np.ceil(size / factor))
    top = (size - crop) // 2
    out = int(round(crop * factor))
    trim = (out - size) // 2
    position = (np.arange(size) + trim) * ((crop - 1) / (out - 1) if out > 1 else 0.0)
    low = np.minimum(np.floor(position).astype(int), crop - 1)
    high = np.minimum(low + 1, crop - 1)
    frac = position - low
    matrix = np.zeros((size, size))
    rows = np.arange(size)
    np.add.at(matrix, (rows, top + low), 1 - frac)
    np.add.at(matrix, (rows, top + high), frac)
    return matrix.astype(np.float32)


def clipped_zoom(x: np.ndarray, factor: float) -> np.ndarray:
    """Central zoom of every image of [N,H,W,C] by ``factor`` (``clipped_zoom``, both axes)."""
    n, height, width, channels = x.shape
    rows, cols = zoom_matrix(height, factor), zoom_matrix(width, factor)
    zoomed = np.matmul(rows, x.reshape(n, height, width * channels)).reshape(x.shape)
    across = zoomed.transpose(0, 1, 3, 2).reshape(n * height * channels, width) @ cols.T
    return across.reshape(n, height, channels, width).transpose(0, 1, 3, 2)


def motion_blur(x: np.ndarray, radius: float, sigma: float, angles: np.ndarray) -> np.ndarray:
    """ImageMagick ``MotionBlurImage`` (radius, sigma, angle in degrees per image) on [N,H,W,C].

    Re-derived from ImageMagick's effect.c: a one-sided Gaussian kernel of width 2*ceil(radius)+1,
    weights exp(-i^2 / (2 sigma^2)) normalised, tap i reading the pixel at offset
    (ceil(i cos a - 0.5), ceil(i sin a - 0.5)) (x, y), edge pixels repeated outside the image.
    Values stay on the caller's scale; round to uint8 as ImageMagick's 8-bit PNG output does.
    """
    n, height, width = x.shape[:3]
    taps = np.arange(2 * math.ceil(radius) + 1)
    weights = np.exp(-(taps**2) / (2.0 * sigma**2))
    weights /= weights.sum()
    radians = np.deg2rad(angles)[:, None]
    dx = np.ceil(taps[None, :] * np.cos(radians) - 0.5).astype(np.int64)
    dy = np.ceil(taps[None, :] * np.sin(radians) - 0.5).astype(np.int64)
    flat = x.reshape(n * height * width, -1)
    base = (np.arange(n) * height * width)[:, None, None]
    out = np.zeros_like(flat)
    for i, weight in enumerate(weights):
        rows = np.clip(np.arange(height)[None, :] + dy[:, i : i + 1], 0, height - 1)
        cols = np.clip(np.arange(width)[None, :] + dx[:, i : i + 1], 0, width - 1)
        index = base + rows[:, :, None] * width + cols[:, None, :]
        out += np.float32(weight) * flat[index.ravel()]
    return out.reshape(x.shape)


def boundary_index(index: np.ndarray, size: int, mode: str) -> np.ndarray:
    """Map integer pixel indices outside 0..size-1 back inside ('mirror' or 'reflect' extension)."""
    if size == 1:
        return np.zeros_like(index)
    if mode == "mirror":
        period = 2 * size - 2
        folded = np.mod(index, period)
        return np.where(folded >= size, period - folded, folded)
    period = 2 * size
    folded = np.mod(index, period)
    return np.where(folded >= size, period - 1 - folded, folded)


def bilinear_sample(x: np.ndarray, rows: np.ndarray, cols: np.ndarray, mode: str) -> np.ndarray:
    """Sample every image of [N,H,W,C] at float positions ``rows``, ``cols`` [N,H,W] (order 1).

    Neighbours outside the image are taken from its ``mode`` extension, as
    scipy.ndimage.map_coordinates(order=1) and cv2.warpAffine(INTER_LINEAR) do.
    """
    n, height, width, channels = x.shape
    flat = x.reshape(n * height * width, channels)
    base = (np.arange(n) * height * width)[:, None, None]
    r0, c0 = np.floor(rows), np.floor(cols)
    fr, fc = (rows - r0)[..., None].astype(np.float32), (cols - c0)[..., None].astype(np.float32)
    r0, c0 = r0.astype(np.int64), c0.astype(np.int64)
    r = [boundary_index(r0 + k, height, mode) * width for k in (0, 1)]
    c = [boundary_index(c0 + k, width, mode) for k in (0, 1)]
    top = flat[base + r[0] + c[0]] * (1 - fc) + flat[base + r[0] + c[1]] * fc
    bottom = flat[base + r[1] + c[0]] * (1 - fc) + flat[base + r[1] + c[1]] * fc
    return top * (1 - fr) + bottom * fr


def plasma_fractal(rng: np.random.Generator, n: int, mapsize: int, wibbledecay: float) -> np.ndarray:
    """``n`` diamond-square height maps [n, mapsize, mapsize] in [0, 1] (``plasma_fractal`` of
    make_cifar_c.py, after FLHerne/mapgen): each level adds uniform noise of amplitude wibble^2,
    wibble starting at 100 and divided by ``wibbledecay`` per level."""
    maps = np.zeros((n, mapsize, mapsize))
    step, wibble = mapsize, 100.0

    def wibbled_mean(total: np.ndarray) -> np.ndarray:
        return total / 4 + wibble * rng.uniform(-wibble, wibble, total.shape)

    while step >= 2:
        half = step // 2
        corners = maps[:, 0:mapsize:step, 0:mapsize:step]
        square = corners + np.roll(corners, -1, axis=1)
        square = square + np.roll(square, -1, axis=2)
        maps[:, half:mapsize:step, half:mapsize:step] = wibbled_mean(square)
        centres = maps[:, half:mapsize:step, half:mapsize:step]
        corners = maps[:, 0:mapsize:step, 0:mapsize:step]
        left = centres + np.roll(centres, 1, axis=1) + corners + np.roll(corners, -1, axis=2)
        maps[:, 0:mapsize:step, half:mapsize:step] = wibbled_mean(left)
        top = centres + np.roll(centres, 1, axis=2) + corners + np.roll(corners, -1, axis=1)
        maps[:, half:mapsize:step, 0:mapsize:step] = wibbled_mean(top)
        step //= 2
        wibble /= wibbledecay
    maps -= maps.min(axis=(1, 2), keepdims=True)
    return maps / maps.max(axis=(1, 2), keepdims=True)
