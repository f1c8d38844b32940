"""The ``robustnas`` command line.

Heavy modules (torch, pandas) are imported inside the commands so that ``--help`` answers at once.
Every user error is printed on one line and exits with status 2.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Callable, Sequence

DATASETS = ("cifar10", "cifar100", "ImageNet16-120")
SPACES = ("nb201", "darts", "arnas")


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

    from robustnas.errors import RobustnasError
    from robustnas.proxies import resolve
    from robustnas.scoring import ScoreSettings, run_scoring, select_archs, shard, summary_table

    if args.data is None and args.dataset != "cifar10":
        raise RobustnasError(f"the embedded sample is CIFAR-10; give --data for {args.dataset}")
    if args.batch_size < 1:
        raise RobustnasError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.seed < 0:
        raise RobustnasError(f"--seed must be >= 0, got {args.seed}")
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise RobustnasError("--device cuda: no CUDA device is available here; use --device cpu")
    settings = ScoreSettings(
        space=args.space,
        dataset=args.dataset,
        data=str(Path(args.data).resolve()) if args.data else None,
        proxies=tuple(resolve(args.proxies)),
        batch_size=args.batch_size,
        seed=args.seed,
        device=args.device,
    )
    archs = shard(select_archs(args.space, args.archs, args.seed), args.shard)
    result = run_scoring(settings, archs, Path(args.out), workers=args.workers)
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

    from robustnas.report.study import run_study

    runs = [Path(run) for run in args.runs or []]
    command = shlex.join(["robustnas", "study", "--dataset", args.dataset, "--features", args.features,
                          *(["--runs", *map(str, runs)] if runs else []), "--out", args.out])
    print(run_study(args.dataset, args.features, runs, Path(args.out), command))


# ---- demo --------------------------------------------------------------------------------------
def cmd_demo(args: argparse.Namespace) -> None:
    from robustnas.demo import run_demo

    run_demo(n=args.n, seed=args.seed)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="robustnas",
        description="Find neural network architectures that are both accurate and robust.",
    )
    parser.add_argument("--version", action="version", version="robustnas 0.1.0")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    score = commands.add_parser("score", help="compute zero-cost proxies for many architectures (resumable)")
    score.add_argument("--space", choices=SPACES, default="nb201")
    score.add_argument("--dataset", choices=DATASETS, default="cifar10")
    score.add_argument("--data", help="dataset file or folder (default: the embedded CIFAR-10 sample)")
    score.add_argument("--proxies", default="all", help="all, or a comma-separated list of proxy names")
    score.add_argument(
        "--archs", default="unique",
        help="all | unique (NB201) | sample:N | FILE with one architecture per line (default unique)",
    )
    score.add_argument("--batch-size", type=int, default=64)
    score.add_argument("--seed", type=int, default=0)
    score.add_argument("--out", required=True, help="run directory (created, or resumed when it exists)")
    score.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    score.add_argument("--shard", help="i/N: score only every N-th architecture starting at i")
    score.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    score.set_defaults(func=cmd_score)

    merge = commands.add_parser("merge", help="join the run directories of shards into one")
    merge.add_argument("runs", nargs="+", help="run directories of the shards")
    merge.add_argument("--out", required=True, help="merged run directory")
    merge.set_defaults(func=cmd_merge)

    export = commands.add_parser("export", help="write a run as a table: one row per architecture")
    export.add_argument("run", help="run directory")
    export.add_argument("--out", required=True, help="FILE.csv or FILE.parquet")
    export.set_defaults(func=cmd_export)

    study = commands.add_parser("study", help="report: how well proxies predict clean and robust accuracy (NB201)")
    study.add_argument("--dataset", choices=DATASETS, default="cifar10")
    study.add_argument("--features", choices=("suite", "ours", "both"), default="suite",
                       help="suite: NAS-Bench-Suite-Zero's values; ours: scoring runs (--runs); both: their union")
    study.add_argument("--runs", nargs="+", help="NB201 scoring run directories of --dataset (robustnas score)")
    study.add_argument("--out", required=True, help="report directory (report.md, report.html, figures, CSVs)")
    study.set_defaults(func=cmd_study)

    demo = commands.add_parser("demo", help="sample NB201 architectures and show their cost and benchmark accuracy")
    demo.add_argument("-n", type=int, default=8, help="number of architectures (default 8)")
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(func=cmd_demo)

    arch = commands.add_parser("arch", help="show, convert and sample architectures").add_subparsers(
        dest="arch_command", metavar="ACTION", required=True
    )
    arch_help = (
        "NB201: op-index tuple '(0, 2, 3, 2, 3, 1)', NB201 string or index 0..15624; "
        "DARTS/ARNAS: genotype string, JSON, JSON file or a published name such as DARTS_V2"
    )
    show = arch.add_parser("show", help="describe an architecture: encodings, params, FLOPs")
    show.add_argument("arch", help=arch_help)
    show.add_argument("--space", choices=SPACES, default="nb201")
    show.add_argument("--dataset", choices=DATASETS, default="cifar10")
    show.add_argument("--json", action="store_true", help="print one JSON object")
    show.set_defaults(func=cmd_arch_show)

    convert = arch.add_parser("convert", help="convert an architecture to another encoding")
    convert.add_argument("arch", help=arch_help)
    convert.add_argument("--space", choices=SPACES, default="nb201")
    convert.add_argument("--to", required=True, choices=("tuple", "string", "index", "json"))
    convert.set_defaults(func=cmd_arch_convert)

    sample = arch.add_parser("sample", help="sample random architectures, one per line")
    sample.add_argument("-n", type=int, default=10)
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--space", choices=SPACES, default="nb201")
    sample.add_argument("--unique", action="store_true", help="NB201: only isomorphism-class representatives")
    sample.set_defaults(func=cmd_arch_sample)

    data = commands.add_parser("data", help="inspect datasets").add_subparsers(
        dest="data_command", metavar="ACTION", required=True
    )
    info = data.add_parser("info", help="format, splits, counts and shape of a dataset file or folder")
    info.add_argument("path", help="CIFAR python folder, .npz, ImageFolder dir/.zip, Tiny-ImageNet, SVHN .mat, ImageNet16 folder")
    info.add_argument("--json", action="store_true")
    info.set_defaults(func=cmd_data_info)

    bench = commands.add_parser("bench", help="query NB201 ground truth").add_subparsers(
        dest="bench_command", metavar="ACTION", required=True
    )
    query = bench.add_parser("query", help="accuracy of an NB201 architecture under a metric")
    query.add_argument("arch", help=arch_help)
    query.add_argument("--dataset", choices=DATASETS, default="cifar10")
    query.add_argument(
        "--metric", required=True,
        help="clean, fgsm, pgd, apgd-ce, square, nats_test or a corruption name (e.g. gaussian_noise)",
    )
    query.add_argument("--eps", type=float, help="attack strength in units of 1/255 (attacks only)")
    query.add_argument("--severity", type=int, help="corruption severity 1..5 (corruptions only)")
    query.add_argument("--data", help="original NB201 files (default: the copy shipped in the package)")
    query.add_argument("--json", action="store_true", help='print {"value": ...}')
    query.set_defaults(func=cmd_bench_query)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], None] = args.func
    from robustnas.errors import RobustnasError

    try:
        func(args)
    except RobustnasError as exc:
        print(f"robustnas: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a path the user gave: missing, a directory, not writable, ...
        print(f"robustnas: error: {exc.strerror or exc}: {exc.filename}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("robustnas: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
