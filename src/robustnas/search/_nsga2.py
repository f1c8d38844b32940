"""Multi-objective search with NSGA-II (Deb et al. 2002) through Optuna's ask/tell interface.

Every architecture is a point of the flat categorical encoding of ``Space.choices()``;
Optuna's ``NSGAIISampler`` draws the first generation uniformly, then breeds children by uniform
crossover and mutation from parents chosen by non-domination rank and crowding distance.

Values are higher-is-better tuples (a float is a 1-tuple). ``-inf`` (an undefined proxy, an
infeasible architecture) is told to Optuna as it is, so the study keeps the exact values, and
the trial also gets the constraint ``undefined_objectives`` = the number of ``-inf`` components.
Optuna's NSGA-II then applies constrained domination (Deb et al. 2002, Sec. VI): every fully
defined evaluation ranks before any with an undefined value, and among those fewer undefined
values rank first; ``best`` follows the same rule. NaN is refused (objectives give -inf instead).

Determinism and resume: the study that samples lives in memory, so the asked sequence is a
function of the seed and the values told (Optuna's NSGA-II draws from ``numpy`` RandomStates
seeded with ``seed``). A killed search is resumed like every other strategy: the runner replays
ask/tell against its stored evaluations and continues exactly where the uninterrupted run would be.
``storage`` (e.g. ``sqlite:///RUN_DIR/optuna.sqlite`` or a PostgreSQL URL) receives a copy of every
told trial, COMPLETE, in tell order, for sharing and dashboards; a resumed search checks the copy's
trials against its replay and appends only the new ones, so the copy never holds a RUNNING trial.

Optuna is imported when the first NSGA2 is built (it is slow to import; the registry and the
command line's help need only the class), and its log level is then set to WARNING
(process-wide): its INFO line per trial would drown the runner's progress output.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any

from robustnas.errors import RobustnasError
from robustnas.search._base import Strategy, Value, pareto_front, register
from robustnas.spaces import Arch, Space

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

DEFAULT_STUDY = "robustnas-search"
SETTINGS_ATTR = "robustnas"  # study user attribute: the settings a reopened study must match
UNDEFINED = "undefined_objectives"  # constraint name: number of -inf values (> 0 is infeasible)
OTHER_STUDY = "give another --strategy-option study_name=NAME or --storage"


@register
class NSGA2(Strategy):
    """NSGA-II over ``space``: one architecture per ask; ``objectives`` values per evaluation.

    ``storage`` is None or an Optuna storage URL (``sqlite:///path.db``, ``postgresql://...``)
    where the study ``study_name`` gets a copy of every told trial (see the module docstring).
    """

    name = "nsga2"
    summary = "NSGA-II (Optuna) for several objectives: their Pareto front"
    options = {"population": "architectures per generation", "study_name": "name of the study's copy in --storage"}
    multi_objective = True

    def __init__(
        self,
        space: Space,
        seed: int,
        *,
        objectives: int,
        population: int = 20,
        storage: str | None = None,
        study_name: str = DEFAULT_STUDY,
    ) -> None:
        super().__init__(space, seed)
        if objectives < 1:
            raise RobustnasError(f"NSGA-II needs objectives >= 1, got {objectives}; give at least one objective")
        if population < 2:
            raise RobustnasError(f"NSGA-II needs population >= 2, got {population}; raise the population")
        if not 0 <= seed < 2**32:
            raise RobustnasError(f"NSGA-II seeds numpy, which takes 0 <= seed < 2**32, got {seed}; give such a seed")
        self.n_objectives = objectives
        self.population = population
        optuna = _optuna()
        categorical = optuna.distributions.CategoricalDistribution
        self._distributions = {name: categorical(c) for name, c in space.choices().items()}
        self.study = optuna.create_study(directions=["maximize"] * objectives, sampler=_sampler(population, seed))
        self.shared = None if storage is None else _open_study(storage, study_name, objectives)
        self._where = f"Optuna study {study_name!r} in {storage}"
        self._shared_trials = self._check_shared() if self.shared is not None else []
        self._pending: dict[str, list[optuna.Trial]] = {}
        self._told: list[tuple[Arch, tuple[float, ...]]] = []

    def ask(self) -> list[Arch]:
        """One architecture: a new trial of the study."""
        trial = self.study.ask(self._distributions)
        return [self._hold(trial, trial.params)]

    def tell(self, arch: Arch, value: Value) -> None:
        """Complete every pending trial of ``arch``'s key with ``value`` (see module docstring for -inf)."""
        key = self.space.key(arch)
        values = self._values(key, value)
        trials = self._pending.pop(key, [])
        if not trials:
            raise RobustnasError(f"{key} is not waiting for a value; tell only architectures that ask returned, once")
        undefined = _undefined(values)
        for trial in trials:
            if undefined:
                trial.set_constraint(UNDEFINED, float(undefined))
            self.study.tell(trial, list(values))
            self._share(self.study.get_trials(deepcopy=False)[trial.number])
        self._told.append((arch, values))

    @property
    def best(self) -> list[tuple[Arch, tuple[float, ...]]]:
        """The Pareto front (maximisation) of every evaluation told, in tell order.

        One entry per architecture (its first tell); evaluations with a -inf value take part only
        when every evaluation has one (constrained domination, as in the sampler).
        """
        first: dict[str, tuple[Arch, tuple[float, ...]]] = {}
        for arch, values in self._told:
            first.setdefault(self.space.key(arch), (arch, values))
        evaluations = list(first.values())
        fewest = min((_undefined(values) for _, values in evaluations), default=0)
        candidates = [(arch, values) for arch, values in evaluations if _undefined(values) == fewest]
        return [candidates[i] for i in pareto_front([values for _, values in candidates])]

    # ---- internals -------------------------------------------------------------------------
    def _hold(self, trial: optuna.Trial, params: dict[str, Any]) -> Arch:
        arch = self.space.decode(params)
        self._pending.setdefault(self.space.key(arch), []).append(trial)
        return arch

    def _values(self, key: str, value: Value) -> tuple[float, ...]:
        values = tuple(float(v) for v in value) if isinstance(value, Sequence) else (float(value),)
        if len(values) != self.n_objectives:
            raise RobustnasError(
                f"{key} was told {len(values)} values, the study has {self.n_objectives} objectives; tell one per objective"
            )
        if any(math.isnan(v) for v in values):
            raise RobustnasError(f"{key} was told NaN; the objective must give -inf for an undefined value")
        return values

    def _share(self, trial: FrozenTrial) -> None:
        """Append a told trial to the shared copy; a trial the copy already holds (a resumed search) must agree."""
        if self.shared is None:
            return
        if trial.number >= len(self._shared_trials):
            self.shared.add_trial(trial)
            return
        held = self._shared_trials[trial.number]
        if (held.params, held.values) != (trial.params, trial.values):
            raise RobustnasError(
                f"{self._where} holds other trials than this search (trial {trial.number}: {held.params} "
                f"{held.values}, this search {trial.params} {trial.values}); {OTHER_STUDY}"
            )

    def _check_shared(self) -> list[FrozenTrial]:
        """The shared study's trials, after checking it belongs to this search (objectives, space,
        population, seed) and holds only COMPLETE trials."""
        assert self.shared is not None
        directions = self.shared.directions
        maximize = _optuna().study.StudyDirection.MAXIMIZE
        if len(directions) != self.n_objectives or any(d != maximize for d in directions):
            found = ", ".join(d.name.lower() for d in directions)
            raise RobustnasError(
                f"{self._where} has objectives ({found}), this search {self.n_objectives} maximised; {OTHER_STUDY}"
            )
        mine = {"space": self.space.name, "population": self.population, "seed": self.seed}
        stored = self.shared.user_attrs.get(SETTINGS_ATTR)
        if stored is None:
            self.shared.set_user_attr(SETTINGS_ATTR, mine)
        elif stored != mine:
            raise RobustnasError(
                f"{self._where} was made with {stored}, this search has {mine}; {OTHER_STUDY}"
            )
        trials = self.shared.get_trials(deepcopy=False)
        unfinished = [t.number for t in trials if t.state != _optuna().trial.TrialState.COMPLETE]
        if unfinished:
            raise RobustnasError(
                f"{self._where} holds unfinished trials {unfinished[:5]} (an earlier robustnas continued studies "
                f"in place); {OTHER_STUDY}, or delete it"
            )
        return trials


def _undefined(values: tuple[float, ...]) -> int:
    return sum(v == -math.inf for v in values)


def _optuna() -> ModuleType:
    """Optuna, imported on first use with its log level set to WARNING."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def _sampler(population: int, seed: int) -> optuna.samplers.NSGAIISampler:
    return _optuna().samplers.NSGAIISampler(population_size=population, seed=seed)


def _open_study(storage: str, name: str, objectives: int) -> optuna.Study:
    """The shared copy: created, or an existing study reopened."""
    import sqlalchemy.exc

    try:
        return _optuna().create_study(
            storage=storage, study_name=name, directions=["maximize"] * objectives, load_if_exists=True
        )
    except (ImportError, sqlalchemy.exc.SQLAlchemyError) as error:
        reason = str(error).splitlines()[0]
        raise RobustnasError(
            f"cannot open Optuna storage {storage!r} ({reason}); give sqlite:///PATH.db in an existing folder "
            "or a reachable database URL with its driver installed (PostgreSQL: pip install psycopg2-binary "
            "and postgresql+psycopg2://USER@HOST/DB)"
        ) from None
