"""The robustness-prediction study: seed 003's tables and CRoZe's correlation table, then beyond.

``run_study(dataset, source, runs, out)`` writes REPORT_DIR/report.md + report.html, PNG figures,
``r2.csv``, ``correlations.csv`` and the saved predictor. Protocol (spec
zero-cost-proxies-and-rf-study.md §4): one row per NB201 isomorphism class (its representative's
values), raw proxy values as features (no scaling; the suite's -1e8 sentinels kept), accuracies in
[0, 1] from the robustness dataset (Jung et al. 2023) as targets, one 80/20 split (random_state
42) shared by every target, the paper's random forest, test R² (mean over outputs for the
multi-objective fits), attacks at eps 1/255.

Feature sources: ``suite`` (NAS-Bench-Suite-Zero's recorded values), ``ours`` (robustnas scoring
runs, reused as stored: nothing is recomputed) and ``both`` (their union, suite columns prefixed
``suite_``, on the architectures present in both).
"""
from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from robustnas.bench import Benchmark
from robustnas.errors import RobustnasError
from robustnas.predict import Predictor, split
from robustnas.report import _figures as figures
from robustnas.report._document import Document
from robustnas.report._stats import (
    CROZE_GROUPS,
    correlation_matrix,
    correlations,
    greedy_subset,
    harmonic_robustness,
    learning_curve,
    training_sizes,
)
from robustnas.spaces import INPUT_SIZE, NUM_CLASSES
from robustnas.spaces.nb201 import GRAPH_FEATURES, NB201Arch, graph_features

SOURCES = ("suite", "ours", "both")
DATASETS = ("cifar10", "cifar100", "ImageNet16-120")
ATTACKS = ("fgsm", "pgd", "apgd-ce", "square")
STUDY_EPS = 1.0
SUITE_PREFIX = "suite_"
MIN_ARCHS = 100  # fewer rows make an 80/20 split and a 100-tree forest meaningless
UNDEFINED = -1e8  # NAS-Bench-Suite-Zero's value for an undefined proxy (spec §1.1), kept as a feature
NB201_FEATURES = 64  # channels into the NB201 classifier (C=16, x4 after two reductions)
SPREAD_SPLITS = 5  # other 80/20 splits (random_state 0..4) behind the mean +- sd next to the paper's split
CURVE_REPEATS = 3  # random training subsets per learning-curve size
MIN_COVERAGE = 0.5  # a proxy computed for fewer of the rows is left out rather than shrinking the rows

# Seed 003 (spec §5), test R² at eps 1/255. Table 1: all proxies as features; the multi-objective
# entries (clean + attack) are listed under the attack's name.
PAPER_TABLE1 = {
    "cifar10": {"single": {"clean": 0.97, "fgsm@1": 0.88, "pgd@1": 0.65, "apgd-ce@1": 0.66, "square@1": 0.75},
                "multi": {"fgsm@1": 0.92, "pgd@1": 0.81, "apgd-ce@1": 0.82, "square@1": 0.86}},
    "cifar100": {"single": {"clean": 0.96, "fgsm@1": 0.75, "pgd@1": 0.69, "apgd-ce@1": 0.73, "square@1": 0.68},
                 "multi": {"fgsm@1": 0.86, "pgd@1": 0.83, "apgd-ce@1": 0.85, "square@1": 0.82}},
    "ImageNet16-120": {"single": {"clean": 0.93, "fgsm@1": 0.65, "pgd@1": 0.84, "apgd-ce@1": 0.87, "square@1": 0.76},
                       "multi": {"fgsm@1": 0.78, "pgd@1": 0.88, "apgd-ce@1": 0.90, "square@1": 0.85}},
}  # fmt: skip
# Table 2: the most important feature alone ("jacob" in the paper is most likely jacov, spec §5).
PAPER_TABLE2 = {
    "cifar10": {"single": {"clean": 0.84, "fgsm@1": 0.41, "pgd@1": -0.31, "apgd-ce@1": 0.002, "square@1": 0.16},
                "multi": {"fgsm@1": 0.37, "pgd@1": 0.26, "apgd-ce@1": 0.42, "square@1": 0.54}},
    "cifar100": {"single": {"clean": 0.74, "fgsm@1": 0.12, "pgd@1": 0.09, "apgd-ce@1": 0.28, "square@1": -0.004},
                 "multi": {"fgsm@1": 0.42, "pgd@1": 0.42, "apgd-ce@1": 0.51, "square@1": 0.31}},
    "ImageNet16-120": {"single": {"clean": 0.61, "fgsm@1": -0.003, "pgd@1": 0.58, "apgd-ce@1": 0.64, "square@1": 0.44},
                       "multi": {"fgsm@1": 0.31, "pgd@1": 0.60, "apgd-ce@1": 0.63, "square@1": 0.52}},
}  # fmt: skip
# Table 3: multi-objective without the most important feature.
PAPER_TABLE3 = {"cifar10": {"fgsm@1": 0.92, "pgd@1": 0.79}, "cifar100": {"fgsm@1": 0.87, "pgd@1": 0.83},
                "ImageNet16-120": {"fgsm@1": 0.72, "pgd@1": 0.81}}
