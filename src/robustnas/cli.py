"""The ``robustnas`` command line: a thin layer over the Python API.

Each ``cmd_*`` translates its arguments into calls of the API (``robustnas.scoring``,
``robustnas.search``, ``robustnas.train``, ``robustnas.evaluation``, ...), which check the values and
hold every decision, and prints the results; ``_add_*`` builds the parser of one command.
Heavy modules (torch, pandas) are imported inside the commands so that ``--help`` answers at once.
Every user error is printed on one line and exits with status 2.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from typing import TYPE_CHECKING, Callable, Sequence

if TYPE_CHECKING:
    from robustnas.search._base import Strategy

DATASETS = ("cifar10", "cifar100", "ImageNet16-120")
# train and evaluate also take the transfer datasets of ARNAS (crose-and-arnas.md §B.6)
TRAIN_DATASETS = (*DATASETS, "svhn", "tiny-imagenet-200")


def _print_json(obj: object) -> None:
    print(json.dumps(obj, indent=None, sort_keys=False))


# ---- arch --------------------------------------------------------------------------------------
def cmd_arch_show(args: argparse.Namespace) -> None:
    from robustnas.spaces import describe

    info = describe(args.space, args.arch, args.dataset)
    if args.json:
        _print_json(info)
        return
    for key, value in info.items():
        print(f"{key:>15}: {value}")


def cmd_arch_convert(args: argparse.Namespace) -> None:
    from robustnas.spaces import convert

    print(convert(args.space, args.arch, args.to))


def cmd_arch_sample(args: argparse.Namespace) -> None:
    from robustnas.spaces import sample

    for arch in sample(args.space, args.n, args.seed, unique=args.unique):
        print(arch)


# ---- data --------------------------------------------------------------------------------------
def cmd_data_info(args: argparse.Namespace) -> None:
    from robustnas.data import describe

    info = describe(args.path)
    if args.json:
        _print_json(info)
        return
    classes = info["classes"]
    shown = ", ".join(classes[:5]) + (", ..." if len(classes) > 5 else "")
    print(f"{'path':>8}: {info['path']}\n{'format':>8}: {info['format']}\n{'dataset':>8}: {info['dataset']}")
    print(f"{'classes':>8}: {len(classes)} ({shown})")
    for split, stats in info["splits"].items():
        per_class = stats["per_class"]
        shape = "x".join(str(d) for d in stats["image_shape"])
        print(f"{split:>8}: {stats['images']} images of {shape}, {min(per_class)}..{max(per_class)} per class")


# ---- bench -------------------------------------------------------------------------------------
def cmd_bench_query(args: argparse.Namespace) -> None:
    from robustnas.bench import Benchmark

    bench = Benchmark(args.data)
    value = bench.query(args.arch, args.dataset, args.metric, eps=args.eps, severity=args.severity)
    if args.json:
        _print_json({"value": value})
    else:
        print(value)


# ---- scoring runs ------------------------------------------------------------------------------
def cmd_score(args: argparse.Namespace) -> None:
    from pathlib import Path

    from robustnas.proxies import resolve
    from robustnas.scoring import ScoreSettings, run_scoring, select_archs, shard, summary_table

    settings = ScoreSettings(
        space=args.space,
        dataset=args.dataset,
        data=args.data,
        proxies=tuple(resolve(args.proxies)),
        batch_size=args.batch_size,
        seed=args.seed,
        device=args.device,
    )
    archs = shard(select_archs(args.space, args.archs, args.seed), args.shard)
    result = run_scoring(
        settings, archs, Path(args.out), workers=args.workers, engine=args.engine, address=args.ray_address
    )
    print(
        f"{result['archs']} architectures, {result['computed']} computed now "
        f"({result['archs'] - result['computed']} already stored) in {result['seconds']:.1f} s -> {args.out}"
    )
    print(summary_table(Path(args.out)).to_string(float_format=lambda v: f"{v:.6g}"))


def cmd_merge(args: argparse.Namespace) -> None:
    from pathlib import Path

    from robustnas.scoring import merge

    for run_dir, added, skipped in merge([Path(p) for p in args.runs], Path(args.out)):
        print(f"{run_dir}: {added} rows added, {skipped} already present")


def cmd_export(args: argparse.Namespace) -> None:
    from pathlib import Path

    from robustnas.scoring import export

    print(export(Path(args.run), Path(args.out)))


def cmd_study(args: argparse.Namespace) -> None:
    import shlex
    from pathlib import Path

    from robustnas.report._study import run_study

    runs = [Path(run) for run in args.runs or []]
    command = shlex.join(["robustnas", "study", "--dataset", args.dataset, "--features", args.features,
                          *(["--runs", *map(str, runs)] if runs else []), "--out", args.out])
    print(run_study(args.dataset, args.features, runs, Path(args.out), command))


# ---- training and evaluation -------------------------------------------------------------------
def cmd_train(args: argparse.Namespace) -> None:
    from robustnas.train import TrainConfig, default_milestones, run_training

    config = TrainConfig(
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, milestones=default_milestones(args.epochs),
        cutout=args.cutout, adversarial=None if args.adversarial == "none" else args.adversarial,
        amp=args.amp, seed=args.seed,
    )
    run = run_training(
        args.arch, config, args.out, space=args.space, dataset=args.dataset, data=args.data,
        holdout=args.holdout, limit=args.limit, device=args.device,
    )
    result, last = run.result, run.result.last
    print(
        f"{result.run_dir}: {len(result.log) - result.resumed_after} epochs trained now, {result.resumed_after} "
        f"before; {run.trained} training images; held-out {run.held_out} images: clean {last['val_clean_acc']:.4f}, "
        f"PGD-{config.eval_steps} {last['val_pgd_acc']:.4f} -> {result.final}"
    )


def cmd_evaluate(args: argparse.Namespace) -> None:
    from robustnas.evaluation import JSON_FILE, MARKDOWN_FILE, STORE_FILE, run_evaluation, summary_table

    result, out, computed = run_evaluation(
        args.checkpoint, args.suite, out=args.out, data=args.data, n=args.n, batch_size=args.batch_size,
        seed=args.seed, device=args.device, workers=args.workers, engine=args.engine, address=args.ray_address,
    )
    print(summary_table(result), end="")
    print(f"{computed} values computed now (the others read from the store) -> {out / JSON_FILE}, {out / MARKDOWN_FILE}, "
          f"{out / STORE_FILE}")


# ---- search -----------------------------------------------------------------------------------
def cmd_search(args: argparse.Namespace) -> None:
    from pathlib import Path

    from robustnas.search._base import parse_options
    from robustnas.search._run import SearchSettings, describe_result, plan, run

    settings = SearchSettings(
        space=args.space, dataset=args.dataset, strategy=args.strategy, objective=args.objective,
        budget=args.budget, seed=args.seed, data=args.data, batch_size=args.batch_size,
        proxy_seed=args.proxy_seed, max_latency_ms=args.max_latency, latency_device=args.latency_device,
        options=parse_options(args.strategy, args.strategy_option),
    )
    where = {"runs": args.scores, "storage": args.storage, "device": args.device, "workers": args.workers,
             "engine": args.engine, "address": args.ray_address}
    if args.dry_run:
        _print_plan(plan(settings, Path(args.out), **where), args.json)
        return
    result = run(settings, Path(args.out), **where)
    print(json.dumps(result, indent=2) if args.json else describe_result(result))


def _print_plan(planned: dict, as_json: bool) -> None:
    """--dry-run: the plan as one JSON object, or one ``key: value`` line per entry."""
    if as_json:
        print(json.dumps(planned, indent=2))
        return
    for key, value in planned.items():
        print(f"{key}: {json.dumps(value) if isinstance(value, dict) else value}")


# ---- demo --------------------------------------------------------------------------------------
def cmd_demo(args: argparse.Namespace) -> None:
    from pathlib import Path

    from robustnas._demo import run_demo

    run_demo(budget=args.budget, seed=args.seed, out=Path(args.out))


def _add_space(parser: argparse.ArgumentParser, default: str | None = "nb201", extra: str = "") -> None:
    """--space with its choices and help from the space registry."""
    from robustnas import spaces

    summaries = "; ".join(f"{name}: {summary}" for name, summary in spaces.list_spaces().items())
    parser.add_argument("--space", choices=spaces.names(), default=default, help=f"search space ({summaries}){extra}")


def _formats() -> tuple[str, ...]:
    """Every encoding some registered space writes (robustnas arch convert --to)."""
    from robustnas import spaces

    return tuple(dict.fromkeys(f for name in spaces.names() for f in spaces.get(name).formats))


class _Parser(argparse.ArgumentParser):
    """argparse's parser, except that ``epilog`` may be a function returning it, called only when the
    help is shown: help listing a registry (which imports torch) then costs the other commands nothing."""

    def format_help(self) -> str:
        if callable(self.epilog):
            self.epilog = self.epilog()
        return super().format_help()


# ---- options of several commands: each written once ----------------------------------------------
ARCH_HELP = (
    "NB201: op-index tuple '(0, 2, 3, 2, 3, 1)', NB201 string or index 0..15624; "
    "DARTS-style spaces: genotype string, JSON, JSON file or a published name such as DARTS_V2"
)
EMBEDDED = "the embedded CIFAR-10 sample"


def _dataset_option(parser: argparse.ArgumentParser, choices: Sequence[str] = DATASETS, note: str = "") -> None:
    """--dataset: a name among ``choices`` (default cifar10), with an optional ``note``."""
    parser.add_argument("--dataset", choices=choices, default="cifar10", help=f"{note} (default cifar10)".lstrip())


def _data_option(parser: argparse.ArgumentParser, use: str = "", default: str = EMBEDDED) -> None:
    """--data: the dataset's files (``use``: what they are for; ``default``: what is read without them)."""
    parser.add_argument("--data", help=f"dataset file or folder{use} (default: {default})")


