"""Proxy- and predictor-guided search on NB201 / CIFAR-10, judged by the benchmark (issue 6 §3).

Every strategy x objective runs through the real runner (``robustnas.search.search``, a fresh
store per method and seed) for --seeds seeds and --budget distinct evaluations. Proxy values are
looked up in stored scoring runs (``TableProxies``) instead of computed, so the whole benchmark
takes minutes on a CPU; the compute a live search would spend is estimated from the measured
per-architecture proxy seconds (docs/results/proxy-speed.json) plus the measured search overhead.

The best-so-far architecture after 10, 25, 50, 100, 200 evaluations is read off the prefixes of
one run per method and seed (strategies are deterministic, so a run with budget k is the prefix
of the longer run; checked below) and looked up in the benchmark: clean, PGD at 1/255 and FGSM at
8/255 accuracy with their mid-rank percentiles among the 6,466 unique architectures.

The multi-proxy predictor is a random forest fitted on CIFAR-100 ground truth only (no leakage
into the CIFAR-10 search, issue 6 §3): 54 graph features + croze, synflow, params, flops.

    python benchmarks/search_nb201.py --seeds 20 --budget 200

Writes docs/results/search-nb201.{json,md,png}, docs/results/search-nb201-cost.png and
runs/search-predictor.npz (the fitted predictor, not committed).
"""
from __future__ import annotations

import argparse
import json
import math
import random
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy.stats import spearmanr

from robustnas.bench import Benchmark
from robustnas.errors import RobustnasError
from robustnas.predict import Predictor
from robustnas.report import markdown_table
from robustnas.scoring import scores
from robustnas.search._objectives import (
    UNDEFINED, Combined, LatencyObjective, Objective, PredictorObjective, ProxyObjective, TableProxies,
)
from robustnas.search._run import SearchOutcome, benchmark_record, best_evaluations, percentile, search
from robustnas.spaces import get as get_space
from robustnas.search._base import get, make_strategy
from robustnas.search._strategies import RandomSearch
from robustnas.spaces.nb201 import GRAPH_FEATURES, NB201Arch, graph_features, unique_indices
from robustnas.store import Store

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results"
CHECKPOINTS = (10, 25, 50, 100, 200)
HEADLINE_BUDGET = 100
PROXIES = ("croze", "synflow", "params", "flops")  # the proxy table's columns, the predictor's proxy features
SUITE_PROXIES = ("synflow", "params", "flops")  # from NAS-Bench-Suite-Zero, completed by our run
TARGET = "c100_clean+pgd_rank"  # pct-rank(clean) + pct-rank(pgd@1.0) on CIFAR-100
LATENCY_DEVICE = "edgegpu"
METRICS = ("clean", "pgd@1", "fgsm@8")  # keys of run.benchmark_record
LABELS = {"clean": "clean", "pgd@1": "PGD@1", "fgsm@8": "FGSM@8"}
PREFIX_CHECK = ("warmup-move / croze", "nsga2 / predictor+edgegpu")  # methods whose budget-100 run is compared


@dataclass(frozen=True)
class Method:
    """One strategy x objective; ``strategy`` None is the random architecture (no search)."""

    name: str
    strategy: str | None
    objective: str | None
    options: dict[str, Any] = field(default_factory=dict)


WARMUP = {"init_pool": 50, "sample_pool": 5}  # CRoZe's sampling.py defaults (spec §A.6)
EVOLUTION = {"population": 50, "sample": 10}
METHODS = (
    Method("random architecture", None, None),
    *(Method(f"random / {o}", "random", o) for o in ("params", "synflow", "croze", "predictor")),
    *(Method(f"warmup-move / {o}", "warmup-move", o, WARMUP) for o in ("params", "synflow", "croze", "predictor")),
    *(Method(f"evolution / {o}", "evolution", o, EVOLUTION) for o in ("params", "croze", "predictor")),
    Method("nsga2 / predictor+edgegpu", "nsga2", "predictor+edgegpu", {"population": 20}),
    Method("random / study-graph", "random", "study-graph"),
    Method("warmup-move / study-graph", "warmup-move", "study-graph", WARMUP),
)
OBJECTIVE_PROXIES = {"params": ("params",), "synflow": ("synflow",), "croze": ("croze",),
                     "predictor": PROXIES, "predictor+edgegpu": PROXIES,  # latency is a table lookup: free
                     "study-graph": ()}  # graph features only: no network is built
GUIDED = ("random / croze", "warmup-move / croze", "evolution / croze",
          "random / predictor", "warmup-move / predictor", "evolution / predictor",
          "random / study-graph", "warmup-move / study-graph")
STUDY_TARGET = "clean+fgsm@1.0"  # sum of two outputs of the saved study predictor


# ---- inputs --------------------------------------------------------------------------------------
def representatives() -> tuple[np.ndarray, list[str]]:
    """NB201 indices of the 6,466 isomorphism representatives and their search keys, same order."""
    space = get_space("nb201")
    indices = unique_indices()
    return indices, [space.key(NB201Arch.from_index(int(i))) for i in indices]


def require_run(run: Path, what: str) -> None:
    """One-line error when a scoring run directory is absent."""
    if not (run / "store.sqlite").is_file():
        raise RobustnasError(f"{run}: no scoring run ({what}); score it with `robustnas score` or give its path")


