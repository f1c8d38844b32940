"""Search objectives: what a strategy maximises, from proxies, a predictor, the benchmark or latency.

Two layers. A *proxy source* answers raw proxy values for an architecture: ``LiveProxies``
computes them exactly as ``robustnas score`` does (reusing stored scoring runs and the search's
own store first), ``TableProxies`` replays a precomputed table. An *objective* turns them into
higher-is-better values; every objective has

    names: tuple[str, ...]      one per value
    config() -> dict            JSON settings that determine the values (the store's config hash)
    __call__(arch) -> tuple     higher is better, -inf where undefined
    feasible(arch) -> bool      constraints (HW-NAS-Bench latency); cheap

``parse_objective`` reads the ``--objective`` grammar: objectives separated by commas (several
make a multi-objective search), each one ``PROXY`` | ``W*PROXY+W*PROXY...`` |
``predictor:PATH[:TARGET]`` | ``bench:COLUMN`` | ``latency:DEVICE``.
"""
from __future__ import annotations

import hashlib
import json
import math
import tempfile
import warnings
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pandas as pd

from robustnas.errors import RobustnasError
from robustnas.spaces import Arch, Space

if TYPE_CHECKING:
    import torch

    from robustnas.bench import Benchmark
    from robustnas.executors import Executor
    from robustnas.predict import Predictor
    from robustnas.scoring import ScoreSettings
    from robustnas.spaces.nb201 import NB201Arch
    from robustnas.store import Store

# NAS-Bench-Suite-Zero's value for an undefined proxy (spec §1.1); the study's predictors were fitted
# with it as a feature value (robustnas.report._study.UNDEFINED), so prediction uses it too.
UNDEFINED = -1e8
OBJECTIVE_GRAMMAR = "PROXY, W*PROXY+W*PROXY..., predictor:PATH[:TARGET], bench:COLUMN or latency:DEVICE"


# ---- proxy sources -------------------------------------------------------------------------------
class ProxySource(Protocol):
    """Raw proxy values per architecture (NaN where undefined) and the seconds spent computing them."""

    seconds: float

    def values(self, arch: Arch, names: Sequence[str]) -> dict[str, float]: ...

    def config(self) -> dict[str, Any]: ...


