"""NSGA-II strategy (Optuna) and the pure Pareto-front function."""
from __future__ import annotations

import math
from itertools import product
from pathlib import Path

import optuna
import pytest

from robustnas.errors import RobustnasError
from robustnas.search._base import make_strategy, pareto_front
from robustnas.search._nsga2 import DEFAULT_STUDY, NSGA2, UNDEFINED
from robustnas.spaces import get as get_space
from robustnas.spaces.darts import DartsGenotype

NB201 = get_space("nb201")
CONV3, CONV1 = 2, 3  # NB201 op indices of nor_conv_3x3 and nor_conv_1x1
INF = math.inf


def conv_tradeoff(arch) -> tuple[float, float]:
    """(#conv3x3, -#conv): more 3x3 convolutions vs fewer convolutions; front {(k, -k)}."""
    return float(arch.ops.count(CONV3)), -float(sum(op in (CONV3, CONV1) for op in arch.ops))


def run(strategy: NSGA2, function, evaluations: int) -> list[str]:
    """The runner's loop without the store: ask, tell ``function(arch)``; returns the asked keys."""
    asked = []
    for _ in range(evaluations):
        (arch,) = strategy.ask()
        asked.append(NB201.key(arch))
        strategy.tell(arch, function(arch))
    return asked


def brute_front(values: list[tuple[float, ...]]) -> list[int]:
    """Pairwise definition of non-domination (maximisation), independent of pareto_front."""
    def dominates(p, q):
        return all(a >= b for a, b in zip(p, q)) and any(a > b for a, b in zip(p, q))

    return [i for i, q in enumerate(values) if not any(dominates(p, q) for p in values)]


# ---- pareto_front ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "points, front",
    [
        ([], []),
        ([(1.0, 2.0)], [0]),
        ([(1, 5), (2, 4), (3, 3), (2, 2), (1, 1)], [0, 1, 2]),
        # equal copies are all kept; a point equal in one component and worse in the other is not
        ([(2, 2), (1, 3), (2, 2), (2, 1), (1, 3)], [0, 1, 2, 4]),
        ([(0, 0), (0, 0)], [0, 1]),
        # 3 objectives: (1,1,1) is dominated by (2,2,2) only; (3,0,0) and (0,3,0) are extremes
        ([(1, 1, 1), (2, 2, 2), (3, 0, 0), (0, 3, 0), (2, 2, 1), (0, 0, 3)], [1, 2, 3, 5]),
        ([(1, 2, 3), (3, 2, 1), (2, 2, 2), (1, 2, 2), (3, 2, 1)], [0, 1, 2, 4]),
        # one objective: the maxima
        ([(3,), (5,), (5,), (4,)], [1, 2]),
        # -inf is the lowest value; a point best in another component stays on the front
        ([(-INF, 9), (1, 1), (0, 0), (-INF, -INF)], [0, 1]),
    ],
)
def test_pareto_front_exact(points, front):
    assert pareto_front(points) == front


def test_pareto_front_matches_pairwise_definition_on_a_grid():
    points = [(a, b, (a * b) % 3) for a, b in product(range(4), range(4))]
    # (3, 3, 0) beats every other point with a*b = 0 mod 3; a*b = 2 mod 3 only at (1, 2), (2, 1);
    # (2, 2, 1) is the only one left with third value 1 that (3, 3, 0) does not dominate
    assert pareto_front(points) == brute_front(points) == [6, 9, 10, 15]


def test_pareto_front_rejects_nan_and_ragged():
    with pytest.raises(RobustnasError, match="-inf"):
        pareto_front([(1.0, math.nan)])
    with pytest.raises(RobustnasError, match="one length"):
        pareto_front([(1.0, 2.0), (1.0,)])


