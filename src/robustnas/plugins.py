"""Plug-ins from other packages: modules named in the ``robustnas.plugins`` entry point group are
imported before a command runs, so the spaces, proxies, attacks and strategies they register are
there for ``robustnas ...`` like the built-in ones. A package declares them in its pyproject.toml::

    [project.entry-points."robustnas.plugins"]
    chain = "my_package.chain_space"      # a module that calls robustnas.spaces.register(...)
"""
from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from robustnas.errors import RobustnasError

GROUP = "robustnas.plugins"


def load_plugins() -> list[str]:
    """Import every module of the entry point group (once); their names, in order."""
    loaded = []
    for point in entry_points(group=GROUP):
        try:
            importlib.import_module(point.value.partition(":")[0])
        except Exception as error:  # noqa: BLE001 - a broken plug-in names itself in one line
            reason = str(error).strip().splitlines()[0] if str(error).strip() else ""
            raise RobustnasError(f"plug-in {point.name} ({point.value}) failed to load: {type(error).__name__}: {reason}") from None
        loaded.append(point.name)
    return loaded
