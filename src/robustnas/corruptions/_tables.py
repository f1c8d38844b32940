"""Severity parameter tables of the 15 common corruptions (Hendrycks & Dietterich, ICLR 2019).

Published constants, copied value for value (severities 1..5 in order):

* ``CIFAR_TABLE``: hendrycks/robustness ``ImageNet-C/create_c/make_cifar_c.py`` (32 px images).
* ``IMAGENET_TABLE``: hendrycks/robustness ``ImageNet-C/create_c/make_imagenet_c.py`` (224 px).

Spatial constants (blur radii, glass-blur offsets, elastic amplitudes) are in pixels of the table's
image size and are applied unscaled, as the scripts do. The two scripts' elastic constants are
written as multiples of their image size (``IMSIZE * f`` with IMSIZE = 32; ``244 * f`` in the
ImageNet script, whose comment says 244 should have been 224 "but ultimately nothing is
incorrect"); they are kept in that form. ``zoom_blur`` lists ``(stop, step)`` of the zoom factors
``np.arange(1, stop, step)``. Parameter meanings are documented with each corruption in
``robustnas.corruptions._functions``.
"""
from __future__ import annotations

from typing import Any

Table = dict[str, tuple[Any, ...]]

_CIFAR_SIZE = 32  # IMSIZE in make_cifar_c.py elastic_transform
_IMAGENET_SIZE = 244  # the ImageNet script's elastic constant (sic, for 224 px images)

# make_cifar_c.py (hendrycks/robustness, commit ca36008), one line per distortion function.
CIFAR_TABLE: Table = {
    "gaussian_noise": (0.04, 0.06, 0.08, 0.09, 0.10),
    "shot_noise": (500, 250, 100, 75, 50),
    "impulse_noise": (0.01, 0.02, 0.03, 0.05, 0.07),
    "defocus_blur": ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)),
    "glass_blur": ((0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2)),
    "motion_blur": ((6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)),
    "zoom_blur": ((1.06, 0.01), (1.11, 0.01), (1.16, 0.01), (1.21, 0.01), (1.26, 0.01)),
    "snow": (
        (0.1, 0.2, 1, 0.6, 8, 3, 0.95),
        (0.1, 0.2, 1, 0.5, 10, 4, 0.9),
        (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
        (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85),
        (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8),
    ),
    "frost": ((1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45)),
    "fog": ((0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75)),
    "brightness": (0.05, 0.1, 0.15, 0.2, 0.3),
    "contrast": (0.75, 0.5, 0.4, 0.3, 0.15),
    "elastic_transform": (
        (_CIFAR_SIZE * 0, _CIFAR_SIZE * 0, _CIFAR_SIZE * 0.08),
        (_CIFAR_SIZE * 0.05, _CIFAR_SIZE * 0.2, _CIFAR_SIZE * 0.07),
        (_CIFAR_SIZE * 0.08, _CIFAR_SIZE * 0.06, _CIFAR_SIZE * 0.06),
        (_CIFAR_SIZE * 0.1, _CIFAR_SIZE * 0.04, _CIFAR_SIZE * 0.05),
        (_CIFAR_SIZE * 0.1, _CIFAR_SIZE * 0.03, _CIFAR_SIZE * 0.03),
    ),
    "pixelate": (0.95, 0.9, 0.85, 0.75, 0.65),
    "jpeg_compression": (80, 65, 58, 50, 40),
}

# make_imagenet_c.py (hendrycks/robustness, commit e0377d4), one line per distortion function.
IMAGENET_TABLE: Table = {
    "gaussian_noise": (0.08, 0.12, 0.18, 0.26, 0.38),
    "shot_noise": (60, 25, 12, 5, 3),
    "impulse_noise": (0.03, 0.06, 0.09, 0.17, 0.27),
    "defocus_blur": ((3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5)),
    "glass_blur": ((0.7, 1, 2), (0.9, 2, 1), (1, 2, 3), (1.1, 3, 2), (1.5, 4, 2)),
    "motion_blur": ((10, 3), (15, 5), (15, 8), (15, 12), (20, 15)),
    "zoom_blur": ((1.11, 0.01), (1.16, 0.01), (1.21, 0.02), (1.26, 0.02), (1.31, 0.03)),
    "snow": (
        (0.1, 0.3, 3, 0.5, 10, 4, 0.8),
        (0.2, 0.3, 2, 0.5, 12, 4, 0.7),
        (0.55, 0.3, 4, 0.9, 12, 8, 0.7),
        (0.55, 0.3, 4.5, 0.85, 12, 8, 0.65),
        (0.55, 0.3, 2.5, 0.85, 12, 12, 0.55),
    ),
    "frost": ((1, 0.4), (0.8, 0.6), (0.7, 0.7), (0.65, 0.7), (0.6, 0.75)),
    "fog": ((1.5, 2), (2, 2), (2.5, 1.7), (2.5, 1.5), (3, 1.4)),
    "brightness": (0.1, 0.2, 0.3, 0.4, 0.5),
    "contrast": (0.4, 0.3, 0.2, 0.1, 0.05),
    "elastic_transform": (
        (_IMAGENET_SIZE * 2, _IMAGENET_SIZE * 0.7, _IMAGENET_SIZE * 0.1),
        (_IMAGENET_SIZE * 2, _IMAGENET_SIZE * 0.08, _IMAGENET_SIZE * 0.2),
        (_IMAGENET_SIZE * 0.05, _IMAGENET_SIZE * 0.01, _IMAGENET_SIZE * 0.02),
        (_IMAGENET_SIZE * 0.07, _IMAGENET_SIZE * 0.01, _IMAGENET_SIZE * 0.02),
        (_IMAGENET_SIZE * 0.12, _IMAGENET_SIZE * 0.01, _IMAGENET_SIZE * 0.02),
    ),
    "pixelate": (0.6, 0.5, 0.4, 0.3, 0.25),
    "jpeg_compression": (25, 18, 15, 10, 7),
}

# Frost textures: make_cifar_c.py shrinks the frost photos by 0.2 before cropping 32 px;
# make_imagenet_c.py crops 224 px from the full-size photos.
FROST_TEXTURE_SCALE: dict[str, float] = {"cifar": 0.2, "imagenet": 1.0}

TABLES: dict[str, Table] = {"cifar": CIFAR_TABLE, "imagenet": IMAGENET_TABLE}