class LiveProxies:
    """Proxy values as ``robustnas score`` stores them for ``settings``, computed only where unknown.

    Each (arch, proxy) is looked up in the scoring ``runs`` (read-only; same value settings and
    seed required), then in ``store`` (run ``score``, the same keys as ``robustnas score``), and
    the missing ones are computed in this process with one network for the architecture
    (``scoring.score_arch``: same seeded initialisation and batch, so the value equals the one a
    scoring run stores, bit for bit at the same torch thread count) and stored at once. Values
    found in ``runs`` are copied into ``store`` too, so a search store holds every value it used.
    Architectures are named by ``str(arch)`` (``Space.key`` for the canonical archs strategies
    give); ``settings.proxies`` is not used, ``values`` names the proxies. ``computed`` counts networks
    built, ``seconds`` the time spent in them. With an ``executor`` (robustnas.executors),
    :meth:`prefetch` computes the missing values of many architectures in parallel; without one,
    each is computed in this process when asked for.
    """

    def __init__(
        self, settings: ScoreSettings, store: Store | None = None, runs: Sequence[Path] = (),
        executor: Executor | None = None,
    ) -> None:
        from robustnas.scoring import RUN, stored_values
        from robustnas.store import config_hash

        self.settings, self.store = settings, store
        self.seconds = 0.0
        self.computed = 0  # networks built (one per architecture with missing values)
        self._config = config_hash(settings.value_config())
        self._known: dict[tuple[str, str], tuple[float, str | None]] = {}  # looked up or computed
        self._runs: dict[tuple[str, str], tuple[float, str | None]] = {}
        for run in runs:
            for key, value in stored_values(Path(run), settings).items():
                self._runs.setdefault(key, value)
        self._batch: tuple[torch.Tensor, torch.Tensor] | None = None
        self.executor = executor
        self._shared: tuple[ScoreSettings, torch.Tensor, torch.Tensor] | None = None
        if store is not None:
            store.ensure_run(RUN, {"settings": settings.value_config() | {"seed": settings.seed}})
            store.add_config(settings.value_config())

    def config(self) -> dict[str, Any]:
        return {"source": "live", "scoring": self.settings.value_config(), "seed": self.settings.seed}

    def values(self, arch: Arch, names: Sequence[str]) -> dict[str, float]:
        """Proxy name -> value (NaN where undefined), computing the unknown ones with one network."""
        from robustnas.proxies import resolve

        names = resolve(list(names))
        key = str(arch)
        found = {name: self._lookup(key, name) for name in names}
        missing = tuple(name for name, hit in found.items() if hit is None)
        if missing:
            found |= self._compute(key, missing)
        return {name: found[name][0] for name in names}

    def _lookup(self, arch: str, name: str) -> tuple[float, str | None] | None:
        from robustnas.scoring import RUN
        from robustnas.store import Key, Result

        key = (arch, name)
        if key in self._known:
            return self._known[key]
        if key in self._runs:
            self._known[key] = self._runs[key]
            if self.store is not None:
                self.store.put(RUN, Result(arch, name, self.settings.seed, self._config, *self._runs[key]))
        elif self.store is not None:
            stored = self.store.get(RUN, Key(arch, name, self.settings.seed, self._config))
            if stored is not None:
                self._known[key] = (stored.value, stored.note)
        return self._known.get(key)

    def pass_seconds(self, arch: Arch) -> float:
        """One cross-entropy forward+backward of ``arch``'s network on the proxies' batch (``scoring.pass_seconds``)."""
        from robustnas.scoring import pass_seconds

        return pass_seconds(self.settings, *self._proxy_batch(), str(arch))

    def _proxy_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        from robustnas.scoring import prepare_batch

        if self._batch is None:
            self._batch = prepare_batch(self.settings)
        return self._batch

    def prefetch(self, archs: Sequence[Arch], names: Sequence[str]) -> None:
        """Compute (through the executor, in parallel) and store the values of ``names`` that no
        run, store or earlier call holds for ``archs``; later :meth:`values` calls read them."""
        from robustnas.proxies import resolve
        from robustnas.scoring import job_result, score_task

        if self.executor is None or not names:
            return
        names = resolve(list(names))
        jobs = []
        for key in dict.fromkeys(str(arch) for arch in archs):
            missing = tuple(name for name in names if self._lookup(key, name) is None)
            if missing:
                jobs.append((key, missing))
        if self._shared is None:  # one object for every call: a local pool is started once
            x, y = self._proxy_batch()
            self._shared = (self.settings, x.cpu(), y.cpu())
        for index, result in self.executor.map_unordered(score_task, jobs, self._shared):
            self._keep(*job_result(jobs[index], result))

    def _compute(self, arch: str, names: tuple[str, ...]) -> dict[str, tuple[float, str | None]]:
        from robustnas.scoring import score_arch

        return self._keep(arch, *score_arch(self.settings, *self._proxy_batch(), arch, names))

    def _keep(
        self, arch: str, values: dict[str, float], reasons: dict[str, str], seconds: float
    ) -> dict[str, tuple[float, str | None]]:
        """Count, store and remember one network's freshly computed values."""
        from robustnas.scoring import RUN
        from robustnas.store import Result

        self.seconds += seconds
        self.computed += 1
        results = {name: (value, reasons.get(name)) for name, value in values.items()}
        if self.store is not None:
            rows = [Result(arch, name, self.settings.seed, self._config, *result) for name, result in results.items()]
            self.store.put_many(RUN, rows)
        self._known.update({(arch, name): result for name, result in results.items()})
        return results


