"""Readers for array files: ``.npz`` (uint8 HWC arrays) and SVHN's ``.mat`` files."""
from __future__ import annotations

import re
import zipfile
from functools import cached_property
from pathlib import Path

import numpy as np
import scipy.io

from robustnas.data.imageset import ImageSet, first_per_class
from robustnas.data.names import (
    CIFAR10,
    CIFAR100,
    IMAGENET16_120,
    SPLITS,
    SVHN,
    SVHN_CLASSES,
    TINY_IMAGENET,
    known_classes,
)
from robustnas.data.source import Source, require_dataset
from robustnas.errors import RobustnasError

_NPZ_ERRORS = (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile)
# File-name hints for npz files that carry no class names (e.g. cifar10-raw-subset.npz).
_NAME_HINTS = (
    ("cifar100", CIFAR100),
    ("cifar10", CIFAR10),
    ("svhn", SVHN),
    ("imagenet16", IMAGENET16_120),
    ("tiny", TINY_IMAGENET),
)


def check_hwc_uint8(array: np.ndarray, what: str) -> np.ndarray:
    if array.dtype != np.uint8 or array.ndim != 4 or array.shape[-1] != 3:
        raise RobustnasError(
            f"{what} must be uint8 images [N,H,W,3] (channels last), got {array.dtype} {list(array.shape)}"
        )
    return array


class NpzSource(Source):
    """``x_train``/``y_train``/``x_test``/``y_test`` (uint8 [N,H,W,3], integer [N]), optionally
    ``train_index``/``test_index`` (provenance) and ``class_names``.

    The CIFAR-100 raw subset stores labels for the whole split instead: ``y_<split>_fine_all``
    with the label of ``x_<split>[i]`` at position i (see shared/data/README.md).
    """

    format = "npz"

    @cached_property
    def arrays(self) -> dict[str, np.ndarray]:
        try:
            with np.load(self.path, allow_pickle=False) as npz:
                return {key: npz[key] for key in npz.files}
        except _NPZ_ERRORS as error:
            raise RobustnasError(
                f"{self.path}: not a readable .npz file (truncated or corrupt?): {error}"
            ) from None

    def dataset_guess(self) -> str:
        names = self._class_names()
        for dataset in (CIFAR10, CIFAR100, SVHN):
            if names == known_classes(dataset):
                return dataset
        if "y_train_fine_all" in self.arrays:
            return CIFAR100
        stem = self.path.stem.lower().replace("-", "").replace("_", "")
        return next((dataset for hint, dataset in _NAME_HINTS if hint in stem), self.path.stem.lower())

    def splits(self) -> tuple[str, ...]:
        return tuple(split for split in SPLITS if f"x_{split}" in self.arrays)

    def check_dataset(self, dataset: str) -> None:
        names = self._class_names()
        if "y_train_fine_all" in self.arrays or any(
            names == known_classes(d) for d in (CIFAR10, CIFAR100, SVHN)
        ):
            require_dataset(self.path, dataset, self.dataset_guess())

    def read(self, split: str, dataset: str, limit_per_class: int | None) -> ImageSet:
        if f"x_{split}" not in self.arrays:
            raise self.missing_split(split)
        images = check_hwc_uint8(self.arrays[f"x_{split}"], f"{self.path}: 'x_{split}'")
        labels = self._labels(split, len(images))
        index = self.arrays.get(f"{split}_index", np.arange(len(images)))
        if index.shape != labels.shape:
            raise RobustnasError(
                f"{self.path}: '{split}_index' has shape {list(index.shape)}, expected [{len(images)}]"
            )
        classes = self._class_names() or known_classes(dataset) or self._numbered_classes()
        keep = first_per_class(labels, limit_per_class)
        return ImageSet(images[keep], labels[keep], classes, dataset, split, str(self.path), index[keep])

    def _labels(self, split: str, count: int) -> np.ndarray:
        if f"y_{split}" in self.arrays:
            labels = self.arrays[f"y_{split}"]
        elif f"y_{split}_fine_all" in self.arrays and len(self.arrays[f"y_{split}_fine_all"]) >= count:
            labels = self.arrays[f"y_{split}_fine_all"][:count]
        else:
            raise RobustnasError(f"{self.path}: no labels 'y_{split}' for the {count} images in 'x_{split}'")
        if labels.shape != (count,) or not np.issubdtype(labels.dtype, np.integer):
            raise RobustnasError(
                f"{self.path}: labels for '{split}' must be {count} integers, got {labels.dtype} {list(labels.shape)}"
            )
        return labels.astype(np.int64)

    def _class_names(self) -> tuple[str, ...] | None:
        for key in ("class_names", "fine_label_names"):
            if key in self.arrays:
                return tuple(str(name) for name in self.arrays[key])
        return None

    def _numbered_classes(self) -> tuple[str, ...]:
        highest = max(
            (
                int(self._labels(split, len(self.arrays[f"x_{split}"])).max(initial=0))
                for split in self.splits()
            ),
            default=0,
        )
        return tuple(str(label) for label in range(highest + 1))


