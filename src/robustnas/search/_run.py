"""The search loop: ask, evaluate (or read the stored value), tell, until the budget is spent.

RUN_DIR holds ``store.sqlite`` (every objective value and raw proxy value, written the moment it
exists), ``search.json`` (the settings; a resumed search must match them), ``result.json``,
``trajectory.csv`` and ``trajectory.png``. A killed search is resumed by running the same
command: the strategy (NSGA-II too) is replayed from its seed and every stored evaluation is read
instead of computed, so it continues exactly where it stopped and ends as an uninterrupted run would.
The budget counts distinct architectures evaluated; asking for one again costs nothing.
"""
from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from robustnas import spaces
from robustnas.bench._names import CORRUPTIONS
from robustnas.errors import RobustnasError
from robustnas._files import atomic_write, replace_file, run_lock
from robustnas.search._base import Strategy, get, make_strategy, pareto_front
from robustnas.spaces import Arch, Space
from robustnas.store import Key, Result, Store, config_hash

RUN = "search"
STORE_FILE = "store.sqlite"
SETTINGS_FILE = "search.json"
DEFAULT_OBJECTIVE, DEFAULT_BUDGET, PROXY_BATCH_SIZE = "croze", 100, 64
STALL_ASKS = 1000  # asks in a row without a new architecture: the strategy has nothing new to offer
# Benchmark columns reported for a found NB201 architecture (seed-003 / CRoZe targets)
REPORTED = {"clean": "clean", "fgsm@8": "fgsm@8.0", "pgd@1": "pgd@1.0"}


@dataclass
class Evaluation:
    """One evaluated architecture, in the order of the search."""

    number: int  # 1-based count of distinct architectures
    arch: str
    values: tuple[float, ...]
    stored: bool  # read from the store (a resumed search, or an earlier search on the same store)


@dataclass
class SearchOutcome:
    evaluations: list[Evaluation] = field(default_factory=list)
    infeasible: int = 0  # asked architectures rejected by a constraint (never evaluated)
    stalled: bool = False  # stopped before the budget: the strategy kept asking known architectures
    wall_s: float = 0.0


def search(
    strategy: Strategy,
    objective: Any,
    budget: int,
    store: Store,
    *,
    seed: int = 0,
    on_evaluation: Callable[[Evaluation], None] | None = None,
    prefetch: Callable[[list[Arch]], None] | None = None,
) -> SearchOutcome:
    """Run ``strategy`` on ``objective`` until ``budget`` distinct architectures are evaluated.

    Objective values are stored under run "search", quantity ``objective:<name>``, key seed
    ``seed`` and the hash of ``objective.config()``; a stored value is read, never recomputed.
    ``prefetch``, when given, gets the architectures of each ask that will be evaluated (new,
    admissible, feasible, within the budget) before they are, to compute them in parallel; the
    search then goes on exactly as without it.
    """
    if budget < 1:
        raise RobustnasError(f"--budget must be >= 1, got {budget}")
    store.ensure_run(RUN, {"objective": objective.config()})
    config = store.add_config(objective.config())
    space = strategy.space
    outcome = SearchOutcome()
    seen: dict[str, tuple[float, ...]] = {}
    start = time.perf_counter()

    def record(arch: Arch, values: tuple[float, ...], stored: bool) -> None:
        key = space.key(arch)
        seen[key] = values
        evaluation = Evaluation(len(seen), key, values, stored)
        outcome.evaluations.append(evaluation)
        if on_evaluation is not None:
            on_evaluation(evaluation)

    idle_asks = 0
    while len(seen) < budget:
        archs = strategy.ask()
        if not archs:  # the strategy has nothing left (exhaustive ranking of a small space)
            break
        if prefetch is not None:
            prefetch(_to_evaluate(archs, seen, budget - len(seen), space, objective))
        for arch in archs:
            key = space.key(arch)
            if key in seen:
                strategy.tell(arch, _told(seen[key]))
                idle_asks += 1
            elif not (space.admissible(arch) and objective.feasible(arch)):
                outcome.infeasible += 1
                strategy.tell(arch, _told((-math.inf,) * len(objective.names)))
                idle_asks += 1
            else:
                values, stored = _evaluate(objective, arch, key, store, config, seed)
                record(arch, values, stored)
                strategy.tell(arch, _told(values))
                idle_asks = 0
            if len(seen) >= budget:
                break
        if idle_asks >= STALL_ASKS:
            outcome.stalled = True
            break
    outcome.wall_s = time.perf_counter() - start
    return outcome