class TableProxies:
    """Proxy values replayed from a table: index ``Space.key`` strings, one column per proxy.

    NaN marks an undefined value; NAS-Bench-Suite-Zero's -1e8 sentinel (spec §1.1) is read as NaN
    too, so that a lower-is-better proxy never turns an undefined value into the best one.
    """

    def __init__(self, frame: pd.DataFrame) -> None:
        if not frame.index.is_unique:
            raise RobustnasError("the proxy table has repeated architectures in its index; keep one row each")
        try:
            numbers = frame.astype(float)
        except (TypeError, ValueError):
            raise RobustnasError("the proxy table must hold numbers only (NaN where undefined)") from None
        self.frame = numbers.mask(numbers == UNDEFINED)
        self.frame.index = self.frame.index.map(str)
        self.seconds = 0.0
        digest = hashlib.sha256(json.dumps([str(c) for c in frame.columns]).encode())
        digest.update(pd.util.hash_pandas_object(self.frame, index=True).to_numpy().tobytes())
        self._digest = digest.hexdigest()[:16]

    def config(self) -> dict[str, Any]:
        return {"source": "table", "sha256": self._digest}

    def values(self, arch: Arch, names: Sequence[str]) -> dict[str, float]:
        key = str(arch)
        if key not in self.frame.index:
            raise RobustnasError(
                f"architecture {key} is not in the proxy table; score it first or search a space it covers"
            )
        absent = [name for name in names if name not in self.frame.columns]
        if absent:
            raise RobustnasError(
                f"the proxy table has no column {', '.join(absent)}; it holds {', '.join(map(str, self.frame.columns))}"
            )
        row = self.frame.loc[key]
        return {name: float(row[name]) for name in names}


# ---- objectives ----------------------------------------------------------------------------------
class Objective(ABC):
    """Higher-is-better values of an architecture, one per name (issue 6 design contract)."""

    names: tuple[str, ...]
    proxies: Sequence[str] = ()  # registered proxies it reads per architecture (a run's cost estimate)

    @abstractmethod
    def config(self) -> dict[str, Any]:
        """JSON-able settings that determine the values (hashed into the store's config)."""

    @abstractmethod
    def __call__(self, arch: Arch) -> tuple[float, ...]:
        """The values of ``arch``: higher is better, -inf where undefined."""

    def feasible(self, arch: Arch) -> bool:
        """Whether ``arch`` satisfies the constraints (none by default)."""
        return True


def _positive(number: object) -> bool:
    """A finite number > 0 (a weight, a latency limit)."""
    return isinstance(number, (int, float)) and not isinstance(number, bool) and math.isfinite(number) and number > 0


def _proxy_spec(name: str) -> Any:
    """The registered proxy ``name``, or one error listing every proxy."""
    from robustnas.proxies import REGISTRY

    if name not in REGISTRY:
        raise RobustnasError(
            f"unknown proxy {name!r} in the objective; proxies: {', '.join(sorted(REGISTRY))} "
            f"(or use {OBJECTIVE_GRAMMAR})"
        )
    return REGISTRY[name]


class ProxyObjective(Objective):
    """One proxy, signed so that higher is better (``-value`` for a lower-is-better proxy)."""

    def __init__(self, name: str, source: ProxySource) -> None:
        self.sign = 1.0 if _proxy_spec(name).higher_is_better else -1.0
        self.name, self.source = name, source
        self.names = (name,)
        self.proxies = (name,)

    def config(self) -> dict[str, Any]:
        return {"kind": "proxy", "name": self.name, "source": self.source.config()}

    def __call__(self, arch: Arch) -> tuple[float, ...]:
        value = self.source.values(arch, [self.name])[self.name]
        return (-math.inf if math.isnan(value) else self.sign * value,)


