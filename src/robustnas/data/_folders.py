"""Readers for folders of encoded images (JPEG, PNG, ...), as a directory or a ``.zip`` of one.

Two layouts:

* ImageFolder: ``<split>/<class>/<image>`` with split folders ``train`` and ``test`` (``val`` is
  read as ``test`` where there is no ``test``); labels index the sorted class-folder names, as
  torchvision's ImageFolder does.
* Tiny-ImageNet-200 as published: ``wnids.txt``, ``train/<wnid>/images/*.JPEG`` and
  ``val/images/*.JPEG`` labelled by ``val/val_annotations.txt`` (its val split is our ``test``);
  labels index the sorted wnids (the class order of ImageFolder on ``train/``).

Within a class, files are in natural order (``img_2`` before ``img_10``). A single top-level
folder (``tiny-imagenet-200/`` in the official zip) is looked through. Decoding uses Pillow in
one process (2-worker process and thread pools were no faster on the 2-CPU development machine,
see docs/results/data-load.md); the result is cached on disk (robustnas.data._cache), keyed on
the archive's path, size and mtime, so a second load skips listing and decoding altogether.
"""
from __future__ import annotations

import io
import os
import re
import stat
import zipfile
from abc import ABC, abstractmethod
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from PIL import Image, UnidentifiedImageError

from robustnas.data._cache import cached_images
from robustnas.data._imageset import ImageSet, check_limit, first_per_class
from robustnas.data._names import CIFAR10, CIFAR100, SVHN, TINY_IMAGENET, known_classes
from robustnas.data._source import Source
from robustnas.data._zips import ZIP_ERRORS, open_zip
from robustnas.errors import RobustnasError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
_SPLIT_FOLDERS = {"train": ("train",), "test": ("test", "val")}
# Datasets whose classes are fixed: a folder holding one of them cannot be loaded as another.
_FIXED_CLASSES = (CIFAR10, CIFAR100, SVHN, TINY_IMAGENET)