# ---- NSGA-II on NB201 ----------------------------------------------------------------------
def test_nb201_front_is_non_dominated_and_exact():
    strategy = NSGA2(NB201, 0, objectives=2, population=10)
    asked = run(strategy, conv_tradeoff, 60)
    best = strategy.best
    values = [v for _, v in best]
    assert all(v == conv_tradeoff(a) for a, v in best)
    assert brute_front(values) == list(range(len(best)))  # mutually non-dominated
    # the front of the distinct evaluations, in first-tell order, by the pairwise definition
    distinct = {}
    for key in asked:
        distinct.setdefault(key, conv_tradeoff(NB201.parse(key)))
    expected = [list(distinct)[i] for i in brute_front(list(distinct.values()))]
    assert [NB201.key(a) for a, _ in best] == expected
    assert all(a == -b for a, b in values)  # this function's true front: every conv is a 3x3


def test_same_seed_same_asks_other_seed_other_asks():
    first = run(NSGA2(NB201, 7, objectives=2, population=10), conv_tradeoff, 40)
    again = run(NSGA2(NB201, 7, objectives=2, population=10), conv_tradeoff, 40)
    other = run(NSGA2(NB201, 8, objectives=2, population=10), conv_tradeoff, 40)
    assert first == again
    assert first != other


def test_minus_inf_is_a_violated_constraint_and_never_best():
    def infeasible_without_conv(arch):
        values = conv_tradeoff(arch)
        return (-INF, values[1]) if values[0] == 0 else values

    strategy = NSGA2(NB201, 1, objectives=2, population=6)
    run(strategy, infeasible_without_conv, 30)
    trials = strategy.study.get_trials(deepcopy=False)
    undefined = [t for t in trials if t.values[0] == -INF]
    assert undefined and all(t.constraints == {UNDEFINED: 1.0} for t in undefined)
    assert all(t.constraints == {} for t in trials if t.values[0] > -INF)
    assert strategy.best and all(v[0] > -INF for _, v in strategy.best)

    # nothing defined: the front of what was told, among the fewest -inf values
    only_undefined = NSGA2(NB201, 1, objectives=2, population=6)
    run(only_undefined, lambda arch: (-INF, -INF) if arch.ops[0] == 0 else (-INF, 1.0), 8)
    assert only_undefined.best and all(v == (-INF, 1.0) for _, v in only_undefined.best)


def test_single_objective_float_values():
    strategy = NSGA2(NB201, 2, objectives=1, population=4)
    asked = run(strategy, lambda arch: float(arch.ops.count(CONV3)), 12)
    counts = {key: NB201.parse(key).ops.count(CONV3) for key in asked}
    top = max(counts.values())
    assert [NB201.key(a) for a, _ in strategy.best] == [key for key, count in counts.items() if count == top]
    assert all(v == (float(top),) for _, v in strategy.best)


def test_registry_builds_nsga2():
    strategy = make_strategy("nsga2", NB201, 0, objectives=2, population=4)
    assert isinstance(strategy, NSGA2) and NSGA2.multi_objective and strategy.n_objectives == 2


# ---- errors ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "options, message",
    [({"objectives": 0}, "objectives >= 1"), ({"objectives": 2, "population": 1}, "population >= 2")],
)
def test_bad_settings(options, message):
    with pytest.raises(RobustnasError, match=message):
        NSGA2(NB201, 0, **options)


def test_bad_tells():
    strategy = NSGA2(NB201, 0, objectives=2, population=4)
    (arch,) = strategy.ask()
    with pytest.raises(RobustnasError, match="told 1 values"):
        strategy.tell(arch, 1.0)
    with pytest.raises(RobustnasError, match="NaN"):
        strategy.tell(arch, (1.0, math.nan))
    strategy.tell(arch, (1.0, 2.0))
    with pytest.raises(RobustnasError, match="not waiting"):
        strategy.tell(arch, (1.0, 2.0))


def test_unusable_storage(tmp_path: Path):
    with pytest.raises(RobustnasError, match="cannot open Optuna storage"):
        NSGA2(NB201, 0, objectives=2, storage=f"sqlite:///{tmp_path}/missing/optuna.db")


# ---- the shared copy ----------------------------------------------------------------------------
def shared_trials(url: str) -> list[tuple[str, dict, list[float]]]:
    study = optuna.load_study(study_name=DEFAULT_STUDY, storage=url)
    return [(t.state.name, t.params, t.values) for t in study.get_trials(deepcopy=False)]