class WeightedProxies(Objective):
    """Scale-free weighted combination: sum_i w_i * s_i * log(v_i), s_i = +1 (higher is better) or -1.

    This is the log of a weighted geometric mean, so multiplying one proxy by a constant shifts all
    values equally and leaves the ranking unchanged; raw proxies span very different scales (params
    ~1e6, synflow ~1e30), which a weighted sum would let the largest dominate. The log exists only
    for positive values: an architecture where any proxy is NaN or <= 0 gets -inf (ranked last);
    for a proxy that can be <= 0 use it alone or through a predictor.
    """

    def __init__(self, weights: Mapping[str, float], source: ProxySource) -> None:
        if not weights:
            raise RobustnasError("a weighted objective needs at least one W*PROXY term")
        bad = {name: w for name, w in weights.items() if not _positive(w)}
        if bad:
            raise RobustnasError(f"weights must be finite numbers > 0, got {bad}")
        self.signs = {name: 1.0 if _proxy_spec(name).higher_is_better else -1.0 for name in weights}
        self.weights, self.source = {name: float(w) for name, w in weights.items()}, source
        self.proxies = tuple(self.weights)
        self.names = ("+".join(f"{w:g}*{name}" for name, w in self.weights.items()),)

    def config(self) -> dict[str, Any]:
        return {"kind": "weighted", "weights": self.weights, "source": self.source.config()}

    def __call__(self, arch: Arch) -> tuple[float, ...]:
        values = self.source.values(arch, list(self.weights))
        if any(not values[name] > 0 for name in self.weights):  # NaN or <= 0: no logarithm
            return (-math.inf,)
        return (sum(w * self.signs[name] * math.log(values[name]) for name, w in self.weights.items()),)


class PredictorObjective(Objective):
    """A saved ``Predictor``'s output as the objective (the study's random forest over proxies).

    Its features are registered proxies (from ``source``; undefined -> -1e8 as in the study's
    fitting data) and NB201 cell-graph features (``nb201.graph_features``). ``target`` picks one
    output (default the first) or a sum of outputs, ``"clean+fgsm@1.0"``: one attack's accuracy
    alone rewards odd networks (the NB201 cells with the highest PGD@1/255 accuracy have low clean
    accuracy), a sum of clean and robust accuracy does not. ``space``, when given, lets graph
    features fail at construction outside NB201.
    """

    def __init__(
        self,
        predictor: str | Path | Predictor,
        source: ProxySource | None,
        target: str | None = None,
        *,
        space: Space | str | None = None,
    ) -> None:
        from robustnas.predict import Predictor
        from robustnas.proxies import REGISTRY
        from robustnas.spaces.nb201 import GRAPH_FEATURES

        self.predictor = predictor if isinstance(predictor, Predictor) else Predictor.load(Path(predictor))
        self._digest = _predictor_digest(predictor)
        targets = self.predictor.targets
        self.target = targets[0] if target is None else target
        summed = [self.target] if self.target in targets else self.target.split("+")  # names may hold "+"
        missing = [name for name in summed if name not in targets]
        if missing:
            raise RobustnasError(f"the predictor has no target {missing[0]!r}; its targets: {', '.join(targets)}")
        if len(set(summed)) != len(summed):
            raise RobustnasError(f"target {self.target!r} names an output twice; sum each target once")
        self._columns = [targets.index(name) for name in summed]
        features = self.predictor.features
        self.proxies = [f for f in features if f in REGISTRY]
        self.graph = [f for f in features if f in GRAPH_FEATURES]
        unknown = [f for f in features if f not in REGISTRY and f not in GRAPH_FEATURES]
        if unknown:
            raise RobustnasError(
                f"predictor feature(s) {', '.join(unknown)} are neither proxies nor NB201 graph features; "
                "fit the predictor on those only"
            )
        space_name = space.name if isinstance(space, Space) else space
        if self.graph and space_name not in (None, "nb201"):
            raise RobustnasError(
                f"the predictor uses NB201 graph features ({self.graph[0]}, ...); it cannot search {space_name}"
            )
        if self.proxies and source is None:
            raise RobustnasError("the predictor's proxy features need a proxy source (live proxies or a proxy table)")
        self.source = source
        self.names = (f"predictor:{self.target}",)
        self._warn_if_scored_differently()

    def _warn_if_scored_differently(self) -> None:
        """A predictor fitted on proxies scored with other data, batch or seed (``fitted_on``, saved by
        the study) still runs, but visibly: its predictions assume the values it was fitted on."""
        fitted = self.predictor.fitted_on.get("proxy_settings") or []
        current = self.source.config() if self.proxies and self.source is not None else {}
        if fitted and current.get("source") == "live":
            here = {"scoring": current["scoring"], "seed": current["seed"]}
            if here not in fitted:
                warnings.warn(f"the predictor's proxies were scored with {fitted[0]}; this search scores them "
                              f"with {here}: pass the same --dataset, --data, --batch-size and --proxy-seed as "
                              "the scoring runs it was fitted on", stacklevel=3)

    def config(self) -> dict[str, Any]:
        source = self.source.config() if self.proxies and self.source is not None else None
        return {"kind": "predictor", "sha256": self._digest, "target": self.target, "source": source}

    def features(self, arch: Arch) -> pd.DataFrame:
        """The one-row feature frame the predictor sees for ``arch``."""
        from robustnas.spaces.nb201 import graph_features

        row = {}
        if self.proxies:
            row = {k: UNDEFINED if math.isnan(v) else v for k, v in self.source.values(arch, self.proxies).items()}
        if self.graph:
            row |= graph_features(_nb201(arch, "graph features"))
        return pd.DataFrame([row], columns=self.predictor.features)

    def __call__(self, arch: Arch) -> tuple[float, ...]:
        predicted = self.predictor.predict(self.features(arch)).reshape(1, -1)[0]
        return (float(sum(predicted[column] for column in self._columns)),)