def natural_key(name: str) -> list[Any]:
    """Sort 'img_2' before 'img_10' so that file order follows the numbering."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


# ---- containers: where the files are ------------------------------------------------------------
class Container(ABC):
    """Files of a directory tree or a zip archive, named by relative POSIX paths."""

    is_zip = False

    def __init__(self, path: Path) -> None:
        self.path = path

    @cached_property
    def _listing(self) -> tuple[str, list[str]]:
        """(prefix, names): all file names with a single shared top-level folder stripped."""
        prefix, names = "", self._list()
        while names and all("/" in n for n in names) and len({n.split("/", 1)[0] for n in names}) == 1:
            top = names[0].split("/", 1)[0]
            if top in ("train", "test", "val"):
                break
            prefix += top + "/"
            names = [n.split("/", 1)[1] for n in names]
        return prefix, names

    @property
    def names(self) -> list[str]:
        return self._listing[1]

    def read(self, name: str) -> bytes:
        try:
            return self._read(self._listing[0] + name)
        except (KeyError, *ZIP_ERRORS) as error:
            raise RobustnasError(f"{self.where(name)}: cannot read ({error})") from None

    def where(self, name: str) -> str:
        full = self._listing[0] + name
        return f"{self.path}:{full}" if self.is_zip else str(self.path / full)

    @abstractmethod
    def _list(self) -> list[str]: ...

    @abstractmethod
    def _read(self, name: str) -> bytes: ...

    @abstractmethod
    def fingerprint(self) -> str:
        """Absolute path, size and mtime: changes whenever the files may have changed."""


class DirContainer(Container):
    """A directory tree. Symlinks to files are followed; symlinked folders are not entered (as in
    ``os.walk``). Every listed entry must be a readable regular file: a broken or looping symlink,
    a FIFO or an unreadable folder stops the listing with an error naming it, rather than being
    skipped (a silently shorter dataset) or hanging a later read."""

    @cached_property
    def _files(self) -> dict[str, os.stat_result]:
        found = {}
        for folder, _, files in os.walk(self.path, onerror=_unlistable):
            relative = Path(folder).relative_to(self.path).as_posix()
            for file in files:
                found[file if relative == "." else f"{relative}/{file}"] = _regular_file(Path(folder, file))
        return found

    def _list(self) -> list[str]:
        return list(self._files)

    def _read(self, name: str) -> bytes:
        return (self.path / name).read_bytes()

    def fingerprint(self) -> str:
        stats = self._files.values()
        total = sum(s.st_size for s in stats)
        latest = max((s.st_mtime_ns for s in stats), default=0)
        return f"{self.path.resolve()}|dir|{len(stats)}|{total}|{latest}"


def _unlistable(error: OSError) -> None:
    raise RobustnasError(f"{error.filename}: cannot list this folder ({error.strerror})")


def _regular_file(path: Path) -> os.stat_result:
    try:
        status = path.stat()
    except OSError as error:
        raise RobustnasError(
            f"{path}: cannot read ({error.strerror}); a broken or looping symlink? remove or fix it"
        ) from None
    if not stat.S_ISREG(status.st_mode):
        raise RobustnasError(f"{path}: not a regular file (a FIFO, socket or device); remove it")
    return status


class ZipContainer(Container):
    is_zip = True

    @cached_property
    def archive(self) -> zipfile.ZipFile:
        return open_zip(self.path, "zip archive")

    def _list(self) -> list[str]:
        return [info.filename for info in self.archive.infolist() if not info.is_dir()]

    def _read(self, name: str) -> bytes:
        return self.archive.read(name)

    def fingerprint(self) -> str:
        stat = self.path.stat()
        return f"{self.path.resolve()}|zip|{stat.st_size}|{stat.st_mtime_ns}"


def decode_images(container: Container, names: list[str]) -> np.ndarray:
    """Decode ``names`` to uint8 [N,H,W,3] RGB; every image must have the first one's size."""
    first = decode_image(container, names[0]) if names else np.zeros((0, 0, 3), np.uint8)
    images = np.empty((len(names), *first.shape), dtype=np.uint8)
    for position, name in enumerate(names):
        pixels = first if position == 0 else decode_image(container, name)
        if pixels.shape != first.shape:
            raise _size_mismatch(container, name, pixels.shape, names[0], first.shape)
        images[position] = pixels
    return images


def common_image_shape(container: Container, names: list[str]) -> tuple[int, int, int]:
    """(H, W, 3) shared by all ``names`` (at least one), from their headers only (no decoding, about
    50 us an image); raises naming the first image of another size, as :func:`decode_images` would."""
    first = _header_shape(container, names[0])
    for name in names[1:]:
        shape = _header_shape(container, name)
        if shape != first:
            raise _size_mismatch(container, name, shape, names[0], first)
    return first


def _header_shape(container: Container, name: str) -> tuple[int, int, int]:
    with _opened_image(container, name) as image:
        return image.height, image.width, 3


def decode_image(container: Container, name: str) -> np.ndarray:
    with _opened_image(container, name) as image:
        return np.asarray(image.convert("RGB"))


@contextmanager
def _opened_image(container: Container, name: str) -> Iterator[Image.Image]:
    """The image ``name`` opened by Pillow (header read, pixels decoded on use), with one error type."""
    encoded = container.read(name)
    try:
        with Image.open(io.BytesIO(encoded)) as image:
            yield image
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as error:
        raise RobustnasError(f"{container.where(name)}: not a decodable image: {error}") from None


def _size_mismatch(
    container: Container, name: str, shape: tuple[int, ...], first: str, first_shape: tuple[int, ...]
) -> RobustnasError:
    return RobustnasError(
        f"{container.where(name)}: image is {shape[1]}x{shape[0]} but {container.where(first)} is "
        f"{first_shape[1]}x{first_shape[0]}; resize them to one size"
    )


