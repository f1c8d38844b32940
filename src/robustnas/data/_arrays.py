"""Readers for array files: ``.npz`` (uint8 HWC arrays) and SVHN's ``.mat`` files."""
from __future__ import annotations

import re
from functools import cached_property
from pathlib import Path

import numpy as np
import scipy.io

from robustnas.data._imageset import ImageSet, first_per_class
from robustnas.data._names import (
    CIFAR10,
    CIFAR100,
    IMAGENET16_120,
    IMAGENET16_PREFIX,
    SPLITS,
    SVHN,
    SVHN_CLASSES,
    TINY_IMAGENET,
    class_count,
    known_classes,
)
from robustnas.data._safe_npz import read_npz
from robustnas.data._source import Source, require_dataset
from robustnas.errors import RobustnasError

# File-name hints for npz files that carry no class names (e.g. cifar10-raw-subset.npz), checked
# in this order on the lower-cased stem without '-' and '_'.
_NAME_HINTS = (
    ("cifar100", CIFAR100),
    ("cifar10", CIFAR10),
    ("svhn", SVHN),
    ("imagenet16", IMAGENET16_120),
    ("tinyimagenet", TINY_IMAGENET),
)
# Without class names the classes are numbered 0..(largest label). A label far beyond the image
# count is a corrupt file, not a class list (10**9 would mean building 10**9 names), so the inferred
# count may be at most 10 per image and at most this many (ImageNet-21k has 21,841 classes).
MAX_INFERRED_CLASSES = 100_000
_INFERRED_CLASSES_PER_IMAGE = 10


def check_hwc_uint8(array: np.ndarray, what: str) -> np.ndarray:
    if array.dtype != np.uint8 or array.ndim != 4 or array.shape[-1] != 3:
        raise RobustnasError(
            f"{what} must be uint8 images [N,H,W,3] (channels last), got {array.dtype} {list(array.shape)}"
        )
    return array