def _predictor_digest(predictor: str | Path | Predictor) -> str:
    """SHA-256 (16 hex digits) of the predictor file (an in-memory predictor: of its saved form)."""
    if not isinstance(predictor, (str, Path)):
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "predictor.npz"
            predictor.save(path)
            return _predictor_digest(path)
    return hashlib.sha256(Path(predictor).read_bytes()).hexdigest()[:16]


def _nb201(arch: Arch, what: str) -> NB201Arch:
    """``arch`` as an NB201 architecture, or one error saying ``what`` exists only for NB201."""
    from robustnas.spaces.nb201 import NB201Arch

    if isinstance(arch, NB201Arch):
        return arch
    try:
        return NB201Arch.parse(arch)
    except RobustnasError:
        raise RobustnasError(f"{what} exist only for NB201 architectures, got {str(arch)[:60]!r}") from None


class BenchmarkObjective(Objective):
    """The NB201 ground truth (an oracle, for studying strategies): one ``Benchmark.table`` column.

    ``column``: ``clean``, ``nats_test``, ``<attack>@<eps>`` (eps in 1/255; ``pgd@1`` = ``pgd@1.0``)
    or ``<corruption>@<severity>``; values are accuracies (fractions) from ``Benchmark.query``.
    """

    def __init__(self, column: str, dataset: str, bench: Benchmark | None = None) -> None:
        from robustnas.bench import Benchmark
        from robustnas.bench._names import ATTACK_KEYS, CORRUPTIONS

        self.bench = bench or Benchmark()
        metric, at, argument = column.partition("@")
        self.metric, self.dataset, self.eps, self.severity = metric, dataset, None, None
        try:
            if metric in ATTACK_KEYS:
                self.eps = float(argument)
            elif metric in CORRUPTIONS:
                self.severity = int(argument)
            elif at:
                raise ValueError
        except ValueError:
            raise RobustnasError(
                f"bad benchmark column {column!r}: use clean, nats_test, ATTACK@EPS (e.g. pgd@1.0) "
                "or CORRUPTION@SEVERITY (e.g. gaussian_noise@3)"
            ) from None
        if metric not in self.bench.metrics(dataset):
            raise RobustnasError(
                f"no benchmark metric {metric!r} for {dataset}; choose one of: {', '.join(self.bench.metrics(dataset))}"
            )
        self.column = self.bench.column(metric, self.eps, self.severity)
        self.names = (f"bench:{self.column}",)

    def config(self) -> dict[str, Any]:
        return {"kind": "bench", "column": self.column, "dataset": self.dataset, "benchmark": self.bench.sources}

    def __call__(self, arch: Arch) -> tuple[float, ...]:
        nb201 = _nb201(arch, "benchmark values")
        return (self.bench.query(nb201, self.dataset, self.metric, self.eps, self.severity),)