def _batch_size_option(parser: argparse.ArgumentParser, default: int, what: str) -> None:
    """--batch-size: ``what`` a batch is, and its default."""
    parser.add_argument("--batch-size", type=int, default=default, help=f"{what} (default {default})")


def _seed_option(parser: argparse.ArgumentParser, seeds: str) -> None:
    """--seed (default 0; 0..2**32-1, checked by main): ``seeds`` says what it draws."""
    parser.add_argument("--seed", type=int, default=0, help=f"random seed of {seeds} (default 0)")


def _device_option(parser: argparse.ArgumentParser) -> None:
    """--device: cpu or cuda (checked before the command starts)."""
    from robustnas._device import DEVICES

    parser.add_argument("--device", default="cpu", choices=DEVICES, help="where the networks run (default cpu)")


def _engine_options(parser: argparse.ArgumentParser, what: str) -> None:
    """--workers, --engine and --ray-address: where the work over many items runs (robustnas.executors)."""
    parser.add_argument("--workers", type=int, default=1, help=f"processes computing {what} at once (default 1)")
    parser.add_argument(
        "--engine", default="local", choices=("local", "ray"),
        help="local: processes on this machine (default); ray: Ray tasks (pip install 'robustnas[ray]')",
    )
    parser.add_argument(
        "--ray-address", metavar="ADDR",
        help="the Ray cluster: HOST:PORT of its head or auto (default: $RAY_ADDRESS, else a Ray for this command)",
    )