def proxy_table(croze_run: Path, missing_run: Path, bench: Benchmark) -> pd.DataFrame:
    """croze, synflow, params, flops of every representative, indexed by ``Space.key``.

    croze from our scoring run of all 6,466; synflow/params/flops from NAS-Bench-Suite-Zero (6,144
    representatives), completed by our scoring run of the 322 it lacks.
    """
    require_run(croze_run, "croze of all 6,466 representatives")
    require_run(missing_run, "suite proxies of the 322 representatives NAS-Bench-Suite-Zero lacks")
    indices, keys = representatives()
    space = get_space("nb201")
    suite = bench.suite_zero("cifar10").reindex(indices)[list(SUITE_PROXIES)].set_axis(keys)
    ours = scores(missing_run)[list(SUITE_PROXIES)]
    ours.index = [space.key(space.parse(a)) for a in ours.index]
    croze = scores(croze_run)["croze"]
    croze.index = [space.key(space.parse(a)) for a in croze.index]
    table = pd.concat([croze.reindex(keys), suite.combine_first(ours).reindex(keys)], axis=1)[list(PROXIES)]
    absent = table.isna().sum()
    if absent.any():
        raise RobustnasError(f"the proxy runs lack values {absent[absent > 0].to_dict()}; score those architectures")
    return table


def predictor_data(table: pd.DataFrame, bench: Benchmark) -> tuple[pd.DataFrame, pd.Series]:
    """Features (54 graph features + the CIFAR-10 proxies, undefined as -1e8 as ``PredictorObjective``
    gives them) and the CIFAR-100 target pct-rank(clean) + pct-rank(PGD@1) for every representative."""
    indices, keys = representatives()
    graph = pd.DataFrame([graph_features(NB201Arch.parse(k)) for k in keys], index=keys)[list(GRAPH_FEATURES)]
    proxies = TableProxies(table).frame.fillna(UNDEFINED)
    features = pd.concat([graph, proxies.reindex(keys)], axis=1)
    c100 = bench.table("cifar100").reindex(indices).set_axis(keys)
    target = (c100["clean"].rank(pct=True) + c100["pgd@1.0"].rank(pct=True)).rename(TARGET)
    return features, target


def fit_predictor(features: pd.DataFrame, target: pd.Series, path: Path) -> Predictor:
    """The spec's random forest (100 trees, random_state 42) on CIFAR-100 labels, saved to ``path``."""
    predictor = Predictor("rf", random_state=42).fit(features, target)
    path.parent.mkdir(parents=True, exist_ok=True)
    predictor.save(path)
    return predictor


def proxy_seconds(speed_file: Path) -> dict[str, Any]:
    """Mean per-architecture seconds of the table's proxies (docs/results/proxy-speed.json) and the
    network build time they leave out (one-call-per-proxy baseline minus the sum of its proxies)."""
    data = json.loads(speed_file.read_text())
    rows = {row["what"]: row["mean s"] for row in data["table"]}
    missing = [p for p in PROXIES if p not in rows]
    if missing:
        raise RobustnasError(f"{speed_file} has no row for {missing}; run benchmarks/proxy_speed.py")
    suite = ("epe_nas", "fisher", "flops", "grad_norm", "grasp", "jacov", "l2_norm", "nwot", "params", "plain",
             "snip", "synflow", "zen", "croze")
    build = (rows["baseline_one_call_per_proxy"] - sum(rows[p] for p in suite)) / len(suite)
    return {"seconds": {p: rows[p] for p in PROXIES}, "build_s_estimate": build,
            "command": data["command"], "machine": data["machine"]}


# ---- searching -----------------------------------------------------------------------------------
def objectives(
    table: pd.DataFrame, predictor_path: Path, study_predictor: Path, bench: Benchmark
) -> dict[str, Objective]:
    """Every objective the methods use, all reading the one proxy table; ``study-graph`` is the
    saved graph-feature predictor of ``robustnas study --dataset cifar100`` (CIFAR-100 labels)."""
    if not study_predictor.is_file():
        raise RobustnasError(
            f"{study_predictor}: no study predictor; run robustnas study --dataset cifar100 --features ours "
            "--runs runs/study-c100 --out docs/results/study/cifar100-ours or give --study-predictor"
        )
    source = TableProxies(table)
    predictor = PredictorObjective(predictor_path, source, space="nb201")
    result: dict[str, Objective] = {name: ProxyObjective(name, source) for name in ("params", "synflow", "croze")}
    result["predictor"] = predictor
    result["predictor+edgegpu"] = Combined([predictor, LatencyObjective(LATENCY_DEVICE, "cifar10", bench)])
    result["study-graph"] = PredictorObjective(study_predictor, None, STUDY_TARGET, space="nb201")
    return result


@dataclass
class Trace:
    """One search: its outcome and the seconds since its start at each evaluation."""

    outcome: SearchOutcome
    stamps: list[float]


def run_search(method: Method, objective: Objective, seed: int, budget: int) -> Trace:
    """``method`` from ``seed`` through the runner, in a fresh store in a temporary folder."""
    options = dict(method.options)
    if get(method.strategy).multi_objective:
        options["objectives"] = len(objective.names)  # in-memory Optuna study
    strategy = make_strategy(method.strategy, get_space("nb201"), seed, **options)
    stamps: list[float] = []
    with tempfile.TemporaryDirectory() as folder, Store(Path(folder) / "store.sqlite") as store:
        start = time.perf_counter()
        outcome = search(strategy, objective, budget, store,
                         on_evaluation=lambda _: stamps.append(time.perf_counter() - start))
    return Trace(outcome, stamps)