class LatencyObjective(Objective):
    """Minus the HW-NAS-Bench latency (ms) of an NB201 architecture on ``device`` (Li et al., ICLR 2021)."""

    def __init__(self, device: str, dataset: str, bench: Benchmark | None = None) -> None:
        from robustnas.bench import Benchmark

        self.bench = bench or Benchmark()
        table = self.bench.hw_nas_bench(dataset)
        devices = [c.removesuffix("_latency") for c in table.columns if c.endswith("_latency")]
        if device not in devices:
            raise RobustnasError(f"no HW-NAS-Bench latency for device {device!r}; choose one of: {', '.join(devices)}")
        self.device, self.dataset = device, dataset
        self.latency_ms = table[f"{device}_latency"].to_numpy()
        self.names = (f"latency:{device}",)

    def config(self) -> dict[str, Any]:
        return {"kind": "latency", "device": self.device, "dataset": self.dataset, "benchmark": self.bench.sources}

    def __call__(self, arch: Arch) -> tuple[float, ...]:
        return (-float(self.latency_ms[_nb201(arch, "HW-NAS-Bench latencies").index]),)


class Constrained(Objective):
    """``objective`` with a latency constraint: feasible iff HW-NAS-Bench latency <= ``max_latency_ms``.

    Values and config are the wrapped objective's (the constraint does not change them)."""

    def __init__(
        self, objective: Objective, max_latency_ms: float, device: str = "edgegpu",
        dataset: str = "cifar10", bench: Benchmark | None = None,
    ) -> None:
        if not _positive(max_latency_ms):
            raise RobustnasError(f"the latency limit must be a number of ms > 0, got {max_latency_ms!r}")
        self.objective, self.max_latency_ms = objective, float(max_latency_ms)
        self.proxies = objective.proxies
        self.latency = LatencyObjective(device, dataset, bench)
        self.names = objective.names

    def config(self) -> dict[str, Any]:
        return self.objective.config()

    def __call__(self, arch: Arch) -> tuple[float, ...]:
        return self.objective(arch)

    def feasible(self, arch: Arch) -> bool:
        return self.objective.feasible(arch) and -self.latency(arch)[0] <= self.max_latency_ms


class Combined(Objective):
    """Several objectives as one multi-objective (names and values concatenated, e.g. for NSGA-II)."""

    def __init__(self, objectives: Sequence[Objective]) -> None:
        if not objectives:
            raise RobustnasError("a combined objective needs at least one objective")
        self.objectives = list(objectives)
        self.names = tuple(name for objective in self.objectives for name in objective.names)
        self.proxies = tuple(dict.fromkeys(name for objective in self.objectives for name in objective.proxies))

    def config(self) -> dict[str, Any]:
        return {"kind": "combined", "objectives": [objective.config() for objective in self.objectives]}

    def __call__(self, arch: Arch) -> tuple[float, ...]:
        return tuple(value for objective in self.objectives for value in objective(arch))

    def feasible(self, arch: Arch) -> bool:
        return all(objective.feasible(arch) for objective in self.objectives)