PAPER_TABLES = {"all": PAPER_TABLE1, "top1": PAPER_TABLE2}


@dataclass(frozen=True)
class Task:
    """One regression: ``target`` names it in r2.csv (e.g. ``pgd@1``), ``columns`` are fitted."""

    target: str
    objective: str  # "single" | "multi"
    columns: tuple[str, ...]


def tasks() -> list[Task]:
    """Seed 003's nine fits: clean and each attack alone, and clean + each attack together."""
    attacks = [(f"{attack}@{STUDY_EPS:g}", f"{attack}@{STUDY_EPS}") for attack in ATTACKS]
    return [Task("clean", "single", ("clean",)),
            *(Task(name, "single", (column,)) for name, column in attacks),
            *(Task(name, "multi", ("clean", column)) for name, column in attacks)]


def short_name(column: str) -> str:
    """A target column as r2.csv names it: ``pgd@1.0`` -> ``pgd@1``, ``fgsm@0.5`` stays."""
    name, at, value = column.partition("@")
    return f"{name}@{float(value):g}" if at and value.replace(".", "", 1).isdigit() else column


def without_undefined(features: pd.DataFrame) -> pd.DataFrame:
    """The -1e8 sentinels as NaN: correlations leave undefined values out (CRoZe drops NaN, §A.7)."""
    return features.mask(features == UNDEFINED)


# ---- inputs ------------------------------------------------------------------------------------
def suite_features(dataset: str, bench: Benchmark) -> pd.DataFrame:
    """NAS-Bench-Suite-Zero's 13 proxies, one row per isomorphism representative it covers."""
    if dataset not in bench.suite_zero_datasets():
        raise RobustnasError(
            f"NAS-Bench-Suite-Zero has no {dataset} values (only {', '.join(bench.suite_zero_datasets())}); "
            "use --features ours"
        )
    suite = bench.suite_zero(dataset).drop(columns="val_accuracy")
    return suite.loc[suite.index.isin(bench.representatives())]


def run_features(dataset: str, runs: list[Path], bench: Benchmark) -> pd.DataFrame:
    """Our proxies from stored NB201 scoring runs of ``dataset``, one row per representative.

    Several runs are joined (later runs fill architectures and proxies the earlier ones lack);
    a non-representative architecture stands for its class when the representative is missing.
    A proxy that is undefined for an architecture (NaN with a reason) becomes -1e8, as in the
    suite; one never computed for it stays NaN (see ``complete``).
    """
    from robustnas.scoring import read_settings, scores

    if not runs:
        raise RobustnasError("--features ours/both needs scoring runs: pass --runs RUN_DIR (made by robustnas score)")
    frames = []
    for run in runs:
        settings = read_settings(run)
        if settings.get("space") != "nb201" or settings.get("dataset") != dataset:
            raise RobustnasError(
                f"{run}: a {settings.get('space')}/{settings.get('dataset')} run; the study needs nb201/{dataset} runs"
            )
        frames.append(scores(run, undefined=UNDEFINED))
    combined = frames[0]
    for frame in frames[1:]:
        combined = combined.combine_first(frame)
    indices = [NB201Arch.parse(arch).index for arch in combined.index]
    combined.index = pd.Index([bench.representative(i) for i in indices], name="nb201_index")
    is_representative = np.array([i == r for i, r in zip(indices, combined.index)])
    combined = combined.iloc[np.argsort(~is_representative, kind="stable")]  # representatives first
    return combined[~combined.index.duplicated()].sort_index()


def proxy_settings(runs: list[Path]) -> list[dict]:
    """The distinct settings our proxy values were scored with, as a live search source states
    them (``{"scoring": value_config, "seed": seed}``): saved with the study's predictors."""
    from robustnas.scoring import ScoreSettings, read_settings

    found = []
    for run in runs:
        settings = read_settings(run)
        scored = ScoreSettings(**settings | {"proxies": tuple(settings["proxies"])})
        entry = {"scoring": scored.value_config(), "seed": scored.seed}
        if entry not in found:
            found.append(entry)
    return found