def chosen_at(outcome: SearchOutcome, k: int) -> Any:
    """The evaluation ``write_result`` reports after the first ``k``: the best (first of ties) or,
    for several objectives, the Pareto member with the best first objective (predictor)."""
    prefix = SearchOutcome(evaluations=outcome.evaluations[:k])
    return max(best_evaluations(prefix), key=lambda e: (e.values, -e.number))


def check_prefix(method: Method, objective: Objective, long: Trace, budget: int) -> str:
    """Assert that a run with budget ``budget`` evaluates exactly the first ``budget`` of ``long``."""
    short = run_search(method, objective, 0, budget).outcome.evaluations
    pairs = [(e.arch, e.values) for e in short]
    assert pairs == [(e.arch, e.values) for e in long.outcome.evaluations[:budget]], f"{method.name}: not a prefix"
    return f"{method.name}, seed 0: the budget-{budget} run equals the first {budget} evaluations of the longer run"


class Lookup:
    """Benchmark record and edgegpu latency of an architecture key, cached."""

    def __init__(self, bench: Benchmark) -> None:
        self.bench = bench
        self.latency = bench.hw_nas_bench("cifar10")[f"{LATENCY_DEVICE}_latency"]
        self._cache: dict[str, dict[str, Any]] = {}

    def __call__(self, key: str) -> dict[str, Any]:
        if key not in self._cache:
            arch = get_space("nb201").parse(key)
            self._cache[key] = benchmark_record(arch, "cifar10", self.bench) | {
                "edgegpu_ms": float(self.latency.iloc[arch.index])}
        return self._cache[key]


def checkpoint_rows(method: Method, seed: int, trace: Trace | None, checkpoints: Sequence[int],
                    seconds: dict[str, float], lookup: Lookup) -> list[dict[str, Any]]:
    """One row per checkpoint: the chosen architecture, its benchmark record and the cost so far."""
    space, rows = get_space("nb201"), []
    for k in checkpoints:
        if trace is None:  # the random architecture: the first draw of random search, no proxy
            key, values, evaluations, overhead = space.key(RandomSearch(space, seed).ask()[0]), None, 0, 0.0
        else:
            evaluations = min(k, len(trace.outcome.evaluations))
            best = chosen_at(trace.outcome, evaluations)
            key, values, overhead = best.arch, list(best.values), trace.stamps[evaluations - 1]
        proxy_s = sum(seconds[p] for p in OBJECTIVE_PROXIES.get(method.objective, ()))
        rows.append({"method": method.name, "seed": seed, "budget": k, "evaluations": evaluations, "arch": key,
                     "objective_values": values, "overhead_s": overhead,
                     "cost_s": evaluations * proxy_s + overhead, **lookup(key)})
    return rows


def run_all(methods: Sequence[Method], objective_of: dict[str, Objective], seeds: int, budget: int,
            seconds: dict[str, float], lookup: Lookup, log: Callable[[str], None]) -> tuple[list[dict], list[dict]]:
    """Every method over seeds 0..seeds-1: (checkpoint rows, one summary per run)."""
    checkpoints = sorted({k for k in CHECKPOINTS if k <= budget} | {budget})
    rows, runs = [], []
    for method in methods:
        started = time.perf_counter()
        for seed in range(seeds):
            trace = None
            if method.strategy is not None:
                trace = run_search(method, objective_of[method.objective], seed, budget)
                runs.append(run_summary(method, seed, trace))
            rows += checkpoint_rows(method, seed, trace, checkpoints, seconds, lookup)
        log(f"{method.name}: {time.perf_counter() - started:.1f} s for {seeds} seeds")
    return rows, runs


def run_summary(method: Method, seed: int, trace: Trace) -> dict[str, Any]:
    """What a run did besides its best: evaluations, stall, infeasible asks, -inf values, wall time."""
    outcome = trace.outcome
    return {"method": method.name, "seed": seed, "evaluations": len(outcome.evaluations), "stalled": outcome.stalled,
            "infeasible_asked": outcome.infeasible, "wall_s": outcome.wall_s,
            "minus_inf_values": sum(not math.isfinite(v) for e in outcome.evaluations for v in e.values)}


# ---- the reference point ---------------------------------------------------------------------------
def reference_check(values: dict[str, np.ndarray], pct: dict[str, np.ndarray], keys: list[str],
                    trials: int, budget: int) -> pd.DataFrame:
    """Mean benchmark percentiles of the table argmax (ties at random) over ``budget`` distinct
    architectures, ``trials`` times, for two samplers: numpy's choice without replacement among the
    6,466 (as the issue's reference point was measured) and ``Space.sample`` (what ``RandomSearch``
    draws). Objective ``none (first draw)`` is the random architecture."""
    position = {k: i for i, k in enumerate(keys)}
    space, rows = get_space("nb201"), []
    for sampler in (ISSUE_SAMPLER, SEARCH_SAMPLER):
        rng, np_rng = random.Random(1), np.random.default_rng(1)
        draws = [_draw(sampler, space, rng, np_rng, position, budget) for _ in range(trials)]
        choices = {FIRST_DRAW: np.array([draw[0] for draw in draws])}
        for name, score in values.items():  # first of ties in random draw order = ties broken at random
            choices[name] = np.array([draw[int(np.argmax(score[draw]))] for draw in draws])
        for name, picks in choices.items():
            rows.append({"sampler": sampler, "objective": name, "trials": trials,
                         **{f"{LABELS[m]} pct": float(pct[m][picks].mean()) for m in METRICS}})
    return pd.DataFrame(rows)