def _run_dir_option(parser: argparse.ArgumentParser) -> None:
    """--out of the resumable commands (score, search, train)."""
    parser.add_argument("--out", required=True, help="run directory (created, or resumed when it holds a run)")


def _json_option(parser: argparse.ArgumentParser, shape: str = "one JSON object") -> None:
    """--json: print ``shape`` instead of text."""
    parser.add_argument("--json", action="store_true", help=f"print {shape}")


# ---- the commands ------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="robustnas",
        description="Find neural network architectures that are both accurate and robust.",
    )
    parser.add_argument("--version", action="version", version="robustnas 0.1.0")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in (_add_score, _add_merge, _add_export, _add_study, _add_demo, _add_search, _add_train, _add_evaluate,
                _add_arch, _add_data, _add_bench):
        add(commands)
    return parser


def _add_score(commands: argparse._SubParsersAction) -> None:
    score = commands.add_parser("score", help="compute zero-cost proxies for many architectures (resumable)")
    _add_space(score)
    _dataset_option(score)
    _data_option(score, use=" of the proxies' batch")
    score.add_argument("--proxies", default="all", help="all, or a comma-separated list of proxy names")
    score.add_argument(
        "--archs", default="unique",
        help="all | unique (NB201) | sample:N | FILE with one architecture per line (default unique)",
    )
    _batch_size_option(score, 64, "images in the proxies' batch")
    _seed_option(score, "the proxies' batch and initial weights, and of --archs sample:N")
    _run_dir_option(score)
    _engine_options(score, "architectures")
    score.add_argument("--shard", help="i/N: score only every N-th architecture starting at i")
    _device_option(score)
    score.set_defaults(func=cmd_score)


