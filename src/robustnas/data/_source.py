"""The interface every on-disk format implements, so detection, loading and `describe` are uniform."""
from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

from robustnas.data._imageset import ImageSet
from robustnas.errors import RobustnasError


class Source(ABC):
    """A dataset location in one format: which dataset it holds, which splits, and how to read one."""

    format: str = ""

    def __init__(self, path: Path) -> None:
        self.path = path

    @abstractmethod
    def dataset_guess(self) -> str:
        """Canonical dataset name this location most likely holds."""

    @abstractmethod
    def splits(self) -> tuple[str, ...]:
        """The splits ('train', 'test') present."""

    @abstractmethod
    def read(self, split: str, dataset: str, limit_per_class: int | None) -> ImageSet:
        """Decode one split; ``dataset`` is canonical and already checked with ``check_dataset``."""

    def load(self, split: str, dataset: str | None, limit_per_class: int | None) -> ImageSet:
        """Check the dataset name (guessed when None) and the split, then read."""
        name = dataset or self.dataset_guess()
        self.check_dataset(name)
        if split not in self.splits():
            raise self.missing_split(split)
        return self.read(split, name, limit_per_class)

    def check_dataset(self, dataset: str) -> None:
        """Raise if this location cannot hold ``dataset``; formats tied to one dataset override this."""

    def summary(self, split: str) -> dict[str, Any]:
        """Image count, per-class counts, image shape and classes of one split (decodes it)."""
        images = self.read(split, self.dataset_guess(), None)
        return {
            "images": len(images),
            "per_class": images.class_counts(),
            "image_shape": list(images.image_shape),
            "classes": list(images.classes),
        }

    def missing_split(self, split: str) -> RobustnasError:
        return RobustnasError(
            f"{self.path}: no '{split}' split here (found: {', '.join(self.splits()) or 'none'})"
        )


def require_dataset(path: Path, requested: str, holds: str) -> None:
    """Formats that hold exactly one dataset reject a different requested name."""
    if requested != holds:
        raise RobustnasError(f"{path} holds {holds}, not {requested}: pass dataset='{holds}' or another path")
