"""The single-objective search strategies: random, CRoZe's warm-up + move, aging evolution, exhaustive.

Each is a ``robustnas.search._base.Strategy`` (ask/tell, the idiom of Optuna and NASLib's
optimizers) registered under its ``--strategy`` name; NSGA-II (several objectives) is in ``nsga2``.
"""
from __future__ import annotations

import random
from abc import abstractmethod
from collections import deque
from typing import Any

from robustnas.errors import RobustnasError
from robustnas.search._base import Scored, Strategy, register
from robustnas.spaces import Arch, Space


@register
class RandomSearch(Strategy):
    """Uniform random architectures, one per ask (NB201: uniform over the 6,466 classes)."""

    name = "random"
    summary = "uniform random architectures"

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


@register
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

    name = "warmup-move"
    summary = "CRoZe's warm-up + move: the best of a random pool, then always to the best of its mutants"
    options = {"init_pool": "distinct random architectures of the warm-up", "sample_pool": "mutants of the parent per move"}

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


@register
class RegularizedEvolution(_BatchStrategy):
    """Aging (regularized) evolution, Real et al. 2019, Algorithm 1.

    The first ask returns ``population`` distinct random architectures. Then each ask returns one
    child: ``sample`` members are drawn uniformly WITH replacement (the paper's Algorithm 1 and
    NASLib's ``np.random.choice`` per candidate), the best of them (first of ties) is mutated, and
    on tell the child joins the population and the oldest member leaves, whatever its value.
    """

    name = "evolution"
    summary = "aging (regularized) evolution, Real et al. 2019"
    options = {
        "population": "members; the first are distinct random architectures",
        "sample": "members drawn per tournament, <= population",
    }

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


@register
class Exhaustive(Strategy):
    """Every architecture of ``space.population()`` once, in a seeded random order, ``batch`` per ask.

    A budget below the population size therefore evaluates a uniform random subset of distinct
    architectures; a budget of the whole population (NB201: 6,466) ranks them all. After the last
    architecture ``ask`` returns an empty list: the search is complete. Spaces that cannot be
    enumerated (DARTS, ARNAS, CRoZe's) refuse with one line at construction.
    """

    name = "exhaustive"
    summary = "every architecture of an enumerable space (NB201) once, in a seeded random order"
    options = {"batch": "architectures per ask"}

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
