"""The strategy interface, its options, the Pareto front, and the registry of strategies.

A strategy proposes architectures with ``ask()`` and learns their objective values with
``tell(arch, value)``; the runner (``robustnas.search._run``) evaluates in between. Values are
higher-is-better floats (single objective) or tuples of them (multi-objective). Strategies are
deterministic given their seed and the values told, so a killed search is resumed by replaying it
against the stored evaluations. A new strategy is one registered class::

    from robustnas.search._base import Strategy, register

    @register
    class Greedy(Strategy):
        name = "greedy"  # the --strategy value
        summary = "..."  # one line of --help
        options = {"pool": "architectures per ask"}  # --strategy-option pool=20; type and default
                                                     # are the constructor's

        def __init__(self, space, seed, pool: int = 10) -> None: ...
        def ask(self) -> list[Arch]: ...
        def _observe(self, arch, value) -> None: ...

``robustnas.testing.check_strategy("greedy")`` then checks it as every built-in strategy is checked.
"""
from __future__ import annotations

import inspect
import math
import random
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, NoReturn

import numpy as np

from robustnas._registry import lookup
from robustnas.errors import RobustnasError
from robustnas.spaces import Arch, Space

Value = Any  # float, or tuple[float, ...] for multi-objective strategies
Scored = tuple[Arch, float]


@dataclass(frozen=True)
class Option:
    """A keyword argument of a strategy's constructor that ``--strategy-option NAME=VALUE`` sets:
    its name, the type of its default (a command-line value is parsed with it), the default, help."""

    name: str
    type: type
    default: Any
    help: str


class Strategy(ABC):
    """ask/tell search over ``space`` from ``seed``.

    Class attributes: ``name`` (the ``--strategy`` value), ``summary`` (one line of help),
    ``options`` (name -> help of the constructor's keyword arguments a user may set; their types and
    defaults are read from the constructor, see :func:`strategy_options`) and ``multi_objective``.
    A multi-objective strategy is told a tuple of values per evaluation and gets two more keyword
    arguments from the runner: ``objectives`` (values per evaluation) and ``storage`` (an Optuna
    storage URL where it may copy its study, or None). A single-objective strategy is told one
    float; ``tell`` keeps the best evaluation (``best``) and hands the value to ``_observe``, the
    hook a strategy overrides to learn from it.
    """

    name: ClassVar[str]
    summary: ClassVar[str]
    options: ClassVar[dict[str, str]] = {}
    multi_objective: ClassVar[bool] = False
    differentiable: ClassVar[bool] = False  # trains a supernet (robustnas.search.run) instead of ask/tell

    def __init__(self, space: Space, seed: int) -> None:
        self.space = space
        self.seed = seed
        self.rng = random.Random(seed)
        self._best: Scored | None = None

    @abstractmethod
    def ask(self) -> list[Arch]:
        """The next architectures to evaluate; the runner tells each before asking again.

        Empty only when the strategy has nothing left to propose (``exhaustive`` after the whole space).
        """

    def tell(self, arch: Arch, value: Value) -> None:
        """The objective value of an architecture returned by ``ask``."""
        if not self.multi_objective:
            value = self._single(value)
        self._observe(arch, value)  # first: a tell the strategy refuses changes nothing
        if not self.multi_objective and (self._best is None or value > self._best[1]):  # ties keep the first
            self._best = (arch, value)

    def _observe(self, arch: Arch, value: Value) -> None:
        """Learn from one evaluation (single-objective strategies get a float, never NaN)."""

    @property
    def best(self) -> Scored | None:
        """The (arch, value) with the highest value told so far (the first of ties); None before any.

        -inf (undefined proxy, infeasible) never beats a finite value, as it compares below it.
        """
        if self.multi_objective:
            raise RobustnasError(f"{type(self).__name__} has several objectives and no single best; read its front")
        return self._best

    def _single(self, value: Value) -> float:
        """``value`` as one float: a 1-tuple is unpacked; NaN is refused (undefined values are -inf)."""
        name = type(self).__name__
        if isinstance(value, (tuple, list)):
            if len(value) != 1:
                raise RobustnasError(
                    f"{name} is single-objective but was told {len(value)} values; "
                    f"use {multi_objective_names()} for several objectives"
                )
            value = value[0]
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise RobustnasError(f"{name} was told {value!r}, not a number; objectives return floats") from None
        if math.isnan(number):
            raise RobustnasError(f"{name} was told NaN; an objective reports an undefined value as -inf")
        return number


def pareto_front(points: Sequence[Sequence[float]]) -> list[int]:
    """Indices (ascending) of the points no other point dominates, maximising every component.

    ``p`` dominates ``q`` when ``p >= q`` everywhere and ``p > q`` somewhere, so equal copies never
    dominate each other: all copies of a non-dominated point are kept. -inf is an ordinary (lowest)
    value here. One row of numpy comparisons per point: O(n^2) time, O(n) memory.
    """
    if len(points) == 0:
        return []
    try:
        values = np.asarray(points, dtype=float)
    except ValueError:  # ragged
        values = None
    if values is None or values.ndim != 2:
        raise RobustnasError("pareto_front needs one sequence of values per point, all of one length")
    if np.isnan(values).any():
        raise RobustnasError("pareto_front got NaN; use -inf for an undefined value")
    front = []
    for index, point in enumerate(values):
        dominated = (values >= point).all(axis=1) & (values > point).any(axis=1)
        if not dominated.any():
            front.append(index)
    return front