class NpzSource(Source):
    """``x_train``/``y_train``/``x_test``/``y_test`` (uint8 [N,H,W,3], integer [N]), optionally
    ``train_index``/``test_index`` (provenance, integers [N]) and ``class_names`` (strings [K]).

    The CIFAR-100 raw subset stores labels for the whole split instead: ``y_<split>_fine_all``
    with the label of ``x_<split>[i]`` at position i (see shared/data/README.md).

    The dataset is named by the class names, that CIFAR-100 layout or the file name (``_NAME_HINTS``);
    a requested dataset must agree with it and its labels must fit the requested dataset's classes.
    """

    format = "npz"

    @cached_property
    def arrays(self) -> dict[str, np.ndarray]:
        return read_npz(self.path)

    def dataset_guess(self) -> str:
        return self._named_dataset() or self.path.stem.lower()

    def splits(self) -> tuple[str, ...]:
        return tuple(split for split in SPLITS if f"x_{split}" in self.arrays)

    def check_dataset(self, dataset: str) -> None:
        named = self._named_dataset()
        if named is not None and not _same_dataset(named, dataset):
            require_dataset(self.path, dataset, named)

    def read(self, split: str, dataset: str, limit_per_class: int | None) -> ImageSet:
        if f"x_{split}" not in self.arrays:
            raise self.missing_split(split)
        images = self._images(split)
        labels = self._labels(split)
        _check_labels_fit(self.path, split, labels, dataset)
        classes = self._class_names or known_classes(dataset) or self._numbered_classes(dataset)
        index = self._index(split)
        keep = first_per_class(labels, limit_per_class)
        return ImageSet(images[keep], labels[keep], classes, dataset, split, str(self.path), index[keep])

    def _named_dataset(self) -> str | None:
        """The dataset the class names, the CIFAR-100 label layout or the file name point to, if any."""
        for dataset in (CIFAR10, CIFAR100, SVHN):
            if self._class_names == known_classes(dataset):
                return dataset
        if "y_train_fine_all" in self.arrays:
            return CIFAR100
        stem = self.path.stem.lower().replace("-", "").replace("_", "")
        return next((dataset for hint, dataset in _NAME_HINTS if hint in stem), None)

    def _images(self, split: str) -> np.ndarray:
        return check_hwc_uint8(self.arrays[f"x_{split}"], f"{self.path}: 'x_{split}'")

    def _labels(self, split: str) -> np.ndarray:
        """Labels of ``x_<split>`` as int64, each a non-negative class index."""
        count = len(self._images(split))
        key = next((k for k in (f"y_{split}", f"y_{split}_fine_all") if k in self.arrays), None)
        if key is None:
            raise RobustnasError(f"{self.path}: no labels 'y_{split}' for the {count} images in 'x_{split}'")
        labels = self.arrays[key]
        if key.endswith("_fine_all") and labels.ndim == 1:
            labels = labels[:count]
        if labels.shape != (count,) or not np.issubdtype(labels.dtype, np.integer):
            raise RobustnasError(
                f"{self.path}: '{key}' must hold {count} integer labels (one per image of 'x_{split}'), "
                f"got {labels.dtype} {list(labels.shape)}"
            )
        if count and (labels.min() < 0 or labels.max() > np.iinfo(np.int64).max):
            bad = labels.min() if labels.min() < 0 else labels.max()
            raise RobustnasError(f"{self.path}: label {bad} in '{key}' is not a class index 0, 1, 2, ...")
        return labels.astype(np.int64)

    def _index(self, split: str) -> np.ndarray:
        """``<split>_index`` (each image's position in the original split), else 0..N-1."""
        count, key = len(self._images(split)), f"{split}_index"
        if key not in self.arrays:
            return np.arange(count)
        index = self.arrays[key]
        integers = index.shape == (count,) and np.issubdtype(index.dtype, np.integer)
        if not integers or (count and index.min() < 0):
            raise RobustnasError(
                f"{self.path}: '{key}' must hold {count} non-negative integers (each image's position in "
                f"the original split), got {index.dtype} {list(index.shape)}"
            )
        return index

    @cached_property
    def _class_names(self) -> tuple[str, ...] | None:
        for key in ("class_names", "fine_label_names"):
            if key in self.arrays:
                names = self.arrays[key]
                if names.ndim != 1 or names.dtype.kind not in "US":
                    raise RobustnasError(
                        f"{self.path}: '{key}' must be a 1-D array of class-name strings, "
                        f"got {names.dtype} {list(names.shape)}"
                    )
                return tuple(_text(name) for name in names.tolist())
        return None

    def _numbered_classes(self, dataset: str) -> tuple[str, ...]:
        """'0', '1', ...: as many as ``dataset`` has, else as the largest label needs."""
        count = class_count(dataset) or self._inferred_class_count()
        return tuple(str(label) for label in range(count))

    def _inferred_class_count(self) -> int:
        """Largest label + 1 over all splits, refusing labels far beyond the number of images."""
        labelled = {split: self._labels(split) for split in self.splits()}
        images = sum(len(labels) for labels in labelled.values())
        if not images:
            return 1
        split = max((s for s in labelled if len(labelled[s])), key=lambda s: labelled[s].max())
        highest = int(labelled[split].max())
        if highest + 1 > min(MAX_INFERRED_CLASSES, _INFERRED_CLASSES_PER_IMAGE * images):
            raise RobustnasError(
                f"{self.path}: label {highest} in the '{split}' labels would mean {highest + 1:,} classes "
                f"for {images} images; without class names robustnas numbers the classes 0..(largest "
                f"label), at most {_INFERRED_CLASSES_PER_IMAGE} per image and {MAX_INFERRED_CLASSES:,} in "
                "all: fix the labels or add a 'class_names' array"
            )
        return highest + 1


def _text(name: str | bytes) -> str:
    return name.decode("utf-8", errors="replace") if isinstance(name, bytes) else name


def _same_dataset(named: str, requested: str) -> bool:
    """Whether ``requested`` fits a file that names ``named``; an ImageNet16 file fits every
    ImageNet16-N (its labels are then checked against N)."""
    both_imagenet16 = named.startswith(IMAGENET16_PREFIX) and requested.startswith(IMAGENET16_PREFIX)
    return named == requested or both_imagenet16


def _check_labels_fit(path: Path, split: str, labels: np.ndarray, dataset: str) -> None:
    """Labels of a known dataset must index its classes (e.g. 0..9 for cifar10)."""
    count = class_count(dataset)
    if count is not None and len(labels) and labels.max() >= count:
        raise RobustnasError(
            f"{path}: label {labels.max()} in the '{split}' labels is not a class of {dataset} "
            f"({dataset} has {count}: 0..{count - 1}): wrong labels, or the file holds another dataset"
        )


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
