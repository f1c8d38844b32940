"""Search strategies: warm-up + move (CRoZe), aging evolution (Real et al. 2019), exhaustive.

The NB201 objective is the benchmark's clean CIFAR-10 accuracy of the representative (exact,
deterministic); the DARTS objective counts separable convolutions.
"""
from __future__ import annotations

import math
import random
import re
from typing import Callable

import pytest

from robustnas.bench import Benchmark
from robustnas.errors import RobustnasError
from robustnas.search._base import (
    Strategy,
    list_strategies,
    make_strategy,
    names,
    parse_options,
    register,
    unregister,
)
from robustnas.spaces import Arch, Space
from robustnas.spaces import get as get_space
from robustnas.search._strategies import Exhaustive, RandomSearch, RegularizedEvolution, WarmupMove
from robustnas.testing import check_strategy

NB201 = get_space("nb201")
DARTS = get_space("darts")


@pytest.fixture(scope="module")
def clean() -> Callable[[Arch], float]:
    """Clean CIFAR-10 accuracy of an NB201 representative (the benchmark row of its index)."""
    column = Benchmark().table("cifar10")["clean"]
    values = dict(zip(column.index.tolist(), column.tolist()))
    return lambda arch: values[arch.index]


def sep_convs(arch: Arch) -> float:
    """A cheap deterministic DARTS objective: separable convolutions in both cells."""
    return float(sum(op.startswith("sep_conv") for cell in arch.CELLS for op, _ in getattr(arch, cell)))


def drive(strategy: Strategy, objective: Callable[[Arch], float], asks: int) -> list[list[Arch]]:
    """Run ``asks`` ask -> tell rounds (fewer if the strategy runs out); the batches asked."""
    batches = []
    for _ in range(asks):
        batch = strategy.ask()
        if not batch:
            break
        for arch in batch:
            strategy.tell(arch, objective(arch))
        batches.append(batch)
    return batches


def neighbour_classes(space: Space, arch: Arch) -> set[Arch]:
    """Every architecture one mutation away, as the space names it (NB201: class representatives)."""
    return {space.canonical(n) for n in arch.neighbours()} - {arch}


def argmax(archs: list[Arch], objective: Callable[[Arch], float]) -> Arch:
    return max(archs, key=objective)  # the first of ties, as the strategies do


# ---- registry and options -----------------------------------------------------------------
def test_registry_names_the_strategies():
    assert names() == ("random", "warmup-move", "evolution", "exhaustive", "nsga2", "mgda")
    assert type(make_strategy("warmup-move", NB201, 0, init_pool=3)) is WarmupMove
    assert type(make_strategy("evolution", NB201, 0, population=4, sample=2)) is RegularizedEvolution
    assert type(make_strategy("exhaustive", NB201, 0)) is Exhaustive


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("warmup-move", {"init_pool": 0}, "init_pool must be an integer >= 1, got 0"),
        ("warmup-move", {"sample_pool": 2.5}, "sample_pool must be an integer >= 1, got 2.5"),
        ("evolution", {"population": 5, "sample": 6}, "sample <= population, got sample 6 > population 5"),
        ("exhaustive", {"batch": True}, "batch must be an integer >= 1, got True"),
    ],
)
def test_bad_options_are_one_line_errors(name, options, message):
    with pytest.raises(RobustnasError, match=message) as error:
        make_strategy(name, NB201, 0, **options)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    ("name", "texts", "options"),
    [
        ("evolution", ["sample=3", " population = 20 "], {"population": 20, "sample": 3}),  # declaration order
        ("evolution", ["population=50", "sample=4"], {"sample": 4}),  # a default is left out
        ("nsga2", ["study_name=mine"], {"study_name": "mine"}),
        ("random", [], {}),
    ],
)
def test_strategy_options_parse_to_their_declared_types(name, texts, options):
    assert parse_options(name, texts) == options