def _to_evaluate(archs: list[Arch], seen: dict[str, Any], room: int, space: Space, objective: Any) -> list[Arch]:
    """The architectures of one ask that the loop will evaluate: new (in ask order, once each),
    admissible and feasible, the first ``room`` of them."""
    chosen: dict[str, Arch] = {}
    for arch in archs:
        key = space.key(arch)
        if len(chosen) == room:
            break
        if key not in seen and key not in chosen and space.admissible(arch) and objective.feasible(arch):
            chosen[key] = arch
    return list(chosen.values())


def _told(values: tuple[float, ...]) -> float | tuple[float, ...]:
    return values[0] if len(values) == 1 else values


def _evaluate(
    objective: Any, arch: Arch, key: str, store: Store, config: str, seed: int
) -> tuple[tuple[float, ...], bool]:
    keys = [Key(key, f"objective:{name}", seed, config) for name in objective.names]
    stored = [store.get(RUN, k) for k in keys]
    if all(result is not None for result in stored):
        return tuple(-math.inf if math.isnan(r.value) else r.value for r in stored), True
    values = tuple(-math.inf if math.isnan(v) else float(v) for v in objective(arch))  # as a stored NaN reads
    store.put_many(RUN, [Result(k.arch, k.quantity, k.seed, k.config, v) for k, v in zip(keys, values)])
    return values, False


# ---- what was found ------------------------------------------------------------------------
def best_evaluations(outcome: SearchOutcome) -> list[Evaluation]:
    """The best evaluation (single objective; the first of ties) or the Pareto front in search order
    (points with an undefined, -inf value only where every point has one)."""
    evaluations = outcome.evaluations
    if not evaluations:
        return []
    if len(evaluations[0].values) == 1:
        return [max(evaluations, key=lambda e: (e.values[0], -e.number))]
    defined = [e for e in evaluations if math.isfinite(min(e.values))] or evaluations
    return [defined[i] for i in pareto_front([e.values for e in defined])]


def percentile(population: np.ndarray, value: float) -> float:
    """Mid-rank percentile of ``value`` in ``population``: 100 * (#below + #equal / 2) / N."""
    population = np.asarray(population, dtype=float)
    below = float((population < value).sum())
    equal = float((population == value).sum())
    return 100.0 * (below + equal / 2.0) / len(population)


def benchmark_record(arch: Arch, dataset: str, bench: Any, space: str | Space = "nb201") -> dict[str, Any]:
    """True accuracies of an NB201 architecture and their percentiles among the 6,466 unique ones.

    clean, FGSM at 8/255, PGD at 1/255 and (CIFAR) the mean over the 15 corruptions x 5 severities.
    """
    table = bench.table(dataset)
    index = spaces.get(space).benchmark_index(arch)
    columns = dict(REPORTED)
    frame = table[list(columns.values())].copy()
    corruption_columns = [c for c in table.columns if c.split("@")[0] in CORRUPTIONS]
    if corruption_columns:
        frame["corruptions"] = table[corruption_columns].mean(axis=1)
        columns["corruptions"] = "corruptions"
    record: dict[str, Any] = {"nb201_index": index}
    for name, column in columns.items():
        value = float(frame.at[index, column])
        defined = math.isfinite(value)  # strict JSON: a missing benchmark value is null
        record[name] = value if defined else None
        record[f"{name}_percentile"] = percentile(frame[column].to_numpy(), value) if defined else None
    return record


