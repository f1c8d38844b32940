"""``make demo``: CRoZe-guided search over NAS-Bench-201 on the CIFAR-10 sample inside the package.

Everything runs offline: CRoZe (Ha et al., NeurIPS 2023) scores untrained networks on one batch of
the embedded images; CRoZe's warmup + move search (50 random architectures, then 5 mutants of the
current architecture per step) spends the budget; the found architecture's accuracies come from the
NB201 robustness tables shipped inside the package (Jung et al., ICLR 2023).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from robustnas.search._run import SearchSettings, describe_result, run


def run_demo(budget: int = 100, seed: int = 0, out: Path = Path("robustnas-demo")) -> dict[str, Any]:
    """Search, print what was found, return ``result.json``'s content (the run resumes in ``out``)."""
    settings = SearchSettings(
        space="nb201", dataset="cifar10", strategy="warmup-move", objective="croze", budget=budget, seed=seed
    )
    result = run(settings, out)
    print(describe_result(result))
    print(f"(trajectory: {out / 'trajectory.png'}; random architectures sit at the 50th percentile on average)")
    return result