def _add_merge(commands: argparse._SubParsersAction) -> None:
    merge = commands.add_parser("merge", help="join the run directories of shards into one")
    merge.add_argument("runs", nargs="+", help="run directories of the shards")
    merge.add_argument("--out", required=True, help="merged run directory")
    merge.set_defaults(func=cmd_merge)


def _add_export(commands: argparse._SubParsersAction) -> None:
    export = commands.add_parser("export", help="write a run as a table: one row per architecture")
    export.add_argument("run", help="run directory")
    export.add_argument("--out", required=True, help="FILE.csv or FILE.parquet")
    export.set_defaults(func=cmd_export)


def _add_study(commands: argparse._SubParsersAction) -> None:
    study = commands.add_parser("study", help="report: how well proxies predict clean and robust accuracy (NB201)")
    _dataset_option(study)
    study.add_argument("--features", choices=("suite", "ours", "both"), default="suite",
                       help="suite: NAS-Bench-Suite-Zero's values; ours: scoring runs (--runs); both: their union")
    study.add_argument("--runs", nargs="+", help="NB201 scoring run directories of --dataset (robustnas score)")
    study.add_argument("--out", required=True, help="report directory (report.md, report.html, figures, CSVs)")
    study.set_defaults(func=cmd_study)


def _add_demo(commands: argparse._SubParsersAction) -> None:
    demo = commands.add_parser(
        "demo", help="CRoZe-guided search over NB201 on the embedded CIFAR-10 sample",
        description="robustnas search --space nb201 --dataset cifar10 --strategy warmup-move --objective croze "
        "on the CIFAR-10 sample inside the package; prints the found architecture with its benchmark accuracies.",
    )
    demo.add_argument("--budget", type=int, default=100, help="architectures to evaluate (default 100)")
    _seed_option(demo, "the search")
    demo.add_argument("--out", default="robustnas-demo", help="run directory (default ./robustnas-demo; resumes)")
    demo.set_defaults(func=cmd_demo)


