"""One entry point for every supported format: ``load_dataset`` and ``describe``.

The format is recognised from the path: a ``.npz`` or ``.mat`` file, a ``.zip`` of an image
folder, or a directory (official CIFAR pickles, ImageNet16 pickles, SVHN .mat files,
Tiny-ImageNet, or an ImageFolder). No path means the CIFAR-10 sample shipped in the package.
"""
from __future__ import annotations

import dataclasses
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from robustnas.data._arrays import NpzSource, SvhnMatSource
from robustnas.data._folders import DirContainer, FolderSource, ZipContainer
from robustnas.data._imageset import ImageSet, first_per_class
from robustnas.data._names import CIFAR10, CIFAR100, SPLITS, canonical_dataset, check_split
from robustnas.data._pickled import CIFAR100_DIR, CIFAR10_DIR, CifarPickleSource, ImageNet16Source
from robustnas.data._source import Source, require_dataset
from robustnas.errors import RobustnasError

EMBEDDED_SAMPLE = "cifar10-sample.npz"
EMBEDDED_SOURCE = f"embedded:{EMBEDDED_SAMPLE}"


def load_dataset(
    path: str | Path | None = None,
    dataset: str | None = None,
    split: str = "train",
    *,
    limit_per_class: int | None = None,
) -> ImageSet:
    """Read one split ('train' or 'test') of the dataset at ``path`` as an ImageSet.

    ``dataset`` (e.g. 'cifar10', 'ImageNet16-120') is guessed from the files when None and
    checked against them when given. ``limit_per_class`` keeps the first k images of each class
    (file order) and, for image folders, decodes only those. ``path=None`` is the embedded
    CIFAR-10 sample. Any unusable input raises one RobustnasError naming the file.
    """
    check_split(split)
    if path is None:
        if dataset is not None:
            require_dataset(Path(EMBEDDED_SOURCE), canonical_dataset(dataset), CIFAR10)
        embedded = _embedded_split(split)
        return (
            embedded
            if limit_per_class is None
            else embedded.subset(first_per_class(embedded.labels, limit_per_class))
        )
    source = open_source(Path(path).expanduser())
    return source.load(split, canonical_dataset(dataset) if dataset else None, limit_per_class)


def data_path(path: str | Path | None) -> str | None:
    """``path`` as settings record it: absolute, since the same relative name in another folder is
    other data; None (the embedded sample) stays None."""
    return str(Path(path).resolve()) if path else None


def require_data(path: str | Path | None, dataset: str) -> None:
    """The embedded sample is CIFAR-10: any other dataset needs its files (a one-line error)."""
    if path is None and canonical_dataset(dataset) != CIFAR10:
        raise RobustnasError(f"the embedded sample is CIFAR-10; give --data for {dataset}")


def describe(path: str | Path | None = None) -> dict[str, Any]:
    """JSON-able summary of a dataset location (for ``robustnas data info PATH``).

    Keys: path, format, dataset (guess), classes, splits ({split: {images, per_class, image_shape}}).
    ``image_shape`` is [H, W, 3], the size every image of the split has (the size load_dataset
    returns): images of different sizes raise an error naming one of each, as loading would.
    Image folders are summarised from their file listing and image headers, without decoding.
    A location without any images raises.
    """
    if path is None:
        splits = {split: _split_summary(_embedded_split(split)) for split in SPLITS}
        return {
            "path": EMBEDDED_SOURCE,
            "format": "npz",
            "dataset": CIFAR10,
            "classes": list(_embedded_split("train").classes),
            "splits": splits,
        }
    source = open_source(Path(path).expanduser())
    if not source.splits():
        raise RobustnasError(f"{source.path}: no images found (neither a train nor a test split)")
    summaries = {split: source.summary(split) for split in source.splits()}
    classes = [summary.pop("classes") for summary in summaries.values()]
    return {
        "path": str(source.path),
        "format": source.format,
        "dataset": source.dataset_guess(),
        "classes": classes[0] if classes else [],
        "splits": summaries,
    }


def open_source(path: Path) -> Source:
    """Recognise the format of ``path``."""
    if not path.exists():
        raise RobustnasError(f"{path}: no such file or directory")
    if path.is_dir():
        return _directory_source(path)
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return NpzSource(path)
    if suffix == ".mat":
        return SvhnMatSource(path)
    if suffix == ".zip":
        return FolderSource(path, ZipContainer(path))
    raise RobustnasError(
        f"{path}: unrecognised data file; give a .npz, .mat or .zip file or a directory "
        "(extract .tar.gz downloads first; for pickled batches give their directory)"
    )


def _directory_source(path: Path) -> Source:
    for root in (path, path / CIFAR10_DIR, path / CIFAR100_DIR):
        if (root / "data_batch_1").is_file() or (root / "test_batch").is_file():
            return CifarPickleSource(root, CIFAR10)
        if (root / "train").is_file() or (root / "test").is_file():
            return CifarPickleSource(root, CIFAR100)
    if (path / "train_data_batch_1").is_file() or (path / "val_data").is_file():
        return ImageNet16Source(path)
    if any((path / f"{split}_32x32.mat").is_file() for split in SPLITS):
        return SvhnMatSource(path)
    return FolderSource(path, DirContainer(path))


@lru_cache(maxsize=None)
def _embedded_split(split: str) -> ImageSet:
    """One split of the shipped sample, read once per process (its arrays are read-only)."""
    resource = resources.files("robustnas").joinpath("_embedded", EMBEDDED_SAMPLE)
    with resources.as_file(resource) as file:
        images = NpzSource(file).read(split, CIFAR10, None)
    return dataclasses.replace(images, source=EMBEDDED_SOURCE)


def _split_summary(images: ImageSet) -> dict[str, Any]:
    return {
        "images": len(images),
        "per_class": images.class_counts(),
        "image_shape": list(images.image_shape),
    }
