"""Procedural frost textures for the ``frost`` corruption.

make_cifar_c.py blends crops of five photographs of frosted glass (``frost1.png`` .. ``frost5.jpg``;
its ``randint(5)`` never picks the sixth file) into the image. robustnas ships no photographs: it
draws five stand-ins, each deterministic from its index, and caches them per process.

A texture is a bluish-white frosted pane at the photographs' scale (a few hundred pixels): a milky
haze of smoothed noise (a few blotches per texture), a soft glow around the ice, and feather-like
crystals (curved stems with side branches at +-60 degrees, the hexagonal habit of ice dendrites)
drawn with Pillow at twice the size and box-filtered down. For the CIFAR table the texture is
shrunk by 0.2 the way the script's ``cv2.resize(frost, (0, 0), fx=0.2, fy=0.2)`` does
(INTER_LINEAR, i.e. point sampling at (i + 0.5) / 0.2 - 0.5).
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

FROST_TEXTURES = 5
_SEED = 20190101  # fixed: the textures are part of the corruption's definition
_SIZES = ((480, 640), (512, 608), (448, 672), (544, 576), (496, 704))  # (height, width), full scale
_TINT = np.array([0.84, 0.92, 1.0])  # frosted glass photographs are bluish grey-white


def frost_textures(scale: float, height: int, width: int) -> tuple[np.ndarray, ...]:
    """The five textures, uint8 [h, w, 3], shrunk by ``scale`` and at least one pixel larger than
    ``height`` x ``width`` (mirrored where the image is larger, so any crop position exists)."""
    return tuple(_padded(_scaled(index, scale), height + 1, width + 1) for index in range(FROST_TEXTURES))


@lru_cache(maxsize=None)
def _full_scale(index: int) -> np.ndarray:
    """Texture ``index`` at full scale, float in [0, 1], [h, w, 3]."""
    rng = np.random.default_rng([_SEED, index])
    height, width = _SIZES[index]
    haze = _smooth_noise(rng, height, width, (48.0, 12.0), (1.0, 0.35))
    crystals = _crystals(rng, height, width)
    glow = ndimage.gaussian_filter(crystals, 10.0)
    grain = ndimage.gaussian_filter(rng.standard_normal((height, width)), 0.7)
    value = 0.2 + 0.3 * haze + 0.45 * crystals + 0.8 * glow + 0.04 * grain
    return np.clip(value[..., None] * _TINT, 0.0, 1.0)


@lru_cache(maxsize=None)
def _scaled(index: int, scale: float) -> np.ndarray:
    """uint8 texture resized like cv2.resize(INTER_LINEAR) by ``scale`` (cached per scale)."""
    texture = _full_scale(index)
    if scale != 1.0:
        height, width = texture.shape[:2]
        rows = _linear_taps(height, round(height * scale), scale)
        cols = _linear_taps(width, round(width * scale), scale)
        texture = np.einsum("hi,ijc,wj->hwc", rows, texture, cols, optimize=True)
    out = np.floor(np.clip(texture, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)
    out.flags.writeable = False
    return out


def _linear_taps(size: int, out: int, scale: float) -> np.ndarray:
    """[out, size] matrix of OpenCV's INTER_LINEAR resize (half-pixel centres, edges clamped)."""
    position = np.clip((np.arange(out) + 0.5) / scale - 0.5, 0, size - 1)
    low = np.floor(position).astype(int)
    high = np.minimum(low + 1, size - 1)
    matrix = np.zeros((out, size))
    np.add.at(matrix, (np.arange(out), low), 1 - (position - low))
    np.add.at(matrix, (np.arange(out), high), position - low)
    return matrix


def _padded(texture: np.ndarray, height: int, width: int) -> np.ndarray:
    grow_h, grow_w = max(0, height - texture.shape[0]), max(0, width - texture.shape[1])
    if grow_h == grow_w == 0:
        return texture
    return np.pad(texture, ((0, grow_h), (0, grow_w), (0, 0)), mode="symmetric")


def _smooth_noise(
    rng: np.random.Generator, height: int, width: int, sigmas: tuple[float, ...], weights: tuple[float, ...]
) -> np.ndarray:
    """Sum of Gaussian-smoothed white-noise octaves, rescaled to [0, 1]."""
    total = sum(
        weight * _unit(ndimage.gaussian_filter(rng.standard_normal((height, width)), sigma, mode="wrap"))
        for sigma, weight in zip(sigmas, weights)
    )
    return _unit(total)


def _unit(x: np.ndarray) -> np.ndarray:
    return (x - x.min()) / (x.max() - x.min())


def _crystals(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Feather-like ice crystals in [0, 1], [height, width], drawn at 2x and box-filtered down."""
    canvas = Image.new("L", (2 * width, 2 * height), 0)
    draw = ImageDraw.Draw(canvas)
    for _ in range(height * width // 1000):
        _feather(draw, rng, 2 * width, 2 * height)
    small = canvas.resize((width, height), Image.Resampling.BOX)
    return np.asarray(small, dtype=np.float64) / 255.0


def _feather(draw: ImageDraw.ImageDraw, rng: np.random.Generator, width: int, height: int) -> None:
    """One crystal: a gently curving stem with side branches at +-60 degrees that shorten towards
    the tip; brightness and size vary per crystal."""
    x, y = rng.uniform(0, width), rng.uniform(0, height)
    angle = rng.uniform(0, 2 * math.pi)
    length = rng.uniform(40, 260)
    shade = int(rng.uniform(90, 255))
    stem = int(rng.uniform(2, 9))
    steps = max(2, int(length / 8))
    for step in range(steps):
        angle += rng.normal(0, 0.06)
        nx, ny = x + 8 * math.cos(angle), y + 8 * math.sin(angle)
        draw.line((x, y, nx, ny), fill=shade, width=stem)
        remaining = 1 - step / steps
        for side in (-1, 1):
            if rng.random() < 0.7:
                branch = remaining * length * rng.uniform(0.12, 0.35)
                turn = angle + side * math.pi / 3
                draw.line(
                    (x, y, x + branch * math.cos(turn), y + branch * math.sin(turn)),
                    fill=int(shade * 0.8),
                    width=max(1, stem - 2),
                )
        x, y = nx, ny
