"""The lookup every registry (spaces, proxies, attacks, strategies) shares."""
from __future__ import annotations

from typing import TypeVar

from robustnas.errors import RobustnasError

T = TypeVar("T")


def lookup(registry: dict[str, T], name: str, kind: str) -> T:
    """``registry[name]`` (loading the installed plug-ins first when it is missing: a Python script
    or a spawned worker has not run the command line's loader), or a one-line error naming the
    known entries of this ``kind``."""
    if isinstance(name, str) and name not in registry:
        from robustnas.plugins import load_plugins

        load_plugins()
    try:
        return registry[name]
    except (KeyError, TypeError):
        raise RobustnasError(
            f"unknown {kind} {name!r}; choose one of {', '.join(registry)} (or install the plug-in that adds it)"
        ) from None