def test_shared_copy_holds_every_told_trial_complete(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    strategy = NSGA2(NB201, 3, objectives=2, population=4, storage=url)
    run(strategy, conv_tradeoff, 10)
    (pending,) = strategy.ask()  # asked, never told (a killed search): not in the copy
    in_memory = [("COMPLETE", t.params, t.values) for t in strategy.study.get_trials(deepcopy=False)[:10]]
    assert shared_trials(url) == in_memory and len(in_memory) == 10


def test_resumed_search_replays_and_appends_only_new_trials(tmp_path: Path):
    """A reopened copy is checked against the replay; the continuation equals an uninterrupted run."""
    whole = run(NSGA2(NB201, 3, objectives=2, population=4), conv_tradeoff, 14)
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    assert run(NSGA2(NB201, 3, objectives=2, population=4, storage=url), conv_tradeoff, 9) == whole[:9]
    resumed = run(NSGA2(NB201, 3, objectives=2, population=4, storage=url), conv_tradeoff, 14)
    assert resumed == whole
    assert [state for state, _, _ in shared_trials(url)] == ["COMPLETE"] * 14


def test_copy_with_other_trials_is_refused(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    run(NSGA2(NB201, 3, objectives=2, population=4, storage=url), conv_tradeoff, 3)
    other = NSGA2(NB201, 3, objectives=2, population=4, storage=url)
    (arch,) = other.ask()
    with pytest.raises(RobustnasError, match="holds other trials than this search .trial 0"):
        other.tell(arch, (-1.0, -1.0))


def test_copy_with_an_unfinished_trial_is_refused(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    NSGA2(NB201, 0, objectives=2, population=4, storage=url)
    optuna.load_study(study_name=DEFAULT_STUDY, storage=url).ask()  # left RUNNING by an older robustnas
    with pytest.raises(RobustnasError, match=r"holds unfinished trials \[0\]"):
        NSGA2(NB201, 0, objectives=2, population=4, storage=url)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"space": get_space("nb201"), "objectives": 3, "population": 4}, r"objectives \(maximize, maximize\)"),
        ({"space": get_space("nb201"), "objectives": 2, "population": 8}, "'population': 4"),
        ({"space": get_space("darts"), "objectives": 2, "population": 4}, "'space': 'nb201'"),
        ({"space": get_space("nb201"), "objectives": 2, "population": 4, "seed": 1}, "'seed': 0"),
    ],
)
def test_reopen_with_other_settings_fails(tmp_path: Path, options, message):
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    NSGA2(NB201, 0, objectives=2, population=4, storage=url)
    with pytest.raises(RobustnasError, match=message) as error:
        NSGA2(options.pop("space"), options.pop("seed", 0), storage=url, **options)
    assert str(error.value).endswith("; give another --strategy-option study_name=NAME or --storage")


def test_another_study_name_shares_the_storage(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    NSGA2(NB201, 0, objectives=2, population=4, storage=url)
    NSGA2(NB201, 1, objectives=2, population=4, storage=url, study_name="seed-1")
    assert sorted(optuna.get_all_study_names(url)) == [DEFAULT_STUDY, "seed-1"]


# ---- DARTS -------------------------------------------------------------------------------------
def test_darts_asks_valid_genotypes():
    darts = get_space("darts")
    strategy = NSGA2(darts, 0, objectives=2, population=4)
    for _ in range(5):
        (genotype,) = strategy.ask()
        assert isinstance(genotype, DartsGenotype)
        assert darts.parse(darts.key(genotype)) == genotype
        assert strategy.study.get_trials(deepcopy=False)[-1].params == darts.encode(genotype)
        ops = [op for op, _ in genotype.normal + genotype.reduce]
        strategy.tell(genotype, (float(ops.count("sep_conv_3x3")), -float(ops.count("skip_connect"))))
    assert len(strategy.study.get_trials(deepcopy=False)) == 5 and strategy.best