@pytest.mark.parametrize(
    ("name", "texts", "message"),
    [
        ("evolution", ["population=4", "population=5"], "--strategy-option population is given twice"),
        ("evolution", ["population=2.5"], "evolution option population takes int, got '2.5'"),
        ("random", ["population=4"], "random has no option 'population'; random's options: none"),
        ("warmup-move", ["init_pool="], "'init_pool=' is not KEY=VALUE; warmup-move's options: init_pool=50"),
    ],
)
def test_bad_strategy_options_name_the_known_ones(name, texts, message):
    with pytest.raises(RobustnasError, match=re.escape(message)):
        parse_options(name, texts)


def test_make_strategy_refuses_undeclared_options_and_several_objectives():
    with pytest.raises(RobustnasError, match="evolution has no option 'popsize'; evolution's options: population=50"):
        make_strategy("evolution", NB201, 0, popsize=4)
    with pytest.raises(RobustnasError, match="2 objectives need --strategy nsga2; random optimises one"):
        make_strategy("random", NB201, 0, objectives=2)


# ---- conformance (robustnas.testing) ------------------------------------------------------
@pytest.mark.parametrize("name", names())
def test_every_registered_strategy_conforms(name):
    check_strategy(name)


class Walk(Strategy):
    """A plug-in as a user writes one: a random walk, ``steps`` mutants of the last one per ask."""

    name = "walk"
    summary = "a random walk"
    options = {"steps": "mutants per ask"}

    def __init__(self, space: Space, seed: int, steps: int = 1) -> None:
        super().__init__(space, seed)
        self.steps = steps
        self.last = space.sample(self.rng)

    def ask(self) -> list[Arch]:
        archs = [self.space.mutate(self.last, self.rng) for _ in range(self.steps)]
        self.last = archs[-1]
        return archs


class Unseeded(Walk):
    name = "unseeded"

    def __init__(self, space: Space, seed: int, steps: int = 1) -> None:
        super().__init__(space, seed, steps)
        self.rng = random.Random()  # the bug: not from the seed


class UnknownOption(Walk):
    name = "unknown-option"
    options = {"steps": "mutants per ask", "stride": "how far"}  # the bug: the constructor has no stride


@pytest.fixture
def registered():
    """Register classes for one test; unregister them after it."""
    added = []

    def add(cls: type[Strategy]) -> None:
        added.append(register(cls).name)

    yield add
    for name in added:
        unregister(name)


def test_a_plugin_strategy_is_searchable_and_checked(registered):
    registered(Walk)
    assert names()[-1] == "walk" and list_strategies()["walk"] == "a random walk"
    check_strategy("walk")
    assert len(make_strategy("walk", NB201, 0, **parse_options("walk", ["steps=3"])).ask()) == 3
    with pytest.raises(RobustnasError, match="a search strategy named 'walk' is already registered"):
        register(type("Walk", (Walk,), {}))


def test_the_conformance_checks_catch_a_broken_strategy(registered):
    registered(Unseeded)
    with pytest.raises(AssertionError, match=re.escape("unseeded: asked other architectures for the same seed and values")):
        check_strategy(Unseeded.name)


def test_a_strategy_declaring_an_option_its_constructor_lacks_is_refused_at_registration():
    message = "UnknownOption cannot be registered: UnknownOption declares option 'stride', not a keyword argument"
    with pytest.raises(RobustnasError, match=re.escape(message)):
        register(UnknownOption)
    assert "unknown-option" not in names()


# ---- the shared bookkeeping ---------------------------------------------------------------
def test_best_ignores_minus_inf_and_keeps_the_first_of_ties():
    strategy = RandomSearch(NB201, 0)
    a, b, c = (NB201.parse(i) for i in (0, 1, 6))
    assert strategy.best is None
    strategy.tell(a, -math.inf)
    assert strategy.best == (a, -math.inf)
    strategy.tell(b, (0.5,))  # a 1-tuple is one value
    strategy.tell(c, 0.5)
    strategy.tell(a, -math.inf)
    assert strategy.best == (b, 0.5)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ((0.1, 0.2), "RandomSearch is single-objective but was told 2 values; use nsga2 for several objectives"),
        (float("nan"), "RandomSearch was told NaN; an objective reports an undefined value as -inf"),
        ("high", "RandomSearch was told 'high', not a number"),
    ],
)
def test_single_objective_values_are_checked(value, message):
    strategy = RandomSearch(NB201, 0)
    with pytest.raises(RobustnasError, match=message):
        strategy.tell(NB201.parse(0), value)
    assert strategy.best is None