FIRST_DRAW = "none (first draw)"
ISSUE_SAMPLER = "numpy, uniform over 6,466 (issue)"
SEARCH_SAMPLER = "Space.sample (RandomSearch)"


def _draw(sampler: str, space: Space, rng: random.Random, np_rng: np.random.Generator,
          position: dict[str, int], budget: int) -> np.ndarray:
    """Positions of ``budget`` distinct representatives in draw order."""
    if sampler == ISSUE_SAMPLER:
        return np_rng.choice(len(position), budget, replace=False)
    drawn: dict[int, None] = {}
    while len(drawn) < budget:
        drawn.setdefault(position[space.key(space.sample(rng))], None)
    return np.fromiter(drawn, dtype=int)


def benchmark_percentiles(bench: Benchmark) -> dict[str, np.ndarray]:
    """Mid-rank percentile (``run.percentile``) of every representative, per reported metric."""
    indices, _ = representatives()
    table = bench.table("cifar10").reindex(indices)
    columns = {"clean": "clean", "pgd@1": "pgd@1.0", "fgsm@8": "fgsm@8.0"}
    result = {}
    for metric, column in columns.items():
        population = table[column].to_numpy()
        result[metric] = np.array([percentile(population, v) for v in population])
    return result


# ---- summaries -----------------------------------------------------------------------------------
SUMMARY_COLUMNS = ("clean", "clean_percentile", "pgd@1", "pgd@1_percentile", "fgsm@8", "fgsm@8_percentile",
                   "corruptions_percentile", "edgegpu_ms", "evaluations", "cost_s", "overhead_s")


def summarize(rows: pd.DataFrame) -> pd.DataFrame:
    """Mean, sd and sem over seeds of every reported quantity, per method and budget."""
    grouped = rows.groupby(["method", "budget"], sort=False)[list(SUMMARY_COLUMNS)]
    mean, sd, count = grouped.mean(), grouped.std(ddof=1), grouped.count()
    summary = pd.concat([mean.add_suffix("_mean"), sd.add_suffix("_sd"),
                         (sd / np.sqrt(count)).add_suffix("_sem")], axis=1)
    summary["seeds"] = count["clean"]
    return summary.reset_index()


def comparisons(summary: pd.DataFrame, budget: int) -> pd.DataFrame:
    """Guided methods vs the random architecture, random search + params and the same strategy with
    params at ``budget``: mean percentile differences and their Welch standard errors."""
    at = summary[summary["budget"] == budget].set_index("method")
    rows = []
    for method in GUIDED:
        row: dict[str, Any] = {"method": method}
        same = (method.split(" / ")[0] + " / params", "same strategy + params")
        for metric in ("pgd@1", "fgsm@8"):
            column = f"{metric}_percentile"
            row[f"{LABELS[metric]} pct"] = at.at[method, f"{column}_mean"]
            for base, label in (("random architecture", "random arch"), ("random / params", "params"), same):
                diff = at.at[method, f"{column}_mean"] - at.at[base, f"{column}_mean"]
                se = math.hypot(at.at[method, f"{column}_sem"], at.at[base, f"{column}_sem"])
                row[f"{LABELS[metric]} vs {label}"] = f"{diff:+.1f} ± {se:.1f}"
                row[f"_{metric}_{label}"] = diff
        row["beats both on both"] = all(row[f"_{m}_{b}"] > 0 for m in ("pgd@1", "fgsm@8") for b in ("random arch", "params"))
        rows.append(row)
    return pd.DataFrame(rows)


def proxy_correlations(values: dict[str, np.ndarray], pct: dict[str, np.ndarray]) -> pd.DataFrame:
    """Spearman over all 6,466 representatives of each objective with the CIFAR-10 benchmark metrics and params."""
    return pd.DataFrame([{"objective": name, **{LABELS[m]: float(spearmanr(score, pct[m]).statistic) for m in METRICS},
                          "params": float(spearmanr(score, values["params"]).statistic)}
                         for name, score in values.items()])


# ---- figures -------------------------------------------------------------------------------------
COLORS = {None: "black", "params": "0.45", "synflow": "C1", "croze": "C0", "predictor": "C2", "predictor+edgegpu": "C4",
          "study-graph": "C5"}
STYLES = {None: (0, (1, 1)), "random": ":", "warmup-move": "-", "evolution": "--", "nsga2": "-."}


