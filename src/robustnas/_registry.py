"""The lookup every registry (spaces, proxies, attacks, strategies) shares."""
from __future__ import annotations

from typing import TypeVar

from robustnas.errors import RobustnasError

T = TypeVar("T")


def lookup(registry: dict[str, T], name: str, kind: str) -> T:
    """``registry[name]``, or a one-line error naming the known entries of this ``kind``."""
    try:
        return registry[name]
    except (KeyError, TypeError):
        raise RobustnasError(f"unknown {kind} {name!r}; choose one of {', '.join(registry)}") from None