def _add_search(commands: argparse._SubParsersAction) -> None:
    from robustnas.search import _base as base

    search = commands.add_parser(
        "search", help="proxy- or predictor-guided architecture search (resumable)",
        description="Search a space for the architecture that maximises an objective. OUT gets result.json, "
        "trajectory.csv/.png and store.sqlite (every evaluation, as it is made); the same command resumes. "
        "--strategy mgda searches by gradient instead (ARNAS): it trains the space's supernet and writes "
        "steps.csv (losses and objective weights per step), alphas.csv, alphas_<cell>.png, best_genotype.json "
        "and checkpoint.pt every epoch, then result.json; the same command resumes from the last epoch.",
    )
    _add_space(search)
    _dataset_option(search)
    _data_option(search, use=" of the proxies' batch (mgda: the training images, halved for weights and alphas)")
    search.add_argument(
        "--strategy", choices=base.names(), default="warmup-move",
        help="; ".join(f"{name}: {summary}" for name, summary in base.list_strategies().items())
        + " (default warmup-move)",
    )
    search.add_argument(
        "--strategy-option", action="append", default=[], metavar="KEY=VALUE",
        help="an option of --strategy, repeatable (search.json keeps those that differ from the default): "
        + "; ".join(f"{name}: {_options_help(base.get(name))}" for name in base.names()),
    )
    search.add_argument(
        "--objective",
        help="a proxy (croze, synflow, ...); a weighted product W*P+W*P (log-linear); predictor:FILE.npz[:TARGET] "
        "(TARGET may sum outputs: clean+fgsm@1.0); "
        "bench:COLUMN (NB201 oracle, e.g. bench:pgd@1); latency:DEVICE (HW-NAS-Bench); "
        f"comma-separated for several objectives ({base.multi_objective_names()}) (default croze; "
        "mgda's objectives are losses: --strategy-option objectives=...)",
    )
    search.add_argument("--budget", type=int, help="architectures to evaluate (default 100; not for mgda: epochs=N)")
    _seed_option(search, "the strategy (mgda: also the supernet's initialisation and the batches)")
    search.add_argument(
        "--batch-size", type=int, help="images in the proxies' batch (default 64); mgda: per step (default 32)"
    )
    search.add_argument(
        "--proxy-seed", type=int, default=0,
        help="network initialisation and batch of the proxies, as robustnas score --seed (default 0)",
    )
    search.add_argument("--scores", nargs="*", default=[], help="scoring run directories to read proxies from")
    search.add_argument("--max-latency", type=float, help="HW-NAS-Bench latency limit in ms (NB201)")
    search.add_argument("--latency-device", default="edgegpu", help="HW-NAS-Bench device (default edgegpu)")
    search.add_argument(
        "--storage", help="Optuna storage URL where nsga2 copies its study for sharing (default sqlite:///OUT/optuna.sqlite)"
    )
    search.add_argument(
        "--dry-run", action="store_true",
        help="compute nothing: print the resolved settings (mgda: with the supernet's parameter counts and steps)",
    )
    _json_option(search, "the result (or the --dry-run plan) as one JSON object")
    _device_option(search)
    _engine_options(search, "the proxies of an ask's new architectures")
    _run_dir_option(search)
    search.set_defaults(func=cmd_search)


def _options_help(strategy: type[Strategy]) -> str:
    """A strategy's options for --help: ``population=50 (members), sample=10 (...)``, or ``none``."""
    from robustnas.search._base import strategy_options

    return ", ".join(f"{o.name}={o.default} ({o.help})" for o in strategy_options(strategy)) or "none"


