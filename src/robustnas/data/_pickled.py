"""Readers for pickled batch directories: the official CIFAR-10/100 python versions and ImageNet16.

Both store each image as one uint8 row of 3*S*S values in channel-planar order (all red, then
green, then blue, each row-major), i.e. ``row.reshape(3, S, S)`` is CHW
(Krizhevsky 2009, CIFAR "python version" page; Chrabaszcz et al. 2017 for downsampled ImageNet,
whose 16x16 variant NB201 uses through ``xautodl/datasets/DownsampledImageNet.py``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from robustnas.data._imageset import ImageSet, first_per_class
from robustnas.data._names import CIFAR10, CIFAR10_CLASSES, CIFAR100_CLASSES, IMAGENET16_120, IMAGENET16_PREFIX
from robustnas.data._safe_pickle import load_batch_pickle
from robustnas.data._source import Source, require_dataset
from robustnas.errors import RobustnasError

CIFAR10_DIR = "cifar-10-batches-py"
CIFAR100_DIR = "cifar-100-python"
CIFAR10_FILES = {"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)}
CIFAR100_FILES = {"train": ("train",), "test": ("test",)}
IMAGENET16_FILES = {"train": tuple(f"train_data_batch_{i}" for i in range(1, 11)), "test": ("val_data",)}


def planar_rows_to_hwc(data: Any, size: int, path: Path) -> np.ndarray:
    """[N, 3*size*size] channel-planar rows -> uint8 [N, size, size, 3]."""
    if (
        not isinstance(data, np.ndarray)
        or data.dtype != np.uint8
        or data.ndim != 2
        or data.shape[1] != 3 * size * size
    ):
        found = f"{data.dtype} {list(data.shape)}" if isinstance(data, np.ndarray) else type(data).__name__
        raise RobustnasError(
            f"{path}: 'data' must be uint8 [N, {3 * size * size}] ({size}x{size} RGB rows), got {found}"
        )
    return data.reshape(-1, 3, size, size).transpose(0, 2, 3, 1)


def _batch_entry(batch: dict[str, Any], key: str, path: Path) -> Any:
    if key not in batch:
        raise RobustnasError(
            f"{path}: batch has no '{key}' entry (keys: {', '.join(sorted(batch)) or 'none'})"
        )
    return batch[key]


def _batch_labels(batch: dict[str, Any], key: str, count: int, path: Path) -> np.ndarray:
    problem = f"{path}: '{key}' must be {count} integers (one per image)"
    try:
        labels = np.asarray(_batch_entry(batch, key, path))
    except (ValueError, TypeError):  # a ragged list (numpy: "inhomogeneous shape")
        raise RobustnasError(f"{problem}, got a ragged or mixed list") from None
    if labels.shape != (count,) or not np.issubdtype(labels.dtype, np.integer):
        raise RobustnasError(f"{problem}, got {labels.dtype} {list(labels.shape)}")
    return labels.astype(np.int64)


def _read_batches(
    root: Path, names: tuple[str, ...], label_key: str, size: int
) -> tuple[np.ndarray, np.ndarray]:
    images, labels = [], []
    for name in names:
        path = root / name
        if not path.is_file():
            raise RobustnasError(
                f"{path}: file missing (expected the official batch files {', '.join(names)})"
            )
        batch = load_batch_pickle(path)
        pixels = planar_rows_to_hwc(_batch_entry(batch, "data", path), size, path)
        images.append(pixels)
        labels.append(_batch_labels(batch, label_key, len(pixels), path))
    return np.concatenate(images), np.concatenate(labels)


class CifarPickleSource(Source):
    """``cifar-10-batches-py/`` (data_batch_1..5, test_batch) or ``cifar-100-python/`` (train, test)."""

    format = "cifar-pickle"

    def __init__(self, path: Path, dataset: str) -> None:
        super().__init__(path)
        self.dataset = dataset
        self.files = CIFAR10_FILES if dataset == CIFAR10 else CIFAR100_FILES

    def dataset_guess(self) -> str:
        return self.dataset

    def splits(self) -> tuple[str, ...]:
        return tuple(split for split, names in self.files.items() if (self.path / names[0]).is_file())

    def check_dataset(self, dataset: str) -> None:
        require_dataset(self.path, dataset, self.dataset)

    def read(self, split: str, dataset: str, limit_per_class: int | None) -> ImageSet:
        label_key, classes = (
            ("labels", CIFAR10_CLASSES) if self.dataset == CIFAR10 else ("fine_labels", CIFAR100_CLASSES)
        )
        images, labels = _read_batches(self.path, self.files[split], label_key, 32)
        keep = first_per_class(labels, limit_per_class)
        return ImageSet(images[keep], labels[keep], classes, self.dataset, split, str(self.path), keep)


class ImageNet16Source(Source):
    """Downsampled ImageNet 16x16: ``train_data_batch_1..10`` and ``val_data`` (labels 1..1000).

    ImageNet16-N keeps the images with label <= N and shifts labels to 0..N-1, as NB201 does
    (``use_num_of_class_only`` in DownsampledImageNet.py); N = 120 is the NB201 benchmark.
    """

    format = "imagenet16-pickle"

    def dataset_guess(self) -> str:
        return IMAGENET16_120

    def splits(self) -> tuple[str, ...]:
        return tuple(split for split, names in IMAGENET16_FILES.items() if (self.path / names[0]).is_file())

    def check_dataset(self, dataset: str) -> None:
        if not dataset.startswith(IMAGENET16_PREFIX):
            require_dataset(self.path, dataset, IMAGENET16_120)

    def read(self, split: str, dataset: str, limit_per_class: int | None) -> ImageSet:
        num_classes = int(dataset.removeprefix(IMAGENET16_PREFIX))
        images, labels = _read_batches(self.path, IMAGENET16_FILES[split], "labels", 16)
        if len(labels) and (labels.min() < 1 or labels.max() > 1000):
            raise RobustnasError(
                f"{self.path}: ImageNet16 labels must lie in 1..1000, found {labels.min()}..{labels.max()}"
            )
        kept = np.flatnonzero(labels <= num_classes)
        kept = kept[first_per_class(labels[kept], limit_per_class)]
        # Names are the downsampled-ImageNet labels (1-based, map_clsloc.txt order); no wnid list ships here.
        classes = tuple(f"imagenet16-label-{label}" for label in range(1, num_classes + 1))
        return ImageSet(images[kept], labels[kept] - 1, classes, dataset, split, str(self.path), kept)