def test_batch_protocol_errors():
    strategy = WarmupMove(NB201, 0, init_pool=3)
    with pytest.raises(RobustnasError, match="which its last ask did not return"):
        strategy.tell(NB201.parse(0), 1.0)  # nothing asked yet
    pool = strategy.ask()
    strategy.tell(pool[0], 1.0)
    with pytest.raises(RobustnasError, match="asked again with 2 architectures of its last ask untold; tell each"):
        strategy.ask()
    with pytest.raises(RobustnasError, match="or was told it already"):
        strategy.tell(pool[0], 1.0)
    assert strategy.best == (pool[0], 1.0)  # a refused tell changes nothing


# ---- warm-up + move (CRoZe sampling_type "mutate") ----------------------------------------
def test_warmup_move_on_nb201(clean):
    strategy = WarmupMove(NB201, 7)
    pool = strategy.ask()
    assert len(pool) == 50 and len(set(pool)) == 50
    assert all(NB201.canonical(arch) == arch for arch in pool)
    for arch in pool:
        strategy.tell(arch, clean(arch))
    parent = argmax(pool, clean)
    assert strategy.parent == parent and strategy.best == (parent, clean(parent))
    best = strategy.best
    for _ in range(20):
        children = strategy.ask()
        assert len(children) == 5
        assert set(children) <= neighbour_classes(NB201, parent)  # one mutation away, parent not re-asked
        for child in children:
            strategy.tell(child, clean(child))
        parent = argmax(children, clean)
        assert strategy.parent == parent  # moved to the best child, better or not
        best = max([best, *((c, clean(c)) for c in children)], key=lambda r: r[1])
        assert strategy.best[1] == best[1]


def test_warmup_move_moves_to_a_worse_child_and_keeps_the_global_best(clean):
    strategy = WarmupMove(NB201, 3, init_pool=10, sample_pool=5)
    pool = drive(strategy, clean, 1)[0]
    winner = argmax(pool, clean)
    children = strategy.ask()
    for child, value in zip(children, [-math.inf, -2.0, -1.0, -1.0, -math.inf]):
        strategy.tell(child, value)
    assert strategy.parent == children[2]  # the first of the best children, far below the warm-up winner
    assert strategy.best == (winner, clean(winner))
    assert set(strategy.ask()) <= neighbour_classes(NB201, children[2])


def test_warmup_move_all_minus_inf_children_moves_to_the_first():
    strategy = WarmupMove(NB201, 5, init_pool=4, sample_pool=3)
    drive(strategy, lambda arch: 0.0, 1)
    children = strategy.ask()
    for child in children:
        strategy.tell(child, -math.inf)
    assert strategy.parent == children[0]
    assert strategy.best[1] == 0.0


def test_warmup_move_is_deterministic_and_tell_order_free(clean):
    first = drive(WarmupMove(NB201, 11), clean, 6)
    assert first == drive(WarmupMove(NB201, 11), clean, 6)  # resume by replay
    assert first[0] != drive(WarmupMove(NB201, 12), clean, 1)[0]
    reversed_tells = WarmupMove(NB201, 11)
    pool = reversed_tells.ask()
    for arch in reversed(pool):
        reversed_tells.tell(arch, clean(arch))
    assert reversed_tells.ask() == first[1]


def test_warmup_move_on_darts():
    strategy = WarmupMove(DARTS, 0, init_pool=4, sample_pool=3)
    batches = drive(strategy, sep_convs, 5)
    assert [len(b) for b in batches] == [4, 3, 3, 3, 3]
    assert len(set(batches[0])) == 4
    parent = argmax(batches[0], sep_convs)
    for children in batches[1:]:
        assert set(children) <= neighbour_classes(DARTS, parent)
        parent = argmax(children, sep_convs)
    assert strategy.parent == parent
    assert strategy.best[1] == max(sep_convs(a) for b in batches for a in b)