# ---- layouts: which file is which image of which class ------------------------------------------
class Layout(ABC):
    name = ""

    def __init__(self, container: Container) -> None:
        self.container = container

    @property
    @abstractmethod
    def classes(self) -> tuple[str, ...]:
        """Class names; labels index this tuple."""

    @abstractmethod
    def splits(self) -> tuple[str, ...]: ...

    @abstractmethod
    def entries(self, split: str) -> tuple[list[str], np.ndarray]:
        """File names and labels of one split, in canonical order."""

    @abstractmethod
    def dataset_guess(self) -> str: ...


class ImageFolderLayout(Layout):
    name = "imagefolder"

    @cached_property
    def _members(self) -> dict[str, list[tuple[str, str]]]:
        """split -> [(class, name)] for images named <split folder>/<class>/<image>, in canonical order."""
        grouped: dict[str, list[tuple[str, str]]] = {}
        for name in self.container.names:
            parts = name.split("/")
            if len(parts) == 3 and name.lower().endswith(IMAGE_SUFFIXES):
                grouped.setdefault(parts[0], []).append((parts[1], name))
        by_split = {}
        for split, folders in _SPLIT_FOLDERS.items():
            folder = next((f for f in folders if f in grouped), None)
            if folder is not None:
                by_split[split] = sorted(grouped[folder], key=lambda m: (m[0], natural_key(m[1])))
        return by_split

    def splits(self) -> tuple[str, ...]:
        return tuple(self._members)

    @cached_property
    def classes(self) -> tuple[str, ...]:
        return tuple(sorted({cls for members in self._members.values() for cls, _ in members}))

    def entries(self, split: str) -> tuple[list[str], np.ndarray]:
        label_of = {cls: label for label, cls in enumerate(self.classes)}
        members = self._members[split]
        return [name for _, name in members], np.array([label_of[cls] for cls, _ in members], dtype=np.int64)

    def dataset_guess(self) -> str:
        guess = next((d for d in (CIFAR10, CIFAR100, SVHN) if known_classes(d) == self.classes), None)
        return guess or self.container.path.stem.lower()


class TinyImageNetLayout(Layout):
    name = "tiny-imagenet"

    @cached_property
    def classes(self) -> tuple[str, ...]:
        text = self.container.read("wnids.txt").decode("utf-8", errors="replace")
        wnids = tuple(sorted(line.strip() for line in text.splitlines() if line.strip()))
        if not wnids:
            raise RobustnasError(f"{self.container.where('wnids.txt')}: lists no classes")
        return wnids

    def splits(self) -> tuple[str, ...]:
        present = {
            "train": bool(self._train_pairs),
            "test": "val/val_annotations.txt" in self.container.names,
        }
        return tuple(split for split, found in present.items() if found)

    def dataset_guess(self) -> str:
        return TINY_IMAGENET

    def entries(self, split: str) -> tuple[list[str], np.ndarray]:
        label_of = {wnid: label for label, wnid in enumerate(self.classes)}
        pairs = self._train_pairs if split == "train" else self._val_pairs()
        for name, wnid in pairs:
            if wnid not in label_of:
                raise RobustnasError(f"{self.container.where(name)}: class {wnid} is not listed in wnids.txt")
        return [name for name, _ in pairs], np.array([label_of[wnid] for _, wnid in pairs], dtype=np.int64)

    @cached_property
    def _train_pairs(self) -> list[tuple[str, str]]:
        pairs = [
            (n, n.split("/")[1])
            for n in self.container.names
            if n.startswith("train/")
            and n.count("/") == 3
            and n.split("/")[2] == "images"
            and n.lower().endswith(IMAGE_SUFFIXES)
        ]
        return sorted(pairs, key=lambda pair: (pair[1], natural_key(pair[0])))

    def _val_pairs(self) -> list[tuple[str, str]]:
        annotations = "val/val_annotations.txt"
        present = set(self.container.names)
        pairs = []
        text = self.container.read(annotations).decode("utf-8", errors="replace")
        for line_number, line in enumerate(text.splitlines(), start=1):
            fields = line.split("\t")
            if len(fields) < 2 or f"val/images/{fields[0]}" not in present:
                raise RobustnasError(
                    f"{self.container.where(annotations)}: line {line_number} must name an image in val/images "
                    f"and its wnid, got {line!r}"
                )
            pairs.append((f"val/images/{fields[0]}", fields[1]))
        return sorted(pairs, key=lambda pair: natural_key(pair[0]))