def plot(summary: pd.DataFrame, methods: Sequence[Method], x: str, path: Path, xlabel: str, headline: int) -> None:
    """Mean PGD@1 and FGSM@8 percentile (shaded ±1 sem over seeds) vs ``x`` per method, log x;
    horizontal lines: random search + params at ``headline`` evaluations, and the 90th PGD percentile."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(13, 5.6), sharex=True)
    baseline = summary[(summary["method"] == "random / params") & (summary["budget"] == headline)]
    for ax, metric in zip(axes, ("pgd@1", "fgsm@8")):
        column = f"{metric}_percentile"
        for method in methods:
            if method.strategy is None:
                continue  # far below the others (see the note): it would squeeze their axis
            part = summary[summary["method"] == method.name]
            xs = part["budget"].to_numpy() if x == "budget" else part[f"{x}_mean"].to_numpy()
            mean, sem = part[f"{column}_mean"].to_numpy(), part[f"{column}_sem"].to_numpy()
            color, style = COLORS[method.objective], STYLES[method.strategy]
            ax.plot(xs, mean, linestyle=style, color=color, marker="o", ms=3, label=method.name)
            ax.fill_between(xs, mean - sem, mean + sem, color=color, alpha=0.08)
        if len(baseline):
            ax.axhline(float(baseline[f"{column}_mean"].iloc[0]), color="0.45", lw=0.8,
                       label=f"random / params at {headline} evals")
        first = summary[summary["method"] == "random architecture"][f"{column}_mean"]
        if len(first):
            ax.text(0.99, 0.02, f"random architecture (no search): {first.iloc[0]:.1f}, off the axis",
                    transform=ax.transAxes, ha="right", va="bottom", fontsize=8)
        if metric == "pgd@1":
            ax.axhline(90, color="C3", lw=0.8, linestyle="--", label="90th percentile (required, PGD@1)")
        ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(f"{LABELS[metric]} percentile among 6,466 (mean ± sem)")
        ax.set_title(f"{LABELS[metric]} accuracy percentile of the found architecture")
        ax.grid(alpha=0.3, which="both")
    if x == "budget":
        budgets = sorted(summary["budget"].unique())
        axes[0].set_xticks(budgets, [str(k) for k in budgets])
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=5, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.16, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ---- markdown ------------------------------------------------------------------------------------
def pm(summary: pd.DataFrame, column: str, scale: float = 1.0, digits: int = 1) -> pd.Series:
    """``mean ± sd`` strings of a summary column."""
    return [f"{m * scale:.{digits}f} ± {s * scale:.{digits}f}"
            for m, s in zip(summary[f"{column}_mean"], summary[f"{column}_sd"].fillna(0.0))]


def headline_table(summary: pd.DataFrame, budget: int) -> pd.DataFrame:
    """Per method at ``budget``: accuracies (%) and percentiles, mean ± sd over seeds, and cost."""
    at = summary[summary["budget"] == budget]
    table = pd.DataFrame({"method": at["method"], "evals": at["evaluations_mean"].round().astype(int)})
    for metric in METRICS:
        table[f"{LABELS[metric]} acc %"] = pm(at, metric, 100.0, 2)
        table[f"{LABELS[metric]} pct"] = pm(at, f"{metric}_percentile")
    table["edgegpu ms"] = pm(at, "edgegpu_ms", digits=2)
    table["est. compute s"] = [f"{v:.1f}" for v in at["cost_s_mean"]]
    table["lookup wall s"] = [f"{v:.2f}" for v in at["overhead_s_mean"]]
    return table


def budget_table(summary: pd.DataFrame) -> pd.DataFrame:
    """Per method and budget: mean PGD@1 / FGSM@8 percentile, and the estimated compute at the largest budget."""
    budgets = sorted(summary["budget"].unique())
    rows = []
    for method, part in summary.groupby("method", sort=False):
        part = part.set_index("budget")
        row = {"method": method}
        for k in budgets:
            row[f"{k} evals"] = f"{part.at[k, 'pgd@1_percentile_mean']:.1f} / {part.at[k, 'fgsm@8_percentile_mean']:.1f}"
        row[f"est. compute s at {budgets[-1]}"] = f"{part.at[budgets[-1], 'cost_s_mean']:.1f}"
        rows.append(row)
    return pd.DataFrame(rows)


def requirement_lines(summary: pd.DataFrame, compare: pd.DataFrame, reference: pd.DataFrame, budget: int) -> list[str]:
    """The issue's checks, computed, one verdict per line ("random search" without a proxy is the
    random architecture: the first of its draws)."""
    at = summary[summary["budget"] == budget].set_index("method")
    lines = ["Random search without a proxy picks one of its draws, so it is the `random architecture` row; the "
             "`params` baseline is random search + params. Means over seeds:", ""]
    for method in GUIDED:
        row = compare.set_index("method").loc[method]
        verdict = "yes" if row["beats both on both"] else "no"
        lines.append(f"- {method} beats the random architecture and random search + params at {budget} evaluations on "
                     f"both PGD@1 and FGSM@8 percentile (means): **{verdict}** (PGD@1 {row['PGD@1 pct']:.1f}, "
                     f"FGSM@8 {row['FGSM@8 pct']:.1f}; vs params {row['PGD@1 vs params']} / {row['FGSM@8 vs params']}).")
    for method in ("random / predictor", "warmup-move / predictor", "evolution / predictor", "nsga2 / predictor+edgegpu"):
        value = at.at[method, "pgd@1_percentile_mean"]
        sem = at.at[method, "pgd@1_percentile_sem"]
        lines.append(f"- {method} reaches the 90th PGD@1 percentile on average at {budget} evaluations: "
                     f"**{'yes' if value >= 90 else 'no'}** ({value:.1f} ± {sem:.1f} sem).")
    params = at.loc["random / params"]
    simulated = reference.set_index(["sampler", "objective"])
    issue = simulated.loc[(ISSUE_SAMPLER, "params")]
    ours = simulated.loc[(SEARCH_SAMPLER, "params")]
    lines.append(f"- Random search + params reproduces the reference point (88th PGD@1 / 94th FGSM@8): "
                 f"{params['pgd@1_percentile_mean']:.1f} ± {params['pgd@1_percentile_sem']:.1f} / "
                 f"{params['fgsm@8_percentile_mean']:.1f} ± {params['fgsm@8_percentile_sem']:.1f} (mean ± sem, "
                 f"{int(params['seeds'])} seeds). Simulated with {int(issue['trials'])} trials: "
                 f"{issue['PGD@1 pct']:.1f} / {issue['FGSM@8 pct']:.1f} with the issue's sampler (numpy, uniform over "
                 f"the 6,466), {ours['PGD@1 pct']:.1f} / {ours['FGSM@8 pct']:.1f} with RandomSearch's "
                 "(`Space.sample`).")
    return lines


def why_lines(summary: pd.DataFrame, compare: pd.DataFrame, reference: pd.DataFrame, correlations: pd.DataFrame,
              budget: int) -> list[str]:
    """Why the checks come out as they do, from the measured numbers (verbs follow the numbers)."""
    at = summary[summary["budget"] == budget].set_index("method")
    simulated = reference.set_index(["sampler", "objective"])
    spear = correlations.set_index("objective")
    versus = compare.set_index("method").loc["random / predictor"]
    trials = int(reference["trials"].iloc[0])

    def both(method: str) -> str:
        return f"{at.at[method, 'pgd@1_percentile_mean']:.1f} / {at.at[method, 'fgsm@8_percentile_mean']:.1f}"

    def wins(method: str, base: str) -> list[bool]:
        return [at.at[method, f"{m}_percentile_mean"] > at.at[base, f"{m}_percentile_mean"] for m in ("pgd@1", "fgsm@8")]

    def beats(method: str, base: str) -> str:
        won = wins(method, base)
        verb = "beats" if all(won) else "does not beat"
        partly = f" (only on {'PGD@1' if won[0] else 'FGSM@8'})" if any(won) and not all(won) else ""
        return f"{method} {verb} {base}{partly}"

    def sim(sampler: str, objective: str) -> str:
        row = simulated.loc[(sampler, objective)]
        return f"{row['PGD@1 pct']:.1f} / {row['FGSM@8 pct']:.1f}"

    strategies = ("warmup-move", "evolution")
    per_strategy = "; ".join(
        f"{s}: " + ", ".join(f"{o} {both(f'{s} / {o}')}" for o in ("params", "croze", "predictor")) for s in strategies)
    same = "; ".join(beats(f"{s} / {o}", f"{s} / params") for s in strategies for o in ("croze", "predictor"))
    predictor = at.at["random / predictor", "pgd@1_percentile_mean"]
    local = [f"{s} / {o}" for s in strategies for o in ("params", "croze", "predictor")]
    lifted = all(all(wins(m, "random / params")) for m in local)
    return [
        f"- Same strategy, other objective (PGD@1 / FGSM@8 percentile at {budget} evaluations): {per_strategy}. "
        f"Under the same strategy: {same}. Random search + params: {both('random / params')}"
        + (", below every one of these: the local search around the best so far, not croze or the predictor, makes "
           "the gain over the params baseline." if lifted else "."),
        f"- {beats('random / croze', 'random / params')} ({both('random / croze')} vs {both('random / params')}). "
        f"Over all 6,466: Spearman croze-params {spear.at['croze', 'params']:.3f}; "
        f"with PGD@1 / FGSM@8 croze {spear.at['croze', 'PGD@1']:.3f} / {spear.at['croze', 'FGSM@8']:.3f}, params "
        f"{spear.at['params', 'PGD@1']:.3f} / {spear.at['params', 'FGSM@8']:.3f}; expected over {trials} simulated "
        f"random searches croze {sim(SEARCH_SAMPLER, 'croze')} vs params {sim(SEARCH_SAMPLER, 'params')}.",
        f"- Random search + predictor: {both('random / predictor')}, {'at or above' if predictor >= 90 else 'below'} the "
        f"90th PGD@1 percentile, and vs random search + params {versus['PGD@1 vs params']} / "
        f"{versus['FGSM@8 vs params']} over the seeds; expected over {trials} simulated random searches "
        f"{sim(SEARCH_SAMPLER, 'predictor')} vs params {sim(SEARCH_SAMPLER, 'params')}. The predictor's Spearman with "
        f"CIFAR-10 PGD@1 is {spear.at['predictor', 'PGD@1']:.3f} (params {spear.at['params', 'PGD@1']:.3f}), with "
        f"FGSM@8 {spear.at['predictor', 'FGSM@8']:.3f} (params {spear.at['params', 'FGSM@8']:.3f}); with warmup-move "
        f"it lands at {both('warmup-move / predictor')}.",
        f"- Sampling check: the random architecture lands at {both('random architecture')} over the seeds (expected "
        f"{sim(SEARCH_SAMPLER, FIRST_DRAW)} over {trials} simulated first draws of `Space.sample`, "
        f"{sim(ISSUE_SAMPLER, FIRST_DRAW)} with the issue's sampler).",
        "- Up to 50 evaluations warmup-move and evolution have evaluated only their random initial pool (50 distinct "
        "draws, drawn as random search draws them), so their curves equal random search's there.",
    ]


def markdown(command: str, meta: dict[str, Any], summary: pd.DataFrame, compare: pd.DataFrame,
             reference: pd.DataFrame, correlations: pd.DataFrame, runs: pd.DataFrame) -> str:
    """docs/results/search-nb201.md."""
    speed, headline = meta["proxy_seconds"], meta["headline"]
    seconds = ", ".join(f"{p} {s:.3f} s" for p, s in speed["seconds"].items())
    stalled = runs.groupby("method")["stalled"].sum()
    lines = [
        "# Search on NB201 / CIFAR-10: proxy- and predictor-guided, judged by the benchmark", "",
        f"Command: `{command}` ({meta['wall_s']:.0f} s on this machine, one torch thread).", "",
        f"{meta['seeds']} seeds (0..{meta['seeds'] - 1}) per method, budget {meta['budget']} distinct architectures; "
        f"the best-so-far architecture after {', '.join(map(str, meta['checkpoints']))} evaluations is read off "
        "prefixes of one run (strategies are deterministic; checked: " + "; ".join(meta["prefix_checks"]) + "). "
        "Every run goes through `robustnas.search.search` with a fresh store. Reported: the found "
        "architecture's CIFAR-10 benchmark accuracy and its mid-rank percentile among the 6,466 unique "
        "architectures (`run.benchmark_record`); for NSGA-II, the Pareto member with the best predictor value "
        "(as `result.json`'s `best_arch`).", "",
        "**Proxy values were read from stored runs, not computed during the search** (`TableProxies`): croze from "
        f"`{meta['croze_run']}` (all 6,466; embedded CIFAR-10 sample, batch 64, seed 0), synflow/params/flops "
        f"from NAS-Bench-Suite-Zero (6,144 representatives) completed by `{meta['missing_run']}` (the other 322). "
        f"Estimated compute = evaluations x per-architecture proxy seconds ({seconds}; the predictor's cost is "
        "the sum of its four proxies, graph features and HW-NAS-Bench latency are free) + the measured search "
        "overhead (wall time of the lookup run up to that evaluation). Proxy seconds: mean per architecture from "
        f"`docs/results/proxy-speed.json` (`{speed['command']}`, {speed['machine']['threads']} threads, "
        f"{speed['machine']['torch']}); they leave out the network build, about {speed['build_s_estimate']:.3f} s "
        "per architecture there (one-call-per-proxy baseline minus the sum of its proxies).", "",
        f"Predictor: random forest (100 trees, random_state 42) fitted on the CIFAR-100 ground truth of all 6,466 "
        f"representatives, target `{TARGET}` = pct-rank(clean) + pct-rank(PGD@1) on CIFAR-100; features the 54 "
        "NB201 graph features + croze, synflow, params, flops from the CIFAR-10 proxy table. No CIFAR-10 "
        f"accuracy is used (OOB R² {meta['predictor']['oob_score']:.3f}; for context, Spearman of its target with "
        f"the same transform of CIFAR-10 labels: {meta['predictor']['c10_target_spearman']:.3f}). Saved to "
        f"`{meta['predictor']['path']}` (not committed).", "",
        f"`study-graph`: the predictor `robustnas study --dataset cifar100 --features ours` saved "
        f"(`{meta['study_predictor']}`: random forest on the 54 graph features, fitted on 1,000 CIFAR-100 "
        f"architectures), objective = its predicted `{STUDY_TARGET.replace('+', '` + `')}` "
        f"(`--objective predictor:FILE:{STUDY_TARGET}`); no network is built, so its cost is the search "
        "overhead alone. A single attack target alone is a poor objective: the NB201 cells with the highest "
        "predicted or true PGD@1 accuracy have low clean accuracy.", "",
        f"## At {headline} evaluations (mean ± sd over seeds)", "",
        markdown_table(headline_table(summary, headline)), "",
        "`random architecture`: the first random draw of each seed, no proxy (cost 0). `lookup wall s`: the "
        "measured search overhead with table lookups (the runner, store and strategy).", "",
        "## Over budgets: mean PGD@1 / FGSM@8 percentile", "",
        markdown_table(budget_table(summary)), "",
        "![percentile vs evaluations](search-nb201.png)", "",
        "![percentile vs estimated compute](search-nb201-cost.png)", "",
        "## Requirements (issue 6 §3)", "",
        *requirement_lines(summary, compare, reference, headline), "",
        "Why:", "",
        *why_lines(summary, compare, reference, correlations, headline), "",
        f"Differences at {headline} evaluations (mean percentile difference ± its standard error, "
        "Welch; for two random-search methods the seeds evaluate the same architectures, so this is conservative):", "",
        markdown_table(compare[[c for c in compare.columns if not c.startswith("_")]], "{:.1f}"), "",
        f"Simulated random search ({int(reference['trials'].iloc[0])} trials, {headline} distinct "
        "architectures, table argmax with ties broken at random), mean percentiles:", "",
        markdown_table(reference.drop(columns="trials"), "{:.1f}"), "",
        "Spearman over all 6,466 representatives between each objective and the CIFAR-10 benchmark metrics, and params:", "",
        markdown_table(correlations, "{:.3f}"), "",
        "## Runs", "",
        f"- Stalled runs (the runner stops after 1,000 asks without a new architecture): "
        f"{int(stalled.sum())} of {len(runs)}" + (f" ({stalled[stalled > 0].to_dict()})" if stalled.any() else "") + ".",
        f"- -inf objective values: {int(runs['minus_inf_values'].sum())}; infeasible asks: "
        f"{int(runs['infeasible_asked'].sum())}.",
        f"- Runs that evaluated fewer than the budget: {int((runs['evaluations'] < meta['budget']).sum())}.",
    ]
    return "\n".join(lines) + "\n"


# ---- main ----------------------------------------------------------------------------------------
def objective_values(table: pd.DataFrame, predictor: Predictor, features: pd.DataFrame) -> dict[str, np.ndarray]:
    """The single objectives of all representatives (table order), for the simulation and correlations."""
    values = {name: TableProxies(table).frame[name].fillna(-np.inf).to_numpy() for name in ("params", "synflow", "croze")}
    values["predictor"] = predictor.predict(features)
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--budget", type=int, default=200)
    parser.add_argument("--croze-run", type=Path, default=Path("runs/c10-croze-all"))
    parser.add_argument("--missing-run", type=Path, default=Path("runs/c10-missing"))
    parser.add_argument("--predictor", type=Path, default=Path("runs/search-predictor.npz"))
    parser.add_argument(
        "--study-predictor", type=Path, default=RESULTS / "study" / "cifar100-ours" / "predictor-graph.npz",
        help="saved by robustnas study --dataset cifar100 --features ours --runs runs/study-c100",
    )
    parser.add_argument("--reference-trials", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    try:
        run(args)
    except RobustnasError as error:
        raise SystemExit(f"search_nb201: {error}") from None


def run(args: argparse.Namespace) -> None:
    """The benchmark: tables, predictor, searches, summaries, files."""
    torch.set_num_threads(1)
    started = time.perf_counter()
    bench = Benchmark()
    table = proxy_table(args.croze_run, args.missing_run, bench)
    features, target = predictor_data(table, bench)
    predictor = fit_predictor(features, target, args.predictor)
    speed = proxy_seconds(RESULTS / "proxy-speed.json")
    objective_of = objectives(table, args.predictor, args.study_predictor, bench)
    lookup = Lookup(bench)
    rows, runs = run_all(METHODS, objective_of, args.seeds, args.budget, speed["seconds"], lookup, print)
    prefix_checks = prefix_checked(objective_of, args.budget)
    pct = benchmark_percentiles(bench)
    values = objective_values(table, predictor, features)
    headline = min(HEADLINE_BUDGET, args.budget)
    reference = reference_check(values, pct, representatives()[1], args.reference_trials, headline)
    summary = summarize(pd.DataFrame(rows))
    compare = comparisons(summary, headline)
    correlations = proxy_correlations(values, pct)
    command = f"python benchmarks/search_nb201.py --seeds {args.seeds} --budget {args.budget}"
    meta = {
        "command": command, "seeds": args.seeds, "budget": args.budget, "headline": headline,
        "checkpoints": sorted({k for k in CHECKPOINTS if k <= args.budget} | {args.budget}),
        "croze_run": str(args.croze_run), "missing_run": str(args.missing_run),
        "study_predictor": str(args.study_predictor.resolve().relative_to(ROOT)),
        "proxy_seconds": speed, "prefix_checks": prefix_checks,
        "predictor": {"path": str(args.predictor), "target": TARGET, "features": predictor.features,
                      "oob_score": predictor.oob_score_, "c10_target_spearman": c10_target_spearman(target, bench)},
        "wall_s": time.perf_counter() - started,
    }
    write_outputs(args.out, meta, rows, runs, summary, compare, reference, correlations)


def prefix_checked(objective_of: dict[str, Objective], budget: int) -> list[str]:
    """Rerun seed 0 of the ``PREFIX_CHECK`` methods with budget ``budget // 2`` and assert the prefix."""
    short = budget // 2
    notes = []
    for method in (m for m in METHODS if m.name in PREFIX_CHECK):
        objective = objective_of[method.objective]
        notes.append(check_prefix(method, objective, run_search(method, objective, 0, budget), short))
    return notes