# ---- aging evolution ----------------------------------------------------------------------
def test_evolution_on_nb201_ages_out_the_oldest(clean):
    strategy = RegularizedEvolution(NB201, 2)
    initial = strategy.ask()
    assert len(initial) == 50 and len(set(initial)) == 50
    for arch in initial:
        strategy.tell(arch, clean(arch))
    assert [a for a, _ in strategy.members] == initial
    told = list(initial)
    for _ in range(60):
        members = strategy.members
        tournament = random.Random()
        tournament.setstate(strategy.rng.getstate())
        drawn = [tournament.choice(members) for _ in range(10)]  # with replacement (Real et al. Alg. 1)
        parent = max(drawn, key=lambda m: m[1])[0]
        (child,) = strategy.ask()
        assert child in neighbour_classes(NB201, parent)
        strategy.tell(child, clean(child))
        assert strategy.members == members[1:] + ((child, clean(child)),)
        told.append(child)
    assert len(strategy.members) == 50
    assert strategy.best == max(((a, clean(a)) for a in told), key=lambda r: r[1])


def test_evolution_removes_the_oldest_even_when_it_is_the_best():
    strategy = RegularizedEvolution(NB201, 4, population=3, sample=3)
    initial = strategy.ask()
    for arch, value in zip(initial, [9.0, 1.0, 2.0]):
        strategy.tell(arch, value)
    (child,) = strategy.ask()
    assert any(child in neighbour_classes(NB201, member) for member in initial)
    strategy.tell(child, 0.0)
    assert strategy.members == ((initial[1], 1.0), (initial[2], 2.0), (child, 0.0))
    assert strategy.best == (initial[0], 9.0)


def test_evolution_is_deterministic(clean):
    runs = [drive(RegularizedEvolution(NB201, 8, population=20, sample=5), clean, 30) for _ in range(2)]
    assert runs[0] == runs[1]
    assert [len(b) for b in runs[0]] == [20] + [1] * 29


def test_evolution_on_darts():
    strategy = RegularizedEvolution(DARTS, 1, population=6, sample=3)
    batches = drive(strategy, sep_convs, 9)
    assert [len(b) for b in batches] == [6] + [1] * 8
    children = [b[0] for b in batches[1:]]
    assert [a for a, _ in strategy.members] == (batches[0] + children)[-6:]
    pool = list(batches[0])
    for child in children:
        assert any(child in neighbour_classes(DARTS, member) for member in pool[-6:])
        pool.append(child)


# ---- exhaustive ---------------------------------------------------------------------------
def test_exhaustive_ranks_all_6466_and_finds_the_benchmark_argmax(clean):
    column = Benchmark().table("cifar10")["clean"]
    strategy = Exhaustive(NB201, 0)
    batches = drive(strategy, clean, 100)
    assert [len(b) for b in batches] == [100] * 64 + [66]
    asked = [arch for batch in batches for arch in batch]
    assert len(asked) == len(set(asked)) == 6466
    assert set(asked) == set(NB201.population())
    assert strategy.ask() == []  # complete
    arch, value = strategy.best
    assert (column == column.max()).sum() == 1
    assert arch.index == column.idxmax() and value == column.max()


def test_exhaustive_order_is_a_seeded_shuffle():
    first = Exhaustive(NB201, 0, batch=50).ask()
    assert first == Exhaustive(NB201, 0, batch=50).ask()
    assert first != Exhaustive(NB201, 1, batch=50).ask()
    assert first != NB201.population()[:50]


@pytest.mark.parametrize("space", ["darts", "arnas"])
def test_exhaustive_refuses_spaces_it_cannot_enumerate(space):
    with pytest.raises(RobustnasError, match=f"the {space} space is too large to enumerate; use another strategy"):
        make_strategy("exhaustive", get_space(space), 0)
