"""Search strategies behind one ask/tell interface (the idiom of Optuna and NASLib's optimizers).

A strategy proposes architectures with ``ask()`` and learns their objective values with
``tell(arch, value)``; the runner (``robustnas.search.run``) evaluates in between. Values are
higher-is-better floats (single objective) or tuples of them (multi-objective). Strategies are
deterministic given their seed and the values told, so a killed search is resumed by replaying it
against the stored evaluations. A new strategy is one class plus one ``STRATEGIES`` line.
"""
from __future__ import annotations

import math
import random
from abc import ABC, abstractmethod
from collections import deque
from typing import Any, Callable, Sequence

import numpy as np

from robustnas.errors import RobustnasError
from robustnas.spaces import Arch, Space

Value = Any  # float, or tuple[float, ...] for multi-objective strategies
Scored = tuple[Arch, float]


class Strategy(ABC):
    """ask/tell search over ``space`` from ``seed``; ``objectives`` values per evaluation.

    ``tell`` keeps the best evaluation of a single-objective strategy (``best``) and hands the
    value to ``_observe``, the hook a strategy overrides to learn from it.
    """

    objectives: int | str = 1  # values per evaluation; "any" for multi-objective strategies

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
        if self.objectives == 1:
            value = self._single(value)
        self._observe(arch, value)  # first: a tell the strategy refuses changes nothing
        if self.objectives == 1 and (self._best is None or value > self._best[1]):  # ties keep the first
            self._best = (arch, value)

    def _observe(self, arch: Arch, value: Value) -> None:
        """Learn from one evaluation (single-objective strategies get a float, never NaN)."""

    @property
    def best(self) -> Scored | None:
        """The (arch, value) with the highest value told so far (the first of ties); None before any.

        -inf (undefined proxy, infeasible) never beats a finite value, as it compares below it.
        """
        if self.objectives != 1:
            raise RobustnasError(f"{type(self).__name__} has several objectives and no single best; read its front")
        return self._best

    def _single(self, value: Value) -> float:
        """``value`` as one float: a 1-tuple is unpacked; NaN is refused (undefined values are -inf)."""
        name = type(self).__name__
        if isinstance(value, (tuple, list)):
            if len(value) != 1:
                raise RobustnasError(
                    f"{name} is single-objective but was told {len(value)} values; use nsga2 for several objectives"
                )
            value = value[0]
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise RobustnasError(f"{name} was told {value!r}, not a number; objectives return floats") from None
        if math.isnan(number):
            raise RobustnasError(f"{name} was told NaN; an objective reports an undefined value as -inf")
        return number


class RandomSearch(Strategy):
    """Uniform random architectures, one per ask (NB201: uniform over the 6,466 classes)."""

    def ask(self) -> list[Arch]:
        return [self.space.sample(self.rng)]


class _BatchStrategy(Strategy):
    """A strategy that decides its next ask only once every architecture of the last ask is told.

    Values are kept in ask order whatever the tell order, so the search depends only on the seed
    and the values (resume by replay). ``_next_batch`` proposes; ``_batch_done`` learns.
    """

    def __init__(self, space: Space, seed: int) -> None:
        super().__init__(space, seed)
        self._asked: list[Arch] = []
        self._values: list[float | None] = []

    def ask(self) -> list[Arch]:
        if None in self._values:
            untold = f"{self._values.count(None)} architectures of its last ask untold"
            raise RobustnasError(f"{type(self).__name__} was asked again with {untold}; tell each first")
        self._asked = self._next_batch()
        self._values = [None] * len(self._asked)
        return list(self._asked)

    def _observe(self, arch: Arch, value: float) -> None:
        for position, (asked, told) in enumerate(zip(self._asked, self._values)):
            if told is None and asked == arch:
                self._values[position] = value
                break
        else:
            raise RobustnasError(
                f"{type(self).__name__} was told {self.space.key(arch)}, which its last ask did not return "
                "(or was told it already); tell each asked architecture once"
            )
        if None not in self._values:
            self._batch_done(list(zip(self._asked, self._values)))

    @abstractmethod
    def _next_batch(self) -> list[Arch]:
        """The architectures of the next ask."""

    @abstractmethod
    def _batch_done(self, results: list[Scored]) -> None:
        """Learn from the whole last ask, ``(arch, value)`` in ask order."""