def _add_train(commands: argparse._SubParsersAction) -> None:
    train = commands.add_parser(
        "train", help="train a network, standard or adversarial (PGD-AT, TRADES); resumable",
        description="Train an architecture of a search space or PreAct ResNet-18. OUT gets model.json, "
        "checkpoint.pt (every epoch), log.csv, curves.png and final.pt; the same command resumes.",
    )
    train.add_argument("--arch", required=True, help=f"{ARCH_HELP}; or resnet18 (PreAct ResNet-18)")
    _add_space(train, default=None, extra="; default nb201, not with resnet18")
    _dataset_option(
        train, TRAIN_DATASETS,
        "images of any size; on tiny-imagenet-200 ARNAS nets are C=84 with 14 cells, as ARNAS trains them",
    )
    _data_option(train)
    train.add_argument(
        "--adversarial", choices=("none", "pgd", "trades"), default="none",
        help="none: standard training; pgd: PGD-7 adversarial training (Madry et al., eps 8/255, step 2/255); "
        "trades: TRADES, beta 6 (Zhang et al.) (default none)",
    )
    train.add_argument(
        "--epochs", type=int, default=200, help="epochs; lr x0.1 at 1/2 and 3/4 of them (default 200)"
    )
    _batch_size_option(train, 128, "images per SGD step")
    train.add_argument("--lr", type=float, default=0.1, help="initial SGD learning rate (default 0.1)")
    train.add_argument("--cutout", type=int, default=0, help="cutout square side in pixels (default 0: off)")
    _seed_option(train, "the initial weights, batch order, augmentation and attacks")
    train.add_argument(
        "--holdout", type=int, default=1000,
        help="training images held out for the per-epoch clean and PGD-20 log (default 1000, Rice et al. 2020)",
    )
    train.add_argument("--limit", type=int, help="train on only this many of the remaining training images")
    _device_option(train)
    train.add_argument("--amp", action="store_true", help="float16 mixed precision (needs --device cuda)")
    _run_dir_option(train)
    train.set_defaults(func=cmd_train)