def c10_target_spearman(target: pd.Series, bench: Benchmark) -> float:
    """Spearman of the CIFAR-100 target with the same transform of CIFAR-10 labels (context only)."""
    indices, keys = representatives()
    c10 = bench.table("cifar10").reindex(indices).set_axis(keys)
    return float(spearmanr(target, c10["clean"].rank(pct=True) + c10["pgd@1.0"].rank(pct=True)).statistic)


def write_outputs(out: Path, meta: dict[str, Any], rows: list[dict], runs: list[dict], summary: pd.DataFrame,
                  compare: pd.DataFrame, reference: pd.DataFrame, correlations: pd.DataFrame) -> None:
    """search-nb201.json, .md, .png and -cost.png under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    document = {**meta, "runs": runs, "checkpoints_per_seed": rows,
                "summary": summary.to_dict(orient="records"),
                "comparisons": compare.rename(columns=lambda c: c.lstrip("_")).to_dict(orient="records"),
                "reference_check": reference.to_dict(orient="records"),
                "objective_spearman": correlations.to_dict(orient="records")}
    (out / "search-nb201.json").write_text(json.dumps(document, indent=1, default=_json) + "\n")
    headline = meta["headline"]
    plot(summary, METHODS, "budget", out / "search-nb201.png", "proxy evaluations (distinct architectures)", headline)
    plot(summary, METHODS, "cost_s", out / "search-nb201-cost.png", "estimated compute seconds (CPU, 2 threads)", headline)
    text = markdown(meta["command"], meta, summary, compare, reference, correlations, pd.DataFrame(runs))
    (out / "search-nb201.md").write_text(text)
    print(text)


def _json(value: Any) -> Any:
    """numpy scalars as Python numbers."""
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


if __name__ == "__main__":
    main()