class WarmupMove(_BatchStrategy):
    """CRoZe's ``mutate`` loop, "warm-up + move" (CRoZe [CODE: sampling.py]; spec §A.6).

    Warm-up: the first ask returns ``init_pool`` distinct random architectures (a repeated draw is
    drawn again, so the pool holds ``init_pool`` different networks); their best becomes the
    parent. Move: each later ask returns ``sample_pool`` mutants of the parent (as drawn: on NB201
    two may coincide, the runner evaluates one once; the parent itself is not asked again), and
    the parent then ALWAYS moves to the best child, even one worse than the parent; ``best`` keeps
    the best ever told. Architectures are immutable values, so children never share state with
    their parent: the official code's in-place mutation of the parent's cell lists cannot happen.
    """

    def __init__(self, space: Space, seed: int, init_pool: int = 50, sample_pool: int = 5) -> None:
        super().__init__(space, seed)
        self.init_pool = _count("init_pool", init_pool)
        self.sample_pool = _count("sample_pool", sample_pool)
        self._parent: Arch | None = None

    @property
    def parent(self) -> Arch | None:
        """The architecture the next ask mutates; None during the warm-up."""
        return self._parent

    def _next_batch(self) -> list[Arch]:
        if self._parent is None:
            return _distinct_samples(self.space, self.rng, self.init_pool)
        return [self.space.mutate(self._parent, self.rng) for _ in range(self.sample_pool)]

    def _batch_done(self, results: list[Scored]) -> None:
        self._parent = _argmax(results)[0]


class RegularizedEvolution(_BatchStrategy):
    """Aging (regularized) evolution, Real et al. 2019, Algorithm 1.

    The first ask returns ``population`` distinct random architectures. Then each ask returns one
    child: ``sample`` members are drawn uniformly WITH replacement (the paper's Algorithm 1 and
    NASLib's ``np.random.choice`` per candidate), the best of them (first of ties) is mutated, and
    on tell the child joins the population and the oldest member leaves, whatever its value.
    """

    def __init__(self, space: Space, seed: int, population: int = 50, sample: int = 10) -> None:
        super().__init__(space, seed)
        self.population = _count("population", population)
        self.sample = _count("sample", sample)
        if self.sample > self.population:
            raise RobustnasError(f"evolution needs sample <= population, got sample {sample} > population {population}")
        self._members: deque[Scored] = deque()

    @property
    def members(self) -> tuple[Scored, ...]:
        """The current population ``(arch, value)``, oldest first."""
        return tuple(self._members)

    def _next_batch(self) -> list[Arch]:
        if not self._members:
            return _distinct_samples(self.space, self.rng, self.population)
        tournament = [self.rng.choice(self._members) for _ in range(self.sample)]
        return [self.space.mutate(_argmax(tournament)[0], self.rng)]

    def _batch_done(self, results: list[Scored]) -> None:
        self._members.extend(results)
        while len(self._members) > self.population:
            self._members.popleft()


class Exhaustive(Strategy):
    """Every architecture of ``space.population()`` once, in a seeded random order, ``batch`` per ask.

    A budget below the population size therefore evaluates a uniform random subset of distinct
    architectures; a budget of the whole population (NB201: 6,466) ranks them all. After the last
    architecture ``ask`` returns an empty list: the search is complete. DARTS and ARNAS are too
    large to enumerate (the space's one-line error at construction).
    """

    def __init__(self, space: Space, seed: int, batch: int = 100) -> None:
        super().__init__(space, seed)
        self.batch = _count("batch", batch)
        self._order = space.population()
        self.rng.shuffle(self._order)
        self._next = 0

    def ask(self) -> list[Arch]:
        archs = self._order[self._next : self._next + self.batch]
        self._next += len(archs)
        return archs


def _argmax(results: list[Scored] | deque[Scored]) -> Scored:
    """The highest-valued ``(arch, value)``, the first of ties (``max`` keeps the first)."""
    return max(results, key=lambda result: result[1])


def _distinct_samples(space: Space, rng: random.Random, count: int) -> list[Arch]:
    """``count`` different random architectures in the order drawn (a repeat is drawn again)."""
    archs: dict[Arch, None] = {}
    for _ in range(_DRAWS_PER_ARCH * count):
        archs.setdefault(space.sample(rng), None)
        if len(archs) == count:
            return list(archs)
    raise RobustnasError(
        f"drew only {len(archs)} distinct {space.name} architectures in {_DRAWS_PER_ARCH * count} draws; ask for fewer"
    )


_DRAWS_PER_ARCH = 100


def _count(name: str, value: Any) -> int:
    """A strategy option that counts something: an integer >= 1."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise RobustnasError(f"search option {name} must be an integer >= 1, got {value!r}")
    return value


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


def _nsga2(space: Space, seed: int, **options: Any) -> Strategy:
    from robustnas.search.nsga2 import NSGA2  # imports optuna (slow): only when asked for

    return NSGA2(space, seed, **options)


STRATEGIES: dict[str, Callable[..., Strategy]] = {
    "random": RandomSearch,
    "warmup-move": WarmupMove,
    "evolution": RegularizedEvolution,
    "exhaustive": Exhaustive,
    "nsga2": _nsga2,
}


def make_strategy(name: str, space: Space, seed: int, **options: Any) -> Strategy:
    """The strategy registered as ``name``; ``options`` are its keyword arguments."""
    if name not in STRATEGIES:
        raise RobustnasError(f"unknown search strategy {name!r}; choose one of {', '.join(STRATEGIES)}")
    return STRATEGIES[name](space, seed, **options)
