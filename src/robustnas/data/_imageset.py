"""ImageSet: one split of one dataset as read-only uint8 HWC pixels plus int64 labels."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from robustnas.errors import RobustnasError


@dataclass(frozen=True)
class ImageSet:
    """Images uint8 [N,H,W,3], labels int64 [N] in 0..len(classes)-1, and where they came from.

    ``index`` is each image's position in the original split where the source records it
    (e.g. ``train_index`` of the CIFAR-10 raw subset), otherwise its position in the full split as
    the source orders it, so subsets and ``limit_per_class`` loads keep exact provenance.
    Arrays are made read-only: an ImageSet may be shared (the embedded sample is cached).
    """

    images: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...]
    dataset: str
    split: str
    source: str
    index: np.ndarray

    def __post_init__(self) -> None:
        images, labels, index = self.images, self.labels, self.index
        where = f"{self.source} ({self.split})"
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
            raise RobustnasError(
                f"{where}: images must be uint8 [N,H,W,3], got {images.dtype} {list(images.shape)}"
            )
        if labels.shape != (len(images),) or index.shape != (len(images),):
            raise RobustnasError(
                f"{where}: {len(images)} images but labels {list(labels.shape)}, index {list(index.shape)}"
            )
        if len(labels) and (labels.min() < 0 or labels.max() >= len(self.classes)):
            raise RobustnasError(
                f"{where}: labels must lie in 0..{len(self.classes) - 1}, found {labels.min()}..{labels.max()}"
            )
        for name, array, dtype in (
            ("images", images, np.uint8),
            ("labels", labels, np.int64),
            ("index", index, np.int64),
        ):
            frozen = np.ascontiguousarray(array, dtype=dtype)
            frozen.flags.writeable = False
            object.__setattr__(self, name, frozen)
        object.__setattr__(self, "classes", tuple(str(c) for c in self.classes))

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(H, W, 3)."""
        return tuple(int(s) for s in self.images.shape[1:])  # type: ignore[return-value]

    def subset(self, positions: np.ndarray | list[int]) -> "ImageSet":
        """The images at ``positions`` (in this set), keeping classes and provenance."""
        positions = np.asarray(positions, dtype=np.int64)
        return ImageSet(
            self.images[positions],
            self.labels[positions],
            self.classes,
            self.dataset,
            self.split,
            self.source,
            self.index[positions],
        )

    def class_counts(self) -> list[int]:
        return np.bincount(self.labels, minlength=self.num_classes).tolist()


def first_per_class(labels: np.ndarray, limit: int | None) -> np.ndarray:
    """Positions of the first ``limit`` items of each class, in their original order (all if None)."""
    if check_limit(limit) is None:
        return np.arange(len(labels), dtype=np.int64)
    labels = np.asarray(labels)
    order = np.argsort(labels, kind="stable")
    sorted_labels = labels[order]
    starts = np.searchsorted(sorted_labels, sorted_labels, side="left")
    rank_in_class = np.arange(len(labels)) - starts
    return np.sort(order[rank_in_class < limit])


def check_limit(limit: int | None) -> int | None:
    """Validate ``limit_per_class`` (None or a positive integer)."""
    if limit is not None and (
        isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 1
    ):
        raise RobustnasError(f"limit_per_class must be a positive integer or None, got {limit!r}")
    return limit
