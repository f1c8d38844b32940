"""The 15 corruptions, each ``f(images, param, rng, table) -> images`` on uint8 [N,H,W,3].

Each follows the function of the same name in hendrycks/robustness
``ImageNet-C/create_c/make_cifar_c.py`` (``param`` is one severity's entry of the table in
``robustnas.corruptions._tables``), batched over N with one numpy Generator for all random draws.
Results are truncated to uint8 as the script's ``np.uint8(...)`` does, except where the original
returns 8-bit data itself (motion blur via ImageMagick PNG: rounded; pixelate and JPEG: Pillow).
"""
from __future__ import annotations

from io import BytesIO
from typing import Any, Callable

import numpy as np
from PIL import Image

from robustnas.corruptions._frost import FROST_TEXTURES, frost_textures
from robustnas.corruptions._ops import (
    bilinear_sample,
    clipped_zoom,
    correlate_hw,
    disk_kernel,
    gaussian_hw,
    motion_blur as magick_motion_blur,
    plasma_fractal,
    to_float,
    to_uint8,
)
from robustnas.corruptions._tables import FROST_TEXTURE_SCALE

Corruption = Callable[[np.ndarray, Any, np.random.Generator, str], np.ndarray]
_GREY = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # cv2.COLOR_RGB2GRAY weights


def gaussian_noise(images: np.ndarray, sigma: float, rng: np.random.Generator, table: str) -> np.ndarray:
    """Add N(0, sigma^2) to every value in [0, 1]."""
    x = to_float(images)
    return to_uint8(x + rng.standard_normal(x.shape, dtype=np.float32) * np.float32(sigma))


def shot_noise(images: np.ndarray, photons: float, rng: np.random.Generator, table: str) -> np.ndarray:
    """Poisson photon noise: Poisson(x * photons) / photons."""
    return to_uint8(rng.poisson(images / 255.0 * photons) / photons)


def impulse_noise(images: np.ndarray, amount: float, rng: np.random.Generator, table: str) -> np.ndarray:
    """Salt and pepper on a fraction ``amount`` of all values, half each (skimage 's&p')."""
    x = to_float(images)
    flipped = rng.random(x.shape, dtype=np.float32) < amount
    salt = rng.random(x.shape, dtype=np.float32) < 0.5
    return to_uint8(np.where(flipped, salt.astype(np.float32), x))


def defocus_blur(images: np.ndarray, param: tuple, rng: np.random.Generator, table: str) -> np.ndarray:
    """Filter with an anti-aliased disk of (radius, alias sigma)."""
    radius, alias_blur = param
    return to_uint8(correlate_hw(to_float(images), disk_kernel(radius, alias_blur)))


def glass_blur(images: np.ndarray, param: tuple, rng: np.random.Generator, table: str) -> np.ndarray:
    """Gaussian blur (sigma), ``iterations`` passes of local pixel displacement by up to
    ``max_delta``, Gaussian blur again."""
    sigma, max_delta, iterations = param
    x = to_uint8(gaussian_hw(to_float(images), sigma))
    n, height, width = x.shape[:3]
    visits = (n, height - 2 * max_delta, width - 2 * max_delta, 2)  # (dx, dy) per visited pixel
    for _ in range(iterations):
        x = _glass_pass(x, max_delta, rng.integers(-max_delta, max_delta, size=visits))
    return to_uint8(gaussian_hw(to_float(x), sigma))


def motion_blur(images: np.ndarray, param: tuple, rng: np.random.Generator, table: str) -> np.ndarray:
    """ImageMagick motion blur (radius, sigma) at an angle drawn from U(-45, 45) degrees."""
    radius, sigma = param
    angles = rng.uniform(-45, 45, len(images))
    blurred = magick_motion_blur(images.astype(np.float32), radius, sigma, angles)
    return np.clip(np.rint(blurred), 0, 255).astype(np.uint8)


def zoom_blur(images: np.ndarray, param: tuple, rng: np.random.Generator, table: str) -> np.ndarray:
    """Average of the image and its central zooms by factors arange(1, stop, step)."""
    stop, step = param
    x = to_float(images)
    factors = np.arange(1, stop, step)
    total = x.copy()
    for factor in factors:
        total += clipped_zoom(x, float(factor))
    return to_uint8(total / (len(factors) + 1))