# ---- the run directory ---------------------------------------------------------------------
@dataclass(frozen=True)
class SearchSettings:
    """What determines a search (search.json); the same settings resume the same search. ``data``
    is kept as an absolute path: the same relative name in another folder is other data."""

    space: str
    dataset: str
    strategy: str
    objective: str | None = None  # None: croze (a differentiable strategy has losses instead)
    budget: int | None = None  # None: 100 architectures (a differentiable strategy runs epochs)
    seed: int = 0  # the strategy's
    data: str | None = None  # proxy batch (differentiable: training images) source (None: the embedded CIFAR-10 sample)
    batch_size: int | None = None  # None: 64 images per proxy batch, 32 per step of a differentiable search
    proxy_seed: int = 0  # network initialisation and batch of the proxies, as `robustnas score --seed`
    max_latency_ms: float | None = None
    latency_device: str = "edgegpu"
    options: dict[str, Any] = field(default_factory=dict)  # the strategy's options that differ from their defaults

    def __post_init__(self) -> None:
        from robustnas.data import data_path
        from robustnas.search._base import get

        object.__setattr__(self, "data", data_path(self.data))
        if get(self.strategy).differentiable:
            from robustnas.search._gradient import BATCH_SIZE

            defaults = {"batch_size": BATCH_SIZE}
        else:
            defaults = {"objective": DEFAULT_OBJECTIVE, "budget": DEFAULT_BUDGET, "batch_size": PROXY_BATCH_SIZE}
        for name, value in defaults.items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)


def open_search(out: Path, settings: SearchSettings) -> Store:
    """Create or reopen RUN_DIR's store; a search with other settings there (the budget may grow) is an error."""
    check_settings(out, settings)
    return Store(out / STORE_FILE)


def check_settings(out: Path, settings: SearchSettings, create: bool = True) -> None:
    """Create RUN_DIR (unless ``create`` is False); a search.json there with other settings (the
    budget may grow) is an error, and so is a file in its place."""
    if out.exists() and not out.is_dir():
        raise RobustnasError(f"--out {out} is a file; give a folder (created if missing)")
    if create:
        out.mkdir(parents=True, exist_ok=True)
    path = out / SETTINGS_FILE
    if path.exists():
        try:
            stored = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise RobustnasError(f"{path}: unreadable ({error}); delete it or give another --out") from None
        if not isinstance(stored, dict):
            raise RobustnasError(f"{path}: not search settings (a JSON object); delete it or give another --out")
        mine = json.loads(json.dumps(asdict(settings)))  # compare as stored (tuples -> lists)
        changed = [k for k in mine if k != "budget" and stored.get(k) != mine[k]]
        if changed:
            diffs = ", ".join(f"{k} {stored.get(k)!r} -> {mine[k]!r}" for k in changed)
            raise RobustnasError(f"{out} holds a search with other settings ({diffs}); give another --out")


def write_settings(out: Path, settings: SearchSettings) -> None:
    """search.json: what a resumed search must match."""
    replace_file(out / SETTINGS_FILE, json.dumps(asdict(settings), indent=2) + "\n")


