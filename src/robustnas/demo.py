"""``make demo``: sample NB201 architectures, build their networks, show cost and benchmark accuracy.

Everything runs offline: the networks are built and counted here, the accuracies come from the
NB201 tables shipped inside the package (robustness dataset of Jung et al., ICLR 2023).
Later issues turn this into a proxy-guided search.
"""
from __future__ import annotations

import random

PGD_EPS = 1.0  # in units of 1/255; beyond 2/255 standard-trained NB201 networks are near 0 %
FGSM_EPS = 8.0


def run_demo(n: int = 8, seed: int = 0, dataset: str = "cifar10") -> list[dict]:
    """Print and return one row per sampled unique architecture."""
    from rich.console import Console
    from rich.table import Table

    from robustnas.bench import Benchmark
    from robustnas.spaces import INPUT_SIZE, build
    from robustnas.spaces.counting import count
    from robustnas.spaces.nb201 import NB201Arch, unique_indices

    bench = Benchmark()
    rng = random.Random(seed)
    archs = [NB201Arch.from_index(int(i)) for i in rng.sample(list(unique_indices()), n)]
    size = INPUT_SIZE[dataset]
    rows = []
    for arch in archs:
        counts = count(build("nb201", arch, dataset), (1, 3, size, size))
        rows.append(
            {
                "index": arch.index,
                "string": arch.to_string(),
                "params_m": counts.params_m,
                "flops_m": counts.flops_m,
                "clean": bench.query(arch, dataset, "clean"),
                "pgd": bench.query(arch, dataset, "pgd", eps=PGD_EPS),
                "fgsm": bench.query(arch, dataset, "fgsm", eps=FGSM_EPS),
            }
        )
    table = Table(title=f"{n} random NAS-Bench-201 architectures ({dataset}, seed {seed})")
    for column in ("index", "NB201 string", "params (M)", "FLOPs (M)", "clean", f"PGD {PGD_EPS:g}/255", f"FGSM {FGSM_EPS:g}/255"):
        table.add_column(column, justify="left" if column == "NB201 string" else "right", no_wrap=True)
    for row in rows:
        table.add_row(
            str(row["index"]), row["string"], f"{row['params_m']:.3f}", f"{row['flops_m']:.1f}",
            f"{row['clean']:.1%}", f"{row['pgd']:.1%}", f"{row['fgsm']:.1%}",
        )
    console = Console(width=200)
    console.print(table)
    console.print(
        "Accuracies: NB201 networks after standard training, attacked by Jung et al. (ICLR 2023); "
        "params/FLOPs counted on the networks built here (NAS-Bench-Suite-Zero rules)."
    )
    return rows