def snow(images: np.ndarray, param: tuple, rng: np.random.Generator, table: str) -> np.ndarray:
    """Snowflakes: thresholded, zoomed N(loc, scale) noise, motion-blurred at U(-135, -45) degrees,
    added twice (once rotated by 180 degrees) to the image whitened towards 1.5 * grey + 0.5."""
    loc, scale, zoom, threshold, radius, sigma, keep = param
    n, height, width = images.shape[:3]
    x = to_float(images)
    flakes = rng.normal(loc, scale, (n, height, width, 1)).astype(np.float32)
    flakes = clipped_zoom(flakes, zoom)
    flakes[flakes < threshold] = 0
    angles = rng.uniform(-135, -45, n)
    flakes = magick_motion_blur(to_uint8(flakes).astype(np.float32), radius, sigma, angles)
    flakes = np.clip(np.rint(flakes), 0, 255) / np.float32(255)
    whitened = np.maximum(x, (x @ _GREY)[..., None] * 1.5 + 0.5)
    x = keep * x + (1 - keep) * whitened
    return to_uint8(x + flakes + flakes[:, ::-1, ::-1])


def frost(images: np.ndarray, param: tuple, rng: np.random.Generator, table: str) -> np.ndarray:
    """keep * image + amount * a random crop of a random frost texture (0..255 scale)."""
    keep, amount = param
    n, height, width = images.shape[:3]
    textures = frost_textures(FROST_TEXTURE_SCALE[table], height, width)
    choice = rng.integers(FROST_TEXTURES, size=n)
    tops = rng.integers(0, [textures[k].shape[0] - height for k in choice])
    lefts = rng.integers(0, [textures[k].shape[1] - width for k in choice])
    crops = np.stack(
        [textures[k][t : t + height, l : l + width] for k, t, l in zip(choice, tops, lefts)]
    )
    blended = np.float32(keep) * images + np.float32(amount) * crops.astype(np.float32)
    return to_uint8(blended, scale=255.0)


def fog(images: np.ndarray, param: tuple, rng: np.random.Generator, table: str) -> np.ndarray:
    """Add ``amount`` times a diamond-square plasma fractal (roughness ``decay``), rescaled by
    max / (max + amount) to keep the image's maximum."""
    amount, decay = param
    n, height, width = images.shape[:3]
    x = to_float(images)
    mapsize = 1 << (max(height, width) - 1).bit_length()  # 32 for CIFAR, 256 for 224 px as published
    fractal = plasma_fractal(rng, n, mapsize, decay)[:, :height, :width, None].astype(np.float32)
    peak = x.max(axis=(1, 2, 3), keepdims=True)
    return to_uint8((x + np.float32(amount) * fractal) * (peak / (peak + np.float32(amount))))


def brightness(images: np.ndarray, shift: float, rng: np.random.Generator, table: str) -> np.ndarray:
    """Add ``shift`` to the HSV value channel (clipped to 1), hue and saturation kept.

    Closed form of skimage's rgb2hsv -> V + shift -> hsv2rgb: with V = max(r, g, b) and S, H fixed,
    RGB scales by V' / V where V' = min(V + shift, 1); black (V = 0, S = 0) becomes grey V'.
    """
    x = to_float(images)
    value = x.max(axis=-1, keepdims=True)
    new_value = np.minimum(value + np.float32(shift), 1)
    return to_uint8(np.where(value > 0, x * (new_value / np.maximum(value, 1e-12)), new_value))


def contrast(images: np.ndarray, factor: float, rng: np.random.Generator, table: str) -> np.ndarray:
    """Scale deviations from each image's per-channel mean by ``factor``."""
    x = to_float(images)
    means = x.mean(axis=(1, 2), keepdims=True)
    return to_uint8((x - means) * np.float32(factor) + means)


def elastic_transform(images: np.ndarray, param: tuple, rng: np.random.Generator, table: str) -> np.ndarray:
    """Random affine warp (three anchor points jittered by U(-jitter, jitter) px, bilinear, mirrored
    border) then a smooth displacement field (U(-1, 1) noise, Gaussian sigma, times alpha).

    cv2.warpAffine rounds source positions to 1/32 px; this samples at the exact positions.
    """
    alpha, sigma, jitter = param
    n, height, width = images.shape[:3]
    x = to_float(images)
    rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    src_rows, src_cols = _random_affine_sources(n, height, width, jitter, rng, rows, cols)
    x = bilinear_sample(x, src_rows, src_cols, "mirror")
    if alpha > 0:
        noise = rng.uniform(-1, 1, (2, n, height, width))
        dx = gaussian_hw(noise[0], sigma, mode="reflect", truncate=3) * alpha
        dy = gaussian_hw(noise[1], sigma, mode="reflect", truncate=3) * alpha
        x = bilinear_sample(x, rows + dy.astype(np.float32), cols + dx.astype(np.float32), "reflect")
    return to_uint8(x)


