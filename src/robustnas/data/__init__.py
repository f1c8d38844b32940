"""Datasets for robustnas: readers for the common formats, an embedded CIFAR-10 sample,
deterministic batches and pixel-space normalisation.

    images = load_dataset()                                # embedded CIFAR-10 sample, train split
    images = load_dataset("cifar10-jpeg.zip", split="test")
    x, y = sample_batch(images, 64, seed=0, augment=True)  # x in [0,1], [64,3,32,32]
    model = NormalizedModel.for_dataset(net, "cifar10")    # attacks then work in pixel space
"""
from __future__ import annotations

from robustnas.data._cache import CACHE_ENV, cache_dir
from robustnas.data._imageset import ImageSet
from robustnas.data._loader import data_path, describe, load_dataset, require_data
from robustnas.data._names import CIFAR10_CLASSES, CIFAR100_CLASSES, SPLITS, canonical_dataset
from robustnas.data._normalize import NORMALIZATION, NormalizedModel, normalization
from robustnas.data._sampling import crop_padding, iterate_batches, random_crop_flip, sample_batch

__all__ = [
    "CACHE_ENV",
    "CIFAR100_CLASSES",
    "CIFAR10_CLASSES",
    "ImageSet",
    "NORMALIZATION",
    "NormalizedModel",
    "SPLITS",
    "cache_dir",
    "canonical_dataset",
    "crop_padding",
    "data_path",
    "describe",
    "iterate_batches",
    "load_dataset",
    "normalization",
    "random_crop_flip",
    "require_data",
    "sample_batch",
]