# ---- the source -----------------------------------------------------------------------------------
class FolderSource(Source):
    """A directory or zip of encoded images; the layout is recognised from the file names."""

    def __init__(self, path: Path, container: Container) -> None:
        super().__init__(path)
        self.container = container

    @cached_property
    def layout(self) -> Layout:
        names = self.container.names
        if "wnids.txt" in names:
            return TinyImageNetLayout(self.container)
        if any(
            n.count("/") == 2
            and n.split("/", 1)[0] in ("train", "test", "val")
            and n.lower().endswith(IMAGE_SUFFIXES)
            for n in names
        ):
            return ImageFolderLayout(self.container)
        raise RobustnasError(
            f"{self.path}: no class folders found; expected train/<class>/<image> and test/<class>/<image> "
            "(.jpg/.png), Tiny-ImageNet's wnids.txt layout, or CIFAR/ImageNet16 pickled batches"
        )

    @property
    def format(self) -> str:  # type: ignore[override]
        return f"{self.layout.name}-{'zip' if self.container.is_zip else 'dir'}"

    def dataset_guess(self) -> str:
        return self.layout.dataset_guess()

    def splits(self) -> tuple[str, ...]:
        return self.layout.splits()

    def check_dataset(self, dataset: str) -> None:
        _check_folder_dataset(self.path, dataset, self.dataset_guess())

    def load(self, split: str, dataset: str | None, limit_per_class: int | None) -> ImageSet:
        """Served from the decoded cache when possible: no listing, no decoding."""
        stored = self._decoded(split, dataset, limit_per_class)
        guess = str(stored["dataset_guess"])
        name = dataset or guess
        _check_folder_dataset(self.path, name, guess)
        return ImageSet(
            stored["images"],
            stored["labels"],
            tuple(stored["classes"].tolist()),
            name,
            split,
            str(self.path),
            stored["index"],
        )

    def read(self, split: str, dataset: str, limit_per_class: int | None) -> ImageSet:
        return self.load(split, dataset, limit_per_class)

    def summary(self, split: str) -> dict[str, Any]:
        """Counts from the file listing and the image size from every image's header (no decoding)."""
        names, labels = self._entries(split)
        return {
            "images": len(names),
            "per_class": np.bincount(labels, minlength=len(self.layout.classes)).tolist(),
            "image_shape": list(common_image_shape(self.container, names)),
            "classes": list(self.layout.classes),
        }

    def _entries(self, split: str) -> tuple[list[str], np.ndarray]:
        if split not in self.splits():
            raise self.missing_split(split)
        names, labels = self.layout.entries(split)
        if not names:
            raise RobustnasError(f"{self.path}: no images in the '{split}' split")
        return names, labels

    def _decoded(self, split: str, dataset: str | None, limit_per_class: int | None) -> dict[str, np.ndarray]:
        key = f"{split}|{check_limit(limit_per_class)}|{self.container.fingerprint()}"

        def decode() -> dict[str, np.ndarray]:
            self.check_dataset(dataset or self.dataset_guess())
            names, labels = self._entries(split)
            keep = first_per_class(labels, limit_per_class)
            return {
                "images": decode_images(self.container, [names[i] for i in keep]),
                "labels": labels[keep],
                "index": keep,
                "classes": np.array(self.layout.classes, dtype=str),
                "dataset_guess": np.array(self.dataset_guess()),
            }

        return cached_images(f"{self.path.stem}-{split}", key, decode)


def _check_folder_dataset(path: Path, requested: str, holds: str) -> None:
    if requested != holds and (requested in _FIXED_CLASSES or holds in _FIXED_CLASSES):
        raise RobustnasError(f"{path} holds {holds}, not {requested}: pass dataset='{holds}' or another path")