def _add_evaluate(commands: argparse._SubParsersAction) -> None:
    evaluate = commands.add_parser(
        "evaluate", help="clean, adversarial and corruption accuracy of a trained network (resumable)",
        description="Evaluate a checkpoint of robustnas train on the test split. OUT gets\n"
        "evaluation.json, evaluation.md and store.sqlite; values already stored\nthere are not computed again.",
        epilog=_suite_epilog, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    evaluate.add_argument(
        "--checkpoint", required=True,
        help="run directory of robustnas train (its final.pt, else checkpoint.pt), or one of those files",
    )
    evaluate.add_argument(
        "--suite", default="clean,fgsm,pgd20,pgd100,autoattack,corruptions",
        help="comma-separated suite items, listed below (default: %(default)s)",
    )
    _data_option(evaluate, default="the data the network was trained on")
    evaluate.add_argument("--n", type=int, help="evaluate the first N test images (default: all)")
    _batch_size_option(evaluate, 256, "images per forward pass")
    _seed_option(evaluate, "attack random starts and corruption noise")
    _device_option(evaluate)
    _engine_options(evaluate, "suite items (each corruption x severity is one)")
    evaluate.add_argument("--out", help="folder for evaluation.json/.md and store.sqlite (default: the checkpoint's)")
    evaluate.set_defaults(func=cmd_evaluate)


def _suite_epilog() -> str:
    """The suite items of evaluate (the registered attacks among them), each with what it measures."""
    import shutil
    import textwrap

    from robustnas.evaluation import suite_help

    items = suite_help()
    pad = max(map(len, items)) + 2
    width = max(shutil.get_terminal_size().columns - 2, 60)
    lines = ["suite items:"]
    for name, text in items.items():
        lines += textwrap.wrap(text, width, initial_indent=f"  {name:<{pad}}", subsequent_indent=" " * (pad + 2))
    return "\n".join(lines)


def _actions(commands: argparse._SubParsersAction, name: str, help_text: str) -> argparse._SubParsersAction:
    """A command made of actions (``robustnas NAME ACTION ...``): the subparsers of its actions."""
    return commands.add_parser(name, help=help_text).add_subparsers(dest=f"{name}_command", metavar="ACTION", required=True)


def _add_arch(commands: argparse._SubParsersAction) -> None:
    arch = _actions(commands, "arch", "show, convert and sample architectures")
    show = arch.add_parser("show", help="describe an architecture: encodings, params, FLOPs")
    show.add_argument("arch", help=ARCH_HELP)
    _add_space(show)
    _dataset_option(show)
    _json_option(show)
    show.set_defaults(func=cmd_arch_show)

    convert = arch.add_parser("convert", help="convert an architecture to another encoding")
    convert.add_argument("arch", help=ARCH_HELP)
    _add_space(convert)
    convert.add_argument("--to", required=True, choices=_formats(), help="encoding (tuple and index: NB201)")
    convert.set_defaults(func=cmd_arch_convert)

    sample = arch.add_parser("sample", help="sample random architectures, one per line")
    sample.add_argument("-n", type=int, default=10, help="how many (default 10)")
    _seed_option(sample, "the sample")
    _add_space(sample)
    sample.add_argument("--unique", action="store_true", help="NB201: only isomorphism-class representatives")
    sample.set_defaults(func=cmd_arch_sample)


def _add_data(commands: argparse._SubParsersAction) -> None:
    data = _actions(commands, "data", "inspect datasets")
    info = data.add_parser("info", help="format, splits, counts and shape of a dataset file or folder")
    info.add_argument("path", help="CIFAR python folder, .npz, ImageFolder dir/.zip, Tiny-ImageNet, SVHN .mat, ImageNet16 folder")
    _json_option(info)
    info.set_defaults(func=cmd_data_info)


def _add_bench(commands: argparse._SubParsersAction) -> None:
    bench = _actions(commands, "bench", "query NB201 ground truth")
    query = bench.add_parser("query", help="accuracy of an NB201 architecture under a metric")
    query.add_argument("arch", help=ARCH_HELP)
    _dataset_option(query)
    query.add_argument(
        "--metric", required=True,
        help="clean, fgsm, pgd, apgd-ce, square, nats_test or a corruption name (e.g. gaussian_noise)",
    )
    query.add_argument("--eps", type=float, help="attack strength in units of 1/255 (attacks only)")
    query.add_argument("--severity", type=int, help="corruption severity 1..5 (corruptions only)")
    query.add_argument("--data", help="original NB201 files (default: the copy shipped in the package)")
    _json_option(query, '{"value": ...}')
    query.set_defaults(func=cmd_bench_query)


SEED_LIMIT = 2**32  # numpy, torch and the store all take seeds in 0..2**32-1


def _check_seeds(args: argparse.Namespace) -> None:
    """Every --seed / --proxy-seed is in 0..2**32-1 (numpy's range), as a one-line error."""
    from robustnas.errors import RobustnasError

    for name in ("seed", "proxy_seed"):
        value = getattr(args, name, None)
        if value is not None and not 0 <= value < SEED_LIMIT:
            flag = "--" + name.replace("_", "-")
            raise RobustnasError(f"{flag} must be in 0..{SEED_LIMIT - 1}, got {value}")


class Terminated(BaseException):
    """SIGTERM arrived: unwinds like Ctrl-C, so open stores and worker pools close cleanly."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated


STOPPED = "what was already stored is kept; the same command resumes"


def main(argv: Sequence[str] | None = None) -> int:
    from robustnas.errors import RobustnasError
    from robustnas.plugins import load_plugins

    try:
        load_plugins()  # other packages' spaces, proxies, attacks, strategies: in choices and help
        parser = build_parser()
    except RobustnasError as exc:
        print(f"robustnas: error: {exc}", file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], None] = args.func

    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        _check_seeds(args)
        func(args)
    except RobustnasError as exc:
        print(f"robustnas: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader stopped (`| head`): not an error; silence the final flush
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # as a shell reports a command ended by SIGPIPE
    except OSError as exc:  # a path the user gave: missing, a directory, not writable, ...
        where = f": {exc.filename}" if exc.filename else ""
        print(f"robustnas: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"robustnas: interrupted (Ctrl-C); {STOPPED}", file=sys.stderr)
        return 130
    except Terminated:
        print(f"robustnas: terminated (SIGTERM); {STOPPED}", file=sys.stderr)
        return 143
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0


if __name__ == "__main__":
    sys.exit(main())