def pixelate(images: np.ndarray, factor: float, rng: np.random.Generator, table: str) -> np.ndarray:
    """Pillow BOX resize to int(size * factor) and back."""
    height, width = images.shape[1:3]
    small = (max(1, int(width * factor)), max(1, int(height * factor)))
    box = Image.Resampling.BOX
    return np.stack(
        [np.asarray(Image.fromarray(image).resize(small, box).resize((width, height), box)) for image in images]
    )


def jpeg_compression(images: np.ndarray, quality: int, rng: np.random.Generator, table: str) -> np.ndarray:
    """Pillow JPEG encode at ``quality`` (default 4:2:0 chroma subsampling) and decode."""
    out = np.empty_like(images)
    for i, image in enumerate(images):
        buffer = BytesIO()
        Image.fromarray(image).save(buffer, format="JPEG", quality=int(quality))
        buffer.seek(0)
        out[i] = np.asarray(Image.open(buffer).convert("RGB"))
    return out


def _glass_pass(x: np.ndarray, max_delta: int, offsets: np.ndarray) -> np.ndarray:
    """One pass of the script's pixel-shuffling loop, vectorised.

    The script visits (h, w) for h, w from size - max_delta down to max_delta + 1 and "swaps" pixel
    (h, w) with (h + dy, w + dx), (dx, dy) = ``offsets[:, i, j]`` ~ randint(-max_delta, max_delta)
    for the i-th visited row and j-th visited column. The tuple assignment of
    two numpy views makes that a copy, x[h, w] = x[h + dy, w + dx], which is what the published
    datasets contain and what this reproduces: a visited pixel takes its source's current value,
    which is the source's own final value when the source was visited earlier (followed to the end
    of the chain), else its value before the pass.
    """
    n, height, width = x.shape[:3]
    rows = np.arange(height - max_delta, max_delta, -1)
    cols = np.arange(width - max_delta, max_delta, -1)
    visited = (rows[:, None] * width + cols[None, :]).ravel()
    sources = ((rows[:, None] + offsets[..., 1]) * width + cols[None, :] + offsets[..., 0]).reshape(n, -1)
    position = np.arange(height * width)
    source = np.broadcast_to(position, (n, height * width)).copy()
    source[:, visited] = sources
    was_visited = np.zeros(height * width, dtype=bool)
    was_visited[visited] = True
    earlier = was_visited[source] & (source > position)  # visited before, in the descending scan
    current = np.broadcast_to(position, source.shape).copy()
    follow = earlier
    while follow.any():
        current = np.where(follow, np.take_along_axis(source, current, axis=1), current)
        follow = np.take_along_axis(earlier, current, axis=1)
    final = np.take_along_axis(source, current, axis=1)
    flat = x.reshape(n, height * width, -1)
    return np.take_along_axis(flat, final[..., None], axis=1).reshape(x.shape)


def _random_affine_sources(
    n: int, height: int, width: int, jitter: float, rng: np.random.Generator, rows: np.ndarray, cols: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Source positions of cv2.warpAffine for the script's random affine map, per image.

    Anchors (x, y): centre +- size // 3 at three corners of a square; each target = anchor +
    U(-jitter, jitter). The inverse map (targets -> anchors) gives where each output pixel reads.
    """
    cy, cx, half = height // 2, width // 2, min(height, width) // 3
    anchors = np.array([[cx + half, cy + half], [cx + half, cy - half], [cx - half, cy - half]], dtype=np.float32)
    targets = anchors + rng.uniform(-jitter, jitter, (n, 3, 2)).astype(np.float32)
    design = np.concatenate([targets, np.ones((n, 3, 1), dtype=np.float32)], axis=2).astype(np.float64)
    inverse = np.linalg.solve(design, np.broadcast_to(anchors.astype(np.float64), (n, 3, 2)))  # [n, 3, 2]
    coefficients = inverse[:, :, :, None, None]  # [n, (x, y, 1), (x, y), 1, 1]
    src_cols = cols * coefficients[:, 0, 0] + rows * coefficients[:, 1, 0] + coefficients[:, 2, 0]
    src_rows = cols * coefficients[:, 0, 1] + rows * coefficients[:, 1, 1] + coefficients[:, 2, 1]
    return src_rows, src_cols


CORRUPTION_FUNCTIONS: dict[str, Corruption] = {
    "gaussian_noise": gaussian_noise,
    "shot_noise": shot_noise,
    "impulse_noise": impulse_noise,
    "defocus_blur": defocus_blur,
    "glass_blur": glass_blur,
    "motion_blur": motion_blur,
    "zoom_blur": zoom_blur,
    "snow": snow,
    "frost": frost,
    "fog": fog,
    "brightness": brightness,
    "contrast": contrast,
    "elastic_transform": elastic_transform,
    "pixelate": pixelate,
    "jpeg_compression": jpeg_compression,
}