def write_result(
    out: Path,
    settings: SearchSettings,
    outcome: SearchOutcome,
    objective_names: Sequence[str],
    space: Space,
    bench: Any = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """result.json (with ``extra`` fields), trajectory.csv and trajectory.png; returns the result."""
    best = best_evaluations(outcome)
    if not best:
        raise RobustnasError("the search evaluated no architecture; raise --budget or relax the constraint")
    chosen = max(best, key=lambda e: (e.values, -e.number))  # several objectives: the front's best first objective
    result: dict[str, Any] = {
        "best_arch": chosen.arch,
        "best_value": _json_values(objective_names, chosen.values),
        "evaluations": len(outcome.evaluations),
        "computed": sum(not e.stored for e in outcome.evaluations),
        "infeasible_asked": outcome.infeasible,
        "stalled": outcome.stalled,
        "wall_s": round(outcome.wall_s, 3),
        **(extra or {}),
        "settings": asdict(settings),
    }
    if len(best) > 1 or len(objective_names) > 1:
        result["pareto_front"] = [{"arch": e.arch, **_json_values(objective_names, e.values)} for e in best]
    if space.has_benchmark and bench is not None:
        result["benchmark"] = benchmark_record(space.parse(chosen.arch), settings.dataset, bench, space)
    else:
        genotype_file = out / "best_genotype.json"
        replace_file(genotype_file, json.dumps(space.record(space.parse(chosen.arch)), indent=2) + "\n")
        result["genotype_file"] = str(genotype_file)
    replace_file(out / "result.json", json.dumps(result, indent=2, allow_nan=False) + "\n")
    frame = trajectory_frame(outcome, objective_names)
    replace_file(out / "trajectory.csv", frame.to_csv(index=False))
    plot_trajectory(frame, objective_names, best, out / "trajectory.png")
    return result


def _json_values(names: Sequence[str], values: Sequence[float]) -> dict[str, float | None]:
    """Objective values for strict JSON: an undefined (-inf) value is null."""
    return {name: value if math.isfinite(value) else None for name, value in zip(names, values)}


def trajectory_frame(outcome: SearchOutcome, objective_names: Sequence[str]) -> pd.DataFrame:
    """One row per evaluation: number, arch, each objective value, best so far (first objective)."""
    rows = [{"evaluation": e.number, "arch": e.arch, **dict(zip(objective_names, e.values))} for e in outcome.evaluations]
    frame = pd.DataFrame(rows, columns=["evaluation", "arch", *objective_names])
    frame["best_so_far"] = frame[objective_names[0]].cummax()
    return frame


def plot_trajectory(frame: pd.DataFrame, names: Sequence[str], best: list[Evaluation], path: Path) -> None:
    """Single objective: every value and the best so far vs evaluations; two or more: the first
    two objectives of every evaluation with the Pareto front marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    finite = frame[np.isfinite(frame[list(names)]).all(axis=1)]
    if len(names) == 1:
        ax.scatter(finite["evaluation"], finite[names[0]], s=10, alpha=0.5, label="evaluated")
        ax.step(frame["evaluation"], frame["best_so_far"], where="post", color="C3", label="best so far")
        ax.set_xlabel("architectures evaluated")
        ax.set_ylabel(names[0])
    else:
        points = ax.scatter(finite[names[0]], finite[names[1]], s=10, alpha=0.4, c=finite["evaluation"], cmap="viridis")
        fig.colorbar(points, ax=ax, label="evaluation")
        front = sorted((e.values[0], e.values[1]) for e in best)
        ax.plot([p[0] for p in front], [p[1] for p in front], "o-", color="C3", label="Pareto front")
        ax.set_xlabel(names[0])
        ax.set_ylabel(names[1])
    ax.legend(loc="lower right")
    ax.set_title(f"search trajectory ({len(frame)} architectures)")
    fig.tight_layout()
    with atomic_write(path) as handle:
        fig.savefig(handle, format="png", dpi=120)
    plt.close(fig)


# ---- the command ---------------------------------------------------------------------------
def run(
    settings: SearchSettings,
    out: Path,
    *,
    runs: Sequence[Path] = (),
    storage: str | None = None,
    device: str = "cpu",
    progress: bool = True,
    workers: int = 1,
    engine: str = "local",
    address: str | None = None,
) -> dict[str, Any]:
    """``robustnas search``: build the space, objective and strategy, search (resumably), write the result.

    Proxies are computed on one seeded batch of ``settings.data`` with networks initialised from
    ``settings.proxy_seed`` (as ``robustnas score --seed``), so stored scoring ``runs`` with those
    settings are read instead of computed. NSGA-II copies its Optuna study into ``storage`` (default
    ``sqlite:///RUN_DIR/optuna.sqlite``; a PostgreSQL URL works too) for sharing. ``device`` ("cpu"
    or "cuda") is checked before anything else. The proxies of each ask's new architectures are
    computed by ``workers`` processes of ``engine`` ("local" or "ray" at ``address``;
    robustnas.executors); the values, and so the search, do not depend on the engine.
    """
    from robustnas.bench import Benchmark
    from robustnas._device import require_device
    from robustnas._progress import LoopProgress
    from robustnas.scoring import ScoreSettings, announce_cost
    from robustnas.search._objectives import LiveProxies, parse_objective

    if get(settings.strategy).differentiable:
        _refuse_proxy_sources(settings, runs, storage)
        _refuse_engine(settings, workers, engine, address)
        from robustnas.search._gradient_run import run_gradient

        return run_gradient(settings, out, device=device, progress=progress)
    require_device(device)
    space = spaces.get(settings.space)
    bench = Benchmark() if space.has_benchmark else None
    if settings.max_latency_ms is None and settings.latency_device != "edgegpu":
        raise RobustnasError("--latency-device applies to --max-latency; give both (latency:DEVICE names its own device)")
    from robustnas.executors import make_executor

    executor = make_executor(engine, workers, device=device, address=address)
    with executor, run_lock(out), open_search(out, settings) as store:
        scoring = ScoreSettings(
            settings.space, settings.dataset, settings.data, (), settings.batch_size, settings.proxy_seed, device
        )
        source = LiveProxies(scoring, store, [Path(r) for r in runs], executor)
        objective = parse_objective(
            settings.objective, space=space, dataset=settings.dataset, source=source, bench=bench,
            max_latency_ms=settings.max_latency_ms, latency_device=settings.latency_device,
        )
        strategy = _strategy(settings, space, len(objective.names), storage or f"sqlite:///{out / 'optuna.sqlite'}")
        write_settings(out, settings)  # only once the settings are known to work
        stored = _stored_evaluations(store, objective)
        if not runs:  # with scoring runs, most values may be read: no estimate
            first = space.key(space.sample(random.Random(settings.seed)))
            announce_cost(objective.proxies, max(0, settings.budget - stored), None, lambda: source.pass_seconds(first),
                          "search: up to")
        with LoopProgress("search", settings.budget, min(stored, settings.budget), "eval", progress) as advance:
            outcome = search(
                strategy, objective, settings.budget, store, seed=settings.proxy_seed,
                on_evaluation=lambda evaluation: None if evaluation.stored else advance(),
                prefetch=lambda archs: source.prefetch(archs, objective.proxies),
            )
    extra = {"networks_built": source.computed, "proxy_s": round(source.seconds, 3)}
    return write_result(out, settings, outcome, objective.names, space, bench, extra)


def plan(
    settings: SearchSettings, out: Path | None = None, *, runs: Sequence[Path] = (), storage: str | None = None,
    device: str = "cpu", workers: int = 1, engine: str = "local", address: str | None = None,
) -> dict[str, Any]:
    """What ``run(settings, out, ...)`` will do, computing nothing (``robustnas search --dry-run``):
    the settings with every strategy option resolved; a differentiable strategy adds its supernet's
    parameter counts (``supernet_weights``, ``supernet_alphas``) and steps. The arguments are
    checked as the run checks them (an ``out`` holding another search is refused)."""
    if out is not None:
        check_settings(out, settings, create=False)
    if get(settings.strategy).differentiable:
        from robustnas._device import require_device
        from robustnas.search._gradient_run import plan as gradient_plan

        _refuse_proxy_sources(settings, runs, storage)
        _refuse_engine(settings, workers, engine, address)
        require_device(device)
        return gradient_plan(settings)
    from robustnas.executors import make_executor
    from robustnas.search._base import strategy_options

    executor = make_executor(engine, workers, device=device, address=address)  # checked, nothing started

    space = spaces.get(settings.space)
    _strategy(settings, space, len(settings.objective.split(",")), None)  # the options and budget checked
    options = {o.name: settings.options.get(o.name, o.default) for o in strategy_options(get(settings.strategy))}
    return {
        "strategy": settings.strategy, "space": settings.space, "dataset": settings.dataset,
        "budget": settings.budget, "settings": {**asdict(settings), "resolved": options}, **executor.describe(),
    }


def _refuse_proxy_sources(settings: SearchSettings, runs: Sequence[Path], storage: str | None) -> None:
    if runs or storage:
        raise RobustnasError(f"--scores and --storage do not apply to --strategy {settings.strategy}, which trains a supernet")


def _refuse_engine(settings: SearchSettings, workers: int, engine: str, address: str | None) -> None:
    if workers != 1 or engine != "local" or address is not None:
        raise RobustnasError(
            f"--workers, --engine and --ray-address do not apply to --strategy {settings.strategy}, which trains one supernet"
        )


def _stored_evaluations(store: Store, objective: Any) -> int:
    """How many evaluations of ``objective`` the store holds (what a resumed search reads)."""
    if RUN not in {info.name for info in store.runs()}:
        return 0
    return len(store.frame(RUN, config=config_hash(objective.config()))) // len(objective.names)


def _strategy(settings: SearchSettings, space: Space, objectives: int, storage: str) -> Strategy:
    """The strategy of ``settings`` for ``objectives`` values per evaluation, checked against the budget."""
    if settings.strategy == "exhaustive" and settings.budget > len(space.population()):
        raise RobustnasError(
            f"exhaustive ranking of the {len(space.population())} {space.name} architectures: "
            f"give --budget <= {len(space.population())}"
        )
    return make_strategy(
        settings.strategy, space, settings.seed, objectives=objectives, storage=storage, **settings.options
    )


def describe_result(result: dict[str, Any]) -> str:
    """The found architecture, its objective value and (NB201) its benchmark accuracies with percentiles."""
    lines = [f"best architecture: {result['best_arch']}"]
    if "supernet_weights" in result:  # a differentiable search
        losses = ", ".join(f"{name[len('loss_'):]} {value:.4g}" for name, value in result["final_losses"].items())
        lines.append(
            f"supernet: {result['supernet_weights']:,} weights, {result['supernet_alphas']} alphas; {result['epochs']} "
            f"epoch{'s' if result['epochs'] != 1 else ''} ({result['steps']} steps, {result['search_s']:.1f} s); "
            f"last step's losses: {losses}"
        )
        lines.append("per step: steps.csv (losses, objective weights); alphas: alphas.csv, alphas_*.png")
    else:
        values = ", ".join(
            f"{name} {'undefined' if value is None else f'{value:.6g}'}" for name, value in result["best_value"].items()
        )
        lines.append(
            f"objective: {values} ({result['evaluations']} architectures evaluated, "
            f"{result['computed']} computed now, {result['wall_s']:.1f} s)"
        )
    if "pareto_front" in result:
        lines.append(f"Pareto front: {len(result['pareto_front'])} architectures (result.json)")
    bench = result.get("benchmark")
    if bench:
        lines.append("NB201 benchmark accuracy (percentile among the 6,466 unique architectures):")
        for key, label in _LABELS.items():
            if bench.get(key) is not None:
                lines.append(f"  {label:>18}: {bench[key]:.2%} ({bench[key + '_percentile']:.1f}th percentile)")
    if "genotype_file" in result:
        genotype, space = result["genotype_file"], result["settings"]["space"]
        lines.append(f"genotype: {genotype} (robustnas train --space {space} --arch {genotype} ...)")
    return "\n".join(lines)


_LABELS = {"clean": "clean", "fgsm@8": "FGSM 8/255", "pgd@1": "PGD 1/255", "corruptions": "corruptions (mean)"}