# ---- the registry ------------------------------------------------------------------------------
REGISTRY: dict[str, type[Strategy]] = {}


def register(cls: type[Strategy]) -> type[Strategy]:
    """Add a strategy class under ``cls.name`` (a second class of that name is an error); a decorator."""
    try:
        strategy_options(cls)
    except TypeError as error:
        raise RobustnasError(f"{cls.__name__} cannot be registered: {error}") from None
    if cls.name in REGISTRY and REGISTRY[cls.name] is not cls:
        raise RobustnasError(f"a search strategy named {cls.name!r} is already registered")
    REGISTRY[cls.name] = cls
    return cls


def unregister(name: str) -> None:
    """Remove a registered strategy (tests that register a toy strategy clean up with this)."""
    REGISTRY.pop(name, None)


def get(name: str) -> type[Strategy]:
    """The registered strategy ``name``, or a one-line error listing the known ones."""
    return lookup(REGISTRY, name, "search strategy")


def names() -> tuple[str, ...]:
    """Names of the registered strategies, in registration order."""
    return tuple(REGISTRY)


def list_strategies() -> dict[str, str]:
    """Name -> one-line summary of every registered strategy."""
    return {name: cls.summary for name, cls in REGISTRY.items()}


def multi_objective_names() -> str:
    """The registered multi-objective strategies, for messages: ``nsga2`` (or ``a or b``)."""
    return " or ".join(name for name, cls in REGISTRY.items() if cls.multi_objective)


def make_strategy(
    name: str, space: Space, seed: int, *, objectives: int = 1, storage: str | None = None, **options: Any
) -> Strategy:
    """The strategy registered as ``name`` for ``objectives`` values per evaluation, with ``options``.

    A multi-objective strategy also gets ``objectives`` and ``storage``; several objectives for a
    single-objective strategy, or an option it does not declare, are one-line errors.
    """
    strategy = get(name)
    check_options(name, options)
    if strategy.multi_objective:
        return strategy(space, seed, objectives=objectives, storage=storage, **options)
    if objectives > 1:
        raise RobustnasError(
            f"{objectives} objectives need --strategy {multi_objective_names()}; {name} optimises one"
        )
    return strategy(space, seed, **options)


# ---- options -----------------------------------------------------------------------------------
def parse_options(name: str, texts: Sequence[str]) -> dict[str, Any]:
    """``KEY=VALUE`` texts (``--strategy-option``) as strategy ``name``'s typed options.

    Options equal to their default are left out, so a search names only what differs from the
    defaults (and resumes whether a default is spelled out or not); the rest keep declaration order.
    """
    given: dict[str, str] = {}
    for text in texts:
        key, _, value = (part.strip() for part in text.partition("="))
        if not key or not value:
            _refuse(name, f"--strategy-option {text!r} is not KEY=VALUE")
        if key in given:
            _refuse(name, f"--strategy-option {key} is given twice")
        _option(name, key)
        given[key] = value
    options = {}
    for option in strategy_options(get(name)):  # declaration order
        value = _parse(name, option, given[option.name]) if option.name in given else option.default
        if value != option.default:
            options[option.name] = value
    return options


def check_options(name: str, options: Iterable[str]) -> None:
    """Refuse an option name strategy ``name`` does not declare (one line naming those it does).

    Values are checked by the strategy's constructor.
    """
    for key in options:
        _option(name, key)


def describe_options(name: str) -> str:
    """Strategy ``name``'s options with their defaults: ``population=50, sample=10`` (or ``none``)."""
    return ", ".join(f"{option.name}={option.default}" for option in strategy_options(get(name))) or "none"


def strategy_options(strategy: type[Strategy]) -> tuple[Option, ...]:
    """The declared options of ``strategy`` with the type and default of its constructor's keyword
    argument of that name (the one place a default is written)."""
    parameters = inspect.signature(strategy).parameters
    missing = [key for key in strategy.options if key not in parameters or parameters[key].default is inspect.Parameter.empty]
    if missing:
        raise TypeError(f"{strategy.__name__} declares option {missing[0]!r}, not a keyword argument of its constructor")
    return tuple(
        Option(key, type(parameters[key].default), parameters[key].default, text) for key, text in strategy.options.items()
    )


def _option(name: str, key: str) -> Option:
    for option in strategy_options(get(name)):
        if option.name == key:
            return option
    _refuse(name, f"{name} has no option {key!r}")


def _parse(name: str, option: Option, text: str) -> Any:
    try:
        return option.type(text)
    except ValueError:
        _refuse(name, f"{name} option {option.name} takes {option.type.__name__}, got {text!r}")


def _refuse(name: str, problem: str) -> NoReturn:
    raise RobustnasError(f"{problem}; {name}'s options: {describe_options(name)}")
