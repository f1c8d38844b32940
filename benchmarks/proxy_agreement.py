"""Agreement of our proxies with NAS-Bench-Suite-Zero's recorded values, against our own noise ceiling.

The suite's values came from other random batches and initialisations, so a perfect
reimplementation cannot reach Spearman 1: the ceiling is the Spearman between two of our own runs
with different seeds (different batch and initialisation). Required: ours-vs-suite within 0.05 of
that ceiling for every proxy.

    python benchmarks/proxy_agreement.py --n 500 --workers 2

Scores go to resumable scoring runs under --runs (robustnas score), so an interrupted benchmark
continues where it stopped. Writes docs/results/proxy-agreement.{md,json} and the two score tables.
"""
from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import pandas as pd
from scipy.stats import spearmanr

from robustnas.bench import Benchmark
from robustnas.report import markdown_table
from robustnas.scoring import ScoreSettings, export, run_scoring
from robustnas.spaces.nb201 import NB201Arch

ROOT = Path(__file__).resolve().parents[1]
SUITE = ("epe_nas", "fisher", "flops", "grad_norm", "grasp", "jacov", "l2_norm", "nwot", "params", "plain",
         "snip", "synflow", "zen")


NOTES = [
    "`ours_vs_suite`: Spearman between our seed-0 values and the suite's recorded values of the same "
    "architectures. `ceiling_seed0_vs_seed1`: Spearman between two of our runs that differ in the batch and "
    "the initialisation, as the suite's values differ from ours. A negative gap means ours-vs-suite is "
    "above our own seed-to-seed agreement: within noise.",
    "",
    "- params and flops are deterministic: 1.0 (all 9,445 suite values are also equal exactly, tests).",
    "- plain (signed sum of W * dL/dW) and grasp (signed) are close to zero with either sign for many "
    "architectures, so their rank is mostly noise from the batch and initialisation: ceilings 0.10 and 0.79. "
    "They agree with the suite as well as with themselves.",
    "- epe_nas has the largest gap (0.04): its per-class correlation statistics on 64 images (about 6 per "
    "class) are noisy, and the suite's batches came from its own sampler (first 70 % of the training set), "
    "ours from the embedded sample.",
]


def pick_archs(n: int, seed: int) -> list[str]:
    """n isomorphism representatives that the suite covers (CIFAR-10), seeded."""
    suite = Benchmark().suite_zero("cifar10")
    covered = sorted(int(i) for i in suite.index if NB201Arch.from_index(int(i)).isomorph_index == int(i))
    return [NB201Arch.from_index(i).to_string() for i in random.Random(seed).sample(covered, n)]


def score_run(archs: list[str], seed: int, runs: Path, workers: int) -> pd.DataFrame:
    settings = ScoreSettings("nb201", "cifar10", None, SUITE, batch_size=64, seed=seed)
    run_dir = runs / f"seed{seed}"
    run_scoring(settings, archs, run_dir, workers=workers)
    table_file = export(run_dir, runs / f"seed{seed}.csv")
    return pd.read_csv(table_file).set_index("arch")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "agreement")
    args = parser.parse_args()
    archs = pick_archs(args.n, seed=0)
    first, second = (score_run(archs, seed, args.runs, args.workers) for seed in (0, 1))
    suite = Benchmark().suite_zero("cifar10")
    suite.index = [NB201Arch.from_index(int(i)).to_string() for i in suite.index]
    suite = suite.loc[archs]
    rows = []
    for proxy in SUITE:
        ceiling = spearmanr(first.loc[archs, proxy], second.loc[archs, proxy], nan_policy="omit").statistic
        agreement = spearmanr(first.loc[archs, proxy], suite[proxy], nan_policy="omit").statistic
        rows.append({"proxy": proxy, "ours_vs_suite": round(float(agreement), 4),
                     "ceiling_seed0_vs_seed1": round(float(ceiling), 4),
                     "gap": round(float(ceiling - agreement), 4), "within_0.05": bool(ceiling - agreement <= 0.05),
                     "nan_ours": int(first.loc[archs, proxy].isna().sum())})
    command = f"python benchmarks/proxy_agreement.py --n {args.n} --workers {args.workers}"
    out = ROOT / "docs" / "results"
    (out / "proxy-agreement.json").write_text(json.dumps({"command": command, "archs": len(archs), "rows": rows}, indent=2) + "\n")
    table = pd.DataFrame(rows)
    lines = ["# Proxy agreement with NAS-Bench-Suite-Zero (NB201, CIFAR-10)", "",
             f"Command: `{command}`; {len(archs)} unique NB201 architectures covered by the suite, batch 64, "
             "embedded CIFAR-10 sample (train split, crop+flip). Spearman rank correlations.", "",
             markdown_table(table), "", *NOTES]
    (out / "proxy-agreement.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