def load_features(dataset: str, source: str, runs: list[Path], bench: Benchmark) -> pd.DataFrame:
    if source not in SOURCES:
        raise RobustnasError(f"--features must be one of {', '.join(SOURCES)}, got {source!r}")
    if source == "suite":
        return suite_features(dataset, bench)
    ours = run_features(dataset, runs, bench)
    if source == "ours":
        return ours
    suite = suite_features(dataset, bench).add_prefix(SUITE_PREFIX)
    return ours.join(suite, how="inner")


def complete(features: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Features without gaps, and what was left out: proxies computed for fewer than half of the
    architectures are dropped, then architectures missing any remaining proxy."""
    notes = []
    coverage = features.notna().mean()
    sparse = coverage[coverage < MIN_COVERAGE]
    if len(sparse):
        notes.append("left out (computed for too few architectures): "
                     + ", ".join(f"{name} ({share:.0%})" for name, share in sparse.items()))
    features = features.drop(columns=sparse.index)
    gaps = features.isna().any(axis=1)
    if gaps.any():
        notes.append(f"{int(gaps.sum())} architectures left out: not every proxy was computed for them")
    undefined = int((features == UNDEFINED).sum().sum())
    if undefined:
        notes.append(f"{undefined} undefined proxy values (e.g. networks whose output ignores the input) "
                     "entered as -1e8, as in NAS-Bench-Suite-Zero")
    return features[~gaps], notes


# ---- analyses ----------------------------------------------------------------------------------
def fit_tasks(features: pd.DataFrame, targets: pd.DataFrame, dataset: str, models: tuple[str, ...]
              ) -> tuple[pd.DataFrame, dict[str, pd.DataFrame], pd.DataFrame]:
    """Tables 1-3 as r2.csv rows, the importances of the all-feature RF fits per attack (Figs. 2-4)
    and those of the multi-objective RF fits without their top feature, one column per attack
    (Fig. 5; 0 for the left-out feature). Importances come from the training split only."""
    rows, importances, without_top1 = [], {}, {}
    for task in tasks():
        x_train, x_test, y_train, y_test = split(features, targets[list(task.columns)])
        for model in models:
            fitted = Predictor(model).fit(x_train, y_train)
            ranking = fitted.feature_importances_.sort_values(ascending=False)
            top = str(ranking.index[0])
            rows.append(_r2_row(dataset, task, "all", model, fitted.score(x_test, y_test), top))
            if model != "rf":
                continue
            importances.setdefault(task.target, {})[task.objective] = ranking
            alone = Predictor(model).fit(x_train[[top]], y_train)
            rows.append(_r2_row(dataset, task, "top1", model, alone.score(x_test[[top]], y_test), top))
            if task.objective == "multi" and features.shape[1] > 1:
                rest = [c for c in features.columns if c != top]
                without = Predictor(model).fit(x_train[rest], y_train)
                rows.append(_r2_row(dataset, task, "without_top1", model, without.score(x_test[rest], y_test), top))
                without_top1[f"clean + {task.target} without {top}"] = without.feature_importances_
    clean = importances.pop("clean")["single"]
    per_attack = {target: pd.DataFrame({"multi (clean + attack)": parts["multi"], "clean": clean,
                                        target: parts["single"]}).fillna(0.0)
                  for target, parts in importances.items()}
    fig5 = pd.DataFrame(without_top1, index=features.columns).fillna(0.0)
    return pd.DataFrame(rows), per_attack, fig5


def _r2_row(dataset: str, task: Task, features: str, model: str, r2: float, top: str) -> dict:
    return {"dataset": dataset, "target": task.target, "objective": task.objective, "features": features,
            "model": model, "r2": float(r2), "top_feature": top}


def paper_value(dataset: str, target: str, objective: str, features: str) -> float:
    """Seed 003's R² for this cell (NaN where the paper has none)."""
    if features == "without_top1":
        return PAPER_TABLE3.get(dataset, {}).get(target, np.nan) if objective == "multi" else np.nan
    return PAPER_TABLES.get(features, {}).get(dataset, {}).get(objective, {}).get(target, np.nan)


def croze_table(features: pd.DataFrame, targets: pd.DataFrame) -> pd.DataFrame:
    """Spearman of every proxy with CRoZe's targets (crose-and-arnas.md §A.7): clean, FGSM 4 and 8
    (/255), PGD at 1/255 (at 8/255 standard-trained NB201 nets are at ~0 % for all archs), HRS with
    FGSM 8 and 4, and (CIFAR) the corruption groups as CRoZe's code forms them: Spearman per
    corruption and severity, averaged over severities, then over the group's corruptions."""
    columns = {"clean": targets["clean"], "fgsm@8": targets["fgsm@8.0"], "fgsm@4": targets["fgsm@4.0"],
               "pgd@1": targets["pgd@1.0"],
               "hrs fgsm@8": harmonic_robustness(targets["clean"], targets["fgsm@8.0"]),
               "hrs fgsm@4": harmonic_robustness(targets["clean"], targets["fgsm@4.0"])}
    table = correlation_matrix(correlations(features, pd.DataFrame(columns)), "spearman")
    corrupted = [c for c in targets.columns if any(c.startswith(f"{name}@") for g in CROZE_GROUPS.values() for name in g)]
    if corrupted:
        rho = correlation_matrix(correlations(features, targets[corrupted]), "spearman")
        for group, members in CROZE_GROUPS.items():
            per_corruption = [rho[[c for c in corrupted if c.startswith(f"{m}@")]].mean(axis=1) for m in members]
            table[group] = pd.concat(per_corruption, axis=1).mean(axis=1)
    return table


def learning_curves(features: pd.DataFrame, targets: pd.DataFrame, label: str = "") -> pd.DataFrame:
    """Test R² of the RF vs the number of training architectures for clean, PGD and clean + PGD:
    mean and sd over ``CURVE_REPEATS`` random subsets of the training split per size, the whole
    training split last (so that point is Table 1's fit); the test split stays fixed. ``label`` is
    appended to the series names (to tell feature sets apart in one plot)."""
    curves = []
    for task in (t for t in tasks() if t.target in ("clean", "pgd@1")):
        x_train, x_test, y_train, y_test = split(features, targets[list(task.columns)])

        def fit_score(n: int, seed: int) -> float:
            rows = np.sort(np.random.default_rng(seed).permutation(len(x_train))[:n])
            return Predictor("rf").fit(x_train.iloc[rows], y_train.iloc[rows]).score(x_test, y_test)

        curve = learning_curve(fit_score, training_sizes(len(x_train)), repeats=CURVE_REPEATS)
        curve["series"] = " + ".join(short_name(c) for c in task.columns) + label
        curves.append(curve)
    return pd.concat(curves, ignore_index=True)


def graph_frame(index: pd.Index) -> pd.DataFrame:
    """The cell-graph features (``robustnas.spaces.nb201.graph_features``) of NB201 indices."""
    rows = [graph_features(NB201Arch.from_index(int(i))) for i in index]
    return pd.DataFrame(rows, index=index, columns=list(GRAPH_FEATURES))


def graph_fits(features: pd.DataFrame, targets: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """r2.csv rows of the nine fits on the cell-graph features alone (``graph``) and on the proxies
    plus the graph features (``all+graph``); random forest, the shared split."""
    graph = graph_frame(features.index)
    rows = []
    for task in tasks():
        for name, x in (("graph", graph), ("all+graph", features.join(graph))):
            x_train, x_test, y_train, y_test = split(x, targets[list(task.columns)])
            fitted = Predictor("rf").fit(x_train, y_train)
            top = str(fitted.feature_importances_.idxmax())
            rows.append(_r2_row(dataset, task, name, "rf", fitted.score(x_test, y_test), top))
    return pd.DataFrame(rows)


def proxy_seconds() -> dict[str, float]:
    """Mean seconds per proxy alone (NB201, CIFAR-10, batch 64, CPU) from the proxy speed benchmark."""
    text = resources.files("robustnas").joinpath("_embedded/proxy_seconds.json").read_text(encoding="utf-8")
    return json.loads(text)["seconds"]


def cheapest_subset(features: pd.DataFrame, targets: pd.DataFrame, target: str = "pgd@1.0") -> pd.DataFrame:
    """Greedy forward selection of the fewest proxies reaching 95 % of the all-proxy R² for
    ``target`` (RF), chosen on a validation split of the training architectures (80/20 of them,
    random_state 42) so the test split stays unseen; then each step's subset refitted on the whole
    training split and scored on the test split (``test r2``; attrs ``full_test`` for all proxies),
    with each proxy's stand-alone seconds and the running total."""
    x_train, x_test, y_train, y_test = split(features, targets[target])
    x_fit, x_valid, y_fit, y_valid = split(x_train, y_train)

    def validation_score(columns: list[str]) -> float:
        return Predictor("rf").fit(x_fit[columns], y_fit).score(x_valid[columns], y_valid)

    def test_score(columns: list[str]) -> float:
        return Predictor("rf").fit(x_train[columns], y_train).score(x_test[columns], y_test)

    chosen = greedy_subset(validation_score, list(features.columns))
    steps = chosen.rename(columns={"score": "validation r2"})
    steps.attrs = dict(chosen.attrs)
    steps["test r2"] = [test_score(list(steps["feature"].iloc[: k + 1])) for k in range(len(steps))]
    steps.attrs["full_test"] = test_score(list(features.columns))
    seconds = proxy_seconds()
    steps["seconds"] = [seconds.get(f.removeprefix(SUITE_PREFIX), np.nan) for f in steps["feature"]]
    steps["total seconds"] = steps["seconds"].cumsum()
    return steps


def _cost_caveat(dataset: str, chosen: list[str]) -> str:
    """The speed benchmark ran on CIFAR-10; say what differs here: the image size, and when jacob_fro is
    among the ``chosen`` proxies, its cost (min(C, 64) backwards on NB201); empty when nothing does."""
    differences = []
    if INPUT_SIZE[dataset] != INPUT_SIZE["cifar10"]:
        differences.append(f"the images are {INPUT_SIZE[dataset]} px")
    backwards = min(NUM_CLASSES[dataset], NB201_FEATURES)
    if backwards != NUM_CLASSES["cifar10"] and "jacob_fro" in (name.removeprefix(SUITE_PREFIX) for name in chosen):
        differences.append(f"jacob_fro backpropagates {backwards} vectors instead of 10")
    if not differences:
        return ""
    return (f", measured on CIFAR-10 ({INPUT_SIZE['cifar10']} px, 10 classes): here "
            + " and ".join(differences))


def scoring_commands(runs: list[Path]) -> list[str]:
    """How each feature run was made: its `robustnas score` command rebuilt from run.json, so a
    report names how its proxy values were computed, not only the directory they were read from."""
    from robustnas.scoring import read_settings, scores

    lines = []
    for run in runs:
        settings = read_settings(run)
        stored = set(scores(run).index)
        archs = _archs_spec(stored, settings["seed"])
        data = f" --data {settings['data']}" if settings.get("data") else ""
        device = f" --device {settings['device']}" if settings.get("device", "cpu") != "cpu" else ""
        lines.append(f"`{run}` ({len(stored)} architectures): `robustnas score --space {settings['space']} "
                     f"--dataset {settings['dataset']}{data} --proxies {','.join(settings['proxies'])} "
                     f"--archs {archs} --batch-size {settings['batch_size']} --seed {settings['seed']}{device} "
                     f"--out {run}`")
    return lines


def _archs_spec(stored: set[str], seed: int) -> str:
    """``unique`` or ``sample:N`` when the stored NB201 architectures are exactly that selection, else FILE."""
    from robustnas.scoring import select_archs

    for spec in ("unique", f"sample:{len(stored)}"):
        if stored == set(select_archs("nb201", spec, seed)):
            return spec
    return "FILE"


# ---- the report --------------------------------------------------------------------------------
def run_study(dataset: str, source: str, runs: list[Path], out: Path, command: str,
              bench: Benchmark | None = None) -> Path:
    """Everything above for one dataset; returns the report's Markdown path.

    The report is built in a hidden folder beside ``out`` and swapped in whole at the end, so a
    stopped study leaves the previous report as it was, and two studies never mix in one folder.
    """
    if dataset not in DATASETS:
        raise RobustnasError(f"--dataset must be one of {', '.join(DATASETS)}, got {dataset!r}")
    if source == "suite" and runs:
        raise RobustnasError("--features suite reads NAS-Bench-Suite-Zero only: drop --runs, or use --features ours/both")
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / "report.md").is_file())):
        raise RobustnasError(f"{out} holds files other than a study report; give a new or empty --out")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.with_name(f".{out.name}.{os.getpid()}.partial")
    try:
        markdown = _write_study(dataset, source, runs, staging, command, bench)
        _replace_folder(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out / markdown.name


def _replace_folder(new: Path, old: Path) -> None:
    """Put folder ``new`` where ``old`` is (two renames; ``old``'s files are removed after)."""
    retired = old.with_name(f".{old.name}.{os.getpid()}.old")
    if old.exists():
        os.replace(old, retired)
    os.replace(new, old)
    shutil.rmtree(retired, ignore_errors=True)


def _write_study(dataset: str, source: str, runs: list[Path], out: Path, command: str,
                 bench: Benchmark | None) -> Path:
    started = time.perf_counter()
    bench = bench or Benchmark()
    features, notes = complete(load_features(dataset, source, runs, bench))
    targets = bench.table(dataset)
    rows = features.index.intersection(targets.index)
    if len(rows) < MIN_ARCHS:
        raise RobustnasError(
            f"only {len(rows)} architectures have both features and {dataset} targets; the study needs "
            f">= {MIN_ARCHS} (score more with robustnas score --archs sample:N)"
        )
    features, targets = features.loc[rows], targets.loc[rows]
    out.mkdir(parents=True, exist_ok=True)
    doc = Document(f"Predicting robustness from zero-cost proxies: NB201 {dataset}, {source} features")
    doc.text(f"Reproduce: `{command}`")
    if source != "suite":
        doc.text("The proxy values were read from these scoring runs (FILE: a list of the architectures the run holds):")
        doc.bullets(scoring_commands(runs))
    doc.text(f"{len(rows)} NB201 isomorphism classes with features and targets; {features.shape[1]} features "
             f"({', '.join(features.columns)}); targets from the robustness dataset (Jung et al. 2023, "
             "standard-trained networks). Split 80/20 with random_state 42, shared by every fit.")
    if notes:
        doc.bullets(notes)

    accuracy_columns = ["clean", *(c for c in targets.columns if c.split("@")[0] in ATTACKS)]
    corr = correlations(without_undefined(features), targets[accuracy_columns].rename(columns=short_name))
    corr.insert(0, "dataset", dataset)
    corr[["dataset", "proxy", "target", "kendall", "spearman"]].to_csv(out / "correlations.csv", index=False)
    _correlation_section(doc, corr, out, dataset)

    r2, importances, fig5 = fit_tasks(features, targets, dataset, ("rf", "gb"))
    r2 = pd.concat([r2, graph_fits(features, targets, dataset)], ignore_index=True)
    r2.to_csv(out / "r2.csv", index=False)
    _r2_section(doc, r2, dataset)
    _importance_section(doc, importances, fig5, out, dataset)

    doc.heading("CRoZe's correlation table (Spearman)")
    doc.text("As CRoZe's corr.py (crose-and-arnas.md §A.7), with signed Kendall in correlations.csv: clean, FGSM at 8 "
             "and 4 (/255), PGD at 1/255, HRS = 2CR/(C+R) with FGSM 8 and 4, and for CIFAR the corruption "
             "groups weather {snow, frost, fog}, noise {gaussian, shot, impulse}, blur {defocus, glass, motion, "
             "zoom}, digital {contrast, brightness, jpeg} (Spearman per corruption and severity, averaged).")
    croze = croze_table(without_undefined(features), targets)
    croze.to_csv(out / "croze-table.csv")
    doc.table(croze.reset_index())

    _beyond_section(doc, features, targets, r2, out, dataset)
    predictor_targets = ["clean", *(f"{a}@{STUDY_EPS}" for a in ATTACKS)]
    fitted_on = {"space": "nb201", "dataset": dataset, "features": source, "study": command,
                 "proxy_settings": proxy_settings(runs) if source != "suite" else []}
    for name, x in (("predictor.npz", features), ("predictor-graph.npz", graph_frame(features.index))):
        predictor = Predictor("rf").fit(x, targets[predictor_targets])
        predictor.fitted_on = fitted_on
        predictor.save(out / name)
    doc.heading("Saved predictors")
    doc.text(f"Random forests fitted on all {len(rows)} architectures, targets {', '.join(predictor_targets)}; "
             "load one with `robustnas.predict.Predictor.load(path)` (no pickle) and call `.predict(frame)`:")
    doc.bullets(["`predictor.npz`: the proxies above as features (a frame with those columns);",
                 "`predictor-graph.npz`: the cell-graph features, no network needed: "
                 "`robustnas.report.graph_frame(pd.Index(nb201_indices))` builds its input."])
    doc.text(f"Study time: {time.perf_counter() - started:.0f} s.")
    markdown, _ = doc.write(out)
    return markdown


def _correlation_section(doc: Document, corr: pd.DataFrame, out: Path, dataset: str) -> None:
    doc.heading("Rank correlations with clean and adversarial accuracy")
    doc.text("Undefined proxy values are left out pair by pair (CRoZe drops them; the forests below keep "
             "them as -1e8). correlations.csv holds the signed Kendall tau-b and Spearman rho of every proxy "
             "with every target (targets named as in r2.csv, e.g. `pgd@1`, eps in 1/255).")
    for value, absolute, label in (("kendall", True, "|Kendall tau-b|"), ("spearman", False, "Spearman rho")):
        name = f"{value}-heatmap.png"
        figures.correlation_heatmap(correlation_matrix(corr, value), out / name,
                                    f"{label}: proxies vs accuracies, NB201 {dataset}", absolute=absolute)
        doc.figure(name, f"{label} of every proxy with clean accuracy and every attack at every epsilon "
                         "(seed 003 Fig. 1)")


def _r2_section(doc: Document, r2: pd.DataFrame, dataset: str) -> None:
    doc.heading("Random-forest test R² (seed 003 Tables 1-3)")
    table = r2[r2["model"] == "rf"].copy()
    table["paper"] = [paper_value(dataset, t, o, f) for t, o, f in zip(table["target"], table["objective"],
                                                                         table["features"])]
    table["ours - paper"] = table["r2"] - table["paper"]
    for features, caption in (("all", "Table 1: all features"), ("top1", "Table 2: the most important feature only"),
                              ("without_top1", "Table 3: multi-objective without the most important feature")):
        rows = table[table["features"] == features]
        if not rows.empty:
            doc.text(f"**{caption}.**")
            doc.table(rows[["target", "objective", "r2", "paper", "ours - paper", "top_feature"]])
    doc.text("r2.csv also holds gradient boosting (`model` gb) for Table 1 and, beyond the issue's feature "
             "sets, the forests on the cell-graph features (`features` graph and all+graph, below).")


def _importance_section(doc: Document, importances: dict[str, pd.DataFrame], fig5: pd.DataFrame, out: Path,
                        dataset: str) -> None:
    doc.heading("Feature importance (Gini / mean decrease in impurity)")
    for target, table in importances.items():
        name = f"importance-{target.replace('@', '-')}.png"
        figures.importance_bars(table, out / name, f"RF feature importance, NB201 {dataset}: clean + {target}")
        doc.figure(name, f"Importances of the all-feature forests for clean + {target}, clean, and {target} "
                         "(seed 003 Figs. 2-4)")
    if not fig5.empty:
        figures.importance_bars(fig5, out / "importance-without-top1.png",
                                f"RF feature importance without the top feature, NB201 {dataset}")
        doc.figure("importance-without-top1.png", "Importances of the multi-objective forests (clean + attack) "
                   "without their most important feature, the Table 3 fits (seed 003 Fig. 5)")


def _single_r2(features: pd.DataFrame, targets: pd.DataFrame, target: str, random_state: int = 42) -> float:
    """Test R² of the RF for one single-objective task on these features (the shared split by default)."""
    task = next(t for t in tasks() if t.target == target and t.objective == "single")
    x_train, x_test, y_train, y_test = split(features, targets[list(task.columns)], random_state=random_state)
    return Predictor("rf").fit(x_train, y_train).score(x_test, y_test)


def split_spread(features: pd.DataFrame, targets: pd.DataFrame, target: str) -> tuple[float, float]:
    """Mean and sd of the single-target RF test R² over ``SPREAD_SPLITS`` other splits (random_state 0..)."""
    scores = [_single_r2(features, targets, target, state) for state in range(SPREAD_SPLITS)]
    return float(np.mean(scores)), float(np.std(scores, ddof=1))


def graph_table(r2: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """The nine rf fits on the proxies, on the cell graph alone and on both, next to the paper
    (index target, objective in ``tasks()`` order; from r2.csv rows)."""
    rf = r2[r2["model"] == "rf"]
    table = rf.pivot_table(index=["target", "objective"], columns="features", values="r2", sort=False)
    table = table[["all", "graph", "all+graph"]].rename(columns={"all": "proxies"})
    table.insert(0, "paper", [paper_value(dataset, t, o, "all") for t, o in table.index])
    table["best - paper"] = table[["proxies", "graph", "all+graph"]].max(axis=1) - table["paper"]
    return table.loc[[(t.target, t.objective) for t in tasks()]]


def robust_verdict(best_minus_paper: pd.Series, what: str) -> str:
    """One sentence: on how many robust single targets (every target but clean) ``what`` beats the
    paper's R², with each difference, so the issue's "beat the paper" question is answered in words."""
    robust = best_minus_paper.drop(index="clean", errors="ignore").dropna()
    beaten = int((robust > 0).sum())
    differences = ", ".join(f"{target} {value:+.3f}" for target, value in robust.items())
    return f"**Verdict:** {what} beat the paper's robust single-target R² on {beaten} of {len(robust)} attacks ({differences})."


def _graph_section(doc: Document, r2: pd.DataFrame, out: Path, dataset: str) -> None:
    """The nine fits on the proxies, on the cell graph alone and on both, against the paper."""
    table = graph_table(r2, dataset)
    single = table.xs("single", level="objective")[["paper", "proxies", "graph", "all+graph"]]
    figures.r2_bars(single, out / "r2-graph.png", f"Proxies vs the cell graph: single-target test R², NB201 {dataset}")
    doc.text("**Beyond proxies: the cell graph.** The same forests on 54 zero-cost features of the cell graph "
             "itself (one-hot op per edge; per input-output path whether it is alive and its ops; alive paths, "
             "most 3x3 convolutions on one path, 3x3 convolutions over all paths, convolution-free paths: "
             "`robustnas.spaces.nb201.graph_features`, after GRAF, Kadlecova et al., ICML 2024), alone and with the "
             "proxies; r2.csv rows `graph` and `all+graph`:")
    doc.table(table.reset_index())
    doc.figure("r2-graph.png", "Single-target test R²: the paper's forest, our forest on the proxies, on the cell "
                               "graph, and on both")
    doc.text(robust_verdict(single[["graph", "all+graph"]].max(axis=1) - single["paper"],
                            "the cell-graph features (best of graph and all+graph)"))


def _beyond_section(doc: Document, features: pd.DataFrame, targets: pd.DataFrame, r2: pd.DataFrame,
                    out: Path, dataset: str) -> None:
    doc.heading("Beyond the papers")
    single = r2[(r2["features"] == "all") & (r2["objective"] == "single")].pivot(index="target", columns="model",
                                                                                 values="r2")
    compare = pd.DataFrame({"paper (rf)": [paper_value(dataset, t, "single", "all") for t in single.index],
                            "ours rf": single["rf"], "ours gb": single["gb"]}, index=single.index)
    compare["best - paper"] = compare[["ours rf", "ours gb"]].max(axis=1) - compare["paper (rf)"]
    spread = {t: split_spread(features, targets, t) for t in compare.index}
    compare[f"ours rf, {SPREAD_SPLITS} other splits"] = [f"{m:.3f} ± {sd:.3f}" for m, sd in spread.values()]
    suite_only = [c for c in features.columns if c.startswith(SUITE_PREFIX)]
    if suite_only and len(suite_only) < features.shape[1]:  # --features both: what do our proxies add?
        compare["suite only rf (same archs)"] = [_single_r2(features[suite_only], targets, t) for t in compare.index]
        compare["gain from ours"] = compare["ours rf"] - compare["suite only rf (same archs)"]
    compare = compare.loc[[t.target for t in tasks() if t.objective == "single"]]
    figures.r2_bars(compare.drop(columns=["best - paper", "gain from ours", f"ours rf, {SPREAD_SPLITS} other splits"],
                                 errors="ignore"), out / "r2-vs-paper.png",
                    f"Single-target test R², NB201 {dataset}")
    doc.text("**Single-target R² against the paper** (random forest and gradient boosting on the paper's split, "
             f"random_state 42; the forest's mean ± sd over {SPREAD_SPLITS} other 80/20 splits, random_state "
             f"0..{SPREAD_SPLITS - 1}, shows how far one split moves R²"
             + ("; also the forest on the suite's columns alone, same architectures and split, so the gain of our "
                "proxies is read without the effect of the number of architectures" if "gain from ours" in compare else "")
             + "):")
    doc.table(compare.reset_index())
    doc.figure("r2-vs-paper.png", "Single-target test R²: the paper's forest, ours, and gradient boosting")
    doc.text(robust_verdict(compare["best - paper"], "our proxies (best of rf and gb)"))
    _graph_section(doc, r2, out, dataset)

    curves = pd.concat([learning_curves(features, targets),
                        learning_curves(graph_frame(features.index), targets, label=", graph")], ignore_index=True)
    curves.to_csv(out / "learning-curves.csv", index=False)
    figures.learning_curves(curves, out / "learning-curves.png",
                            f"Test R² vs training architectures, NB201 {dataset}")
    doc.text("**How many trained networks does a predictor need?** Test R² (fixed test split) of forests "
             f"trained on random subsets of the training architectures (mean ± sd over {CURVE_REPEATS} subsets "
             "per size; the last size is the whole training split, Table 1's fit), on the proxies and "
             "(\", graph\") on the cell-graph features:")
    curves["mean ± sd"] = [f"{m:.3f} ± {sd:.3f}" for m, sd in zip(curves["score"], curves["sd"])]
    doc.table(curves.pivot(index="n", columns="series", values="mean ± sd").reset_index())
    doc.figure("learning-curves.png", "Learning curves: test R² vs number of training architectures")

    steps = cheapest_subset(features, targets)
    steps.to_csv(out / "proxy-subset.csv", index=False)
    reached = steps["test r2"].iloc[-1] / steps.attrs["full_test"]
    doc.text(f"**Fewest proxies for PGD (1/255):** greedy forward selection on a validation split of the training "
             f"architectures until the forest reaches 95 % of the all-proxy validation R² "
             f"({steps.attrs['full_score']:.3f}); the test split is not used to choose. On it the chosen "
             f"{len(steps)} reach test R² {steps['test r2'].iloc[-1]:.3f}, {reached:.0%} of the all-proxy "
             f"{steps.attrs['full_test']:.3f}. Seconds = each proxy alone per NB201 network on CPU "
             "(docs/results/proxy-speed.md; computed together they share passes and cost less)"
             + _cost_caveat(dataset, list(steps["feature"])) + ".")
    doc.table(steps)