_SVHN_NAME = re.compile(r"^(train|test)_32x32\.mat$")


class SvhnMatSource(Source):
    """SVHN cropped digits: ``train_32x32.mat`` / ``test_32x32.mat`` with X uint8 [32,32,3,N] and
    y [N,1] in 1..10 where 10 is the digit 0 (Netzer et al. 2011, format 2). ``path`` is such a
    file, whose name gives its split, or a directory holding them.
    """

    format = "svhn-mat"

    def dataset_guess(self) -> str:
        return SVHN

    def check_dataset(self, dataset: str) -> None:
        require_dataset(self.path, dataset, SVHN)

    def splits(self) -> tuple[str, ...]:
        if self.path.is_dir():
            return tuple(split for split in SPLITS if (self.path / f"{split}_32x32.mat").is_file())
        named = _SVHN_NAME.match(self.path.name)
        if not named:
            raise RobustnasError(
                f"{self.path}: an SVHN file must be named train_32x32.mat or test_32x32.mat (its split)"
            )
        return (named.group(1),)

    def read(self, split: str, dataset: str, limit_per_class: int | None) -> ImageSet:
        if split not in self.splits():
            raise self.missing_split(split)
        file = self.path / f"{split}_32x32.mat" if self.path.is_dir() else self.path
        images, labels = _read_svhn_mat(file)
        keep = first_per_class(labels, limit_per_class)
        return ImageSet(images[keep], labels[keep], SVHN_CLASSES, SVHN, split, str(file), keep)


def _read_svhn_mat(file: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        content = scipy.io.loadmat(file)
    except (OSError, ValueError, TypeError, EOFError, NotImplementedError) as error:
        raise RobustnasError(
            f"{file}: not a readable MATLAB .mat file (truncated or corrupt?): {error}"
        ) from None
    if "X" not in content or "y" not in content:
        raise RobustnasError(f"{file}: an SVHN .mat file needs variables 'X' and 'y'")
    pixels, digits = content["X"], content["y"]
    if pixels.dtype != np.uint8 or pixels.ndim != 4 or pixels.shape[:3] != (32, 32, 3):
        raise RobustnasError(
            f"{file}: 'X' must be uint8 [32,32,3,N], got {pixels.dtype} {list(pixels.shape)}"
        )
    count = pixels.shape[3]
    if digits.size != count or not np.issubdtype(digits.dtype, np.number):
        raise RobustnasError(f"{file}: 'y' must hold {count} labels (shape [N,1]), got {list(digits.shape)}")
    labels = digits.reshape(-1).astype(np.int64)
    if count and (labels.min() < 1 or labels.max() > 10):
        raise RobustnasError(
            f"{file}: SVHN labels must lie in 1..10 (10 = digit 0), found {labels.min()}..{labels.max()}"
        )
    return np.ascontiguousarray(pixels.transpose(3, 0, 1, 2)), labels % 10
