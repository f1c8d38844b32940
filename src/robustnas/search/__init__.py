"""Architecture search: strategies (ask/tell), objectives, and the resumable runner.

    from robustnas.search import make_strategy, names, run, SearchSettings
    names()                                  # ('random', 'warmup-move', 'evolution', 'exhaustive', 'nsga2', 'mgda')

Importing the package registers every built-in strategy; a new one is a ``Strategy`` subclass with
``@register`` (see README "Extending robustnas").
"""
from typing import Any

from robustnas.search import _strategies  # noqa: F401  (the classes register themselves, in this order)
from robustnas.search import _nsga2  # noqa: F401
from robustnas.search import _gradient  # noqa: F401
from robustnas.search._base import (
    Option,
    Strategy,
    get,
    list_strategies,
    make_strategy,
    names,
    pareto_front,
    register,
    unregister,
)

# The runner and objectives load pandas: imported on first use, so the command line's help stays fast.
_LAZY = {"SearchSettings": "_run", "run": "_run", "plan": "_run", "search": "_run", "parse_objective": "_objectives"}

__all__ = [
    "Option",
    "SearchSettings",
    "Strategy",
    "get",
    "list_strategies",
    "make_strategy",
    "names",
    "pareto_front",
    "parse_objective",
    "plan",
    "register",
    "run",
    "search",
    "unregister",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"robustnas.search.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'robustnas.search' has no attribute {name!r}")