# ---- the --objective grammar ---------------------------------------------------------------------
def parse_objective(
    spec: str,
    *,
    space: Space | str,
    dataset: str,
    source: ProxySource | None,
    bench: Benchmark | None = None,
    max_latency_ms: float | None = None,
    latency_device: str = "edgegpu",
) -> Objective:
    """The objective named by ``spec`` (see the module docstring); commas make a ``Combined`` one,
    and ``max_latency_ms`` wraps the result in a ``Constrained`` (NB201 only)."""
    space_name = space.name if isinstance(space, Space) else space
    parts = _split_objectives(spec)
    if not spec.strip() or not all(parts):
        raise RobustnasError(f"empty objective in {spec!r}; give {OBJECTIVE_GRAMMAR}, several separated by commas")
    if any(part.startswith(("bench:", "latency:")) for part in parts) or max_latency_ms is not None:
        bench = _benchmark_for(space_name, bench)
    objectives = [_parse_one(part, space_name, dataset, source, bench) for part in parts]
    objective = objectives[0] if len(objectives) == 1 else Combined(objectives)
    if max_latency_ms is not None:
        objective = Constrained(objective, max_latency_ms, latency_device, dataset, bench)
    return objective


def _split_objectives(spec: str) -> list[str]:
    """The comma-separated objectives of ``spec``; a ``predictor:`` path that holds commas stays whole
    where joining the following pieces names an existing predictor file (the longest such join wins)."""
    pieces = spec.split(",")
    parts, start = [], 0
    while start < len(pieces):
        end = start + 1
        if pieces[start].strip().startswith("predictor:"):
            end = next(
                (stop for stop in range(len(pieces), start, -1)
                 if _names_a_file(",".join(pieces[start:stop]).strip().removeprefix("predictor:"))),
                end,
            )
        parts.append(",".join(pieces[start:end]).strip())
        start = end
    return parts


def _names_a_file(rest: str) -> bool:
    """Whether ``PATH`` or ``PATH:TARGET`` names an existing file."""
    return Path(rest).is_file() or Path(rest.rpartition(":")[0]).is_file()


def _benchmark_for(space: str, bench: Benchmark | None) -> Benchmark:
    """``bench`` (default: the shipped NB201 tables); an error outside NB201, which has no benchmark."""
    from robustnas.bench import Benchmark

    from robustnas import spaces

    if not spaces.get(space).has_benchmark:
        raise RobustnasError(f"bench:, latency: and latency limits use NB201 benchmarks; the {space} space has none")
    return bench or Benchmark()


def _parse_one(part: str, space: str, dataset: str, source: ProxySource | None, bench: Benchmark | None) -> Objective:
    kind, _, rest = part.partition(":")
    if kind == "bench":
        return BenchmarkObjective(rest, dataset, bench)
    if kind == "latency":
        return LatencyObjective(rest, dataset, bench)
    if kind == "predictor":
        return _parse_predictor(rest, space, source)
    if source is None:
        raise RobustnasError(f"the objective {part!r} needs proxy values: give a proxy source")
    if "*" in part or "+" in part:
        return WeightedProxies(_parse_weights(part), source)
    return ProxyObjective(part, source)


def _parse_predictor(rest: str, space: str, source: ProxySource | None) -> PredictorObjective:
    """``PATH`` or ``PATH:TARGET`` (a path that exists as a whole wins, so paths may hold colons and commas)."""
    path, target = rest, None
    if not Path(rest).is_file() and Path(rest.rpartition(":")[0]).is_file():
        path, _, target = rest.rpartition(":")
    if not Path(path).is_file():
        raise RobustnasError(f"predictor file {path!r} not found; give predictor:PATH[:TARGET] with a saved Predictor")
    return PredictorObjective(path, source, target or None, space=space)


def _parse_weights(part: str) -> dict[str, float]:
    """``W*PROXY+W*PROXY...`` (W optional, default 1) as {proxy: weight}."""
    weights: dict[str, float] = {}
    for term in (t.strip() for t in part.split("+")):
        weight, star, name = term.rpartition("*")
        try:
            value = float(weight) if star else 1.0
        except ValueError:
            value = math.nan
        name = name.strip()
        if not name or not _positive(value):
            raise RobustnasError(
                f"bad term {term!r} in {part!r}: write W*PROXY with a number W > 0, e.g. 2*synflow+params"
            )
        if name in weights:
            raise RobustnasError(f"proxy {name!r} appears twice in {part!r}; give each proxy one weight")
        weights[name] = value
    return weights
