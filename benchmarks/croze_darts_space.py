"""CRoZe's DARTS-like space (``--space croze-darts``, spec crose-and-arnas.md §A.6) measured.

* the published CRoZe cells: parameter counts against the spec's §A.8 measurements;
* the sampler: how many raw draws the 6 M parameter limit rejects, the parameter distribution of
  accepted genotypes, concat lengths, and the closed-form count against the built network;
* the mutation rule: one op per cell, concat of at most one cell redrawn (frequencies);
* time: sampling (closed-form limit check), building one full-size network (C=36, 20 cells).

    .venv/bin/python benchmarks/croze_darts_space.py [--samples 5000] [--built 20]

Writes docs/results/croze-darts.json and .md.
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from pathlib import Path

from robustnas import spaces
from robustnas.spaces._darts_ops import count_parameters
from robustnas.spaces.croze_darts import MAX_PARAMS_M, CrozeDartsGenotype, count_params, params_m, published_genotypes

ROOT = Path(__file__).resolve().parents[1]
SPEC_PARAMS_M = {("CROZE_CIFAR10", 10): 5.53, ("CROZE_CIFAR100", 100): 4.72, ("CROZE_IMAGENET", 10): 4.60}


def published() -> list[dict]:
    rows = []
    for (name, classes), spec in SPEC_PARAMS_M.items():
        genotype = published_genotypes()[name]
        rows.append({"genotype": name, "classes": classes, "params": count_params(genotype, num_classes=classes),
                     "spec_params_m": spec})  # fmt: skip
    return rows


def sampler(samples: int) -> dict:
    rng, raw, accepted, lengths = random.Random(0), 0, [], []
    start = time.perf_counter()
    while len(accepted) < samples:
        genotype = CrozeDartsGenotype.sample(rng)
        raw += 1
        if params_m(genotype) <= MAX_PARAMS_M:
            accepted.append(params_m(genotype))
            lengths.append(len(genotype.normal_concat))
    seconds = time.perf_counter() - start
    return {
        "accepted": samples, "raw_draws": raw, "rejected_share": round(1 - samples / raw, 4),
        "params_m_min": round(min(accepted), 3), "params_m_median": round(statistics.median(accepted), 3),
        "params_m_max": round(max(accepted), 3),
        "concat_length_shares": {n: round(lengths.count(n) / samples, 3) for n in range(1, 5)},
        "ms_per_accepted_sample": round(1000 * seconds / samples, 3),
    }  # fmt: skip


def built(count: int) -> dict:
    space, rng, times, agree = spaces.get("croze-darts"), random.Random(1), [], 0
    for _ in range(count):
        genotype = space.random_arch(rng)
        start = time.perf_counter()
        net = space.network(genotype, 10)
        times.append(time.perf_counter() - start)
        agree += count_parameters(net) == count_params(genotype)
    return {"networks": count, "closed_form_equals_built": agree, "build_s_median": round(statistics.median(times), 3)}


def mutation(trials: int) -> dict:
    space, rng = spaces.get("croze-darts"), random.Random(2)
    parent, redrawn = space.parse("CROZE_CIFAR10"), {"normal": 0, "reduce": 0, "neither": 0}
    for _ in range(trials):
        child = space.mutate(parent, rng)
        moved = [c for c in ("normal", "reduce") if getattr(child, f"{c}_concat") != getattr(parent, f"{c}_concat")]
        redrawn[moved[0] if moved else "neither"] += 1
    return {"trials": trials, "concat_changed": redrawn}


def markdown(result: dict, command: str) -> str:
    lines = ["# CRoZe's DARTS-like space (`--space croze-darts`)", "", f"Command: `{command}`", "",
             "## Published cells (C=36, 20 cells; closed-form count = built network)", "",
             "| genotype | classes | parameters | spec §A.8 |", "|---|---|---|---|"]  # fmt: skip
    lines += [f"| {r['genotype']} | {r['classes']} | {r['params']:,} | {r['spec_params_m']} M |" for r in result["published"]]
    s, b, m = result["sampler"], result["built"], result["mutation"]
    lines += [
        "", "## Sampler (6 M parameter limit, CIFAR-10 head)", "",
        f"- {s['accepted']:,} accepted genotypes took {s['raw_draws']:,} raw draws: {100 * s['rejected_share']:.1f} % rejected "
        f"by the limit; {s['ms_per_accepted_sample']} ms per accepted genotype (the limit is checked in closed form).",
        f"- parameters of accepted genotypes: min {s['params_m_min']} M, median {s['params_m_median']} M, max {s['params_m_max']} M.",
        f"- concat length (one length for both cells, 1..4 uniform before the limit): {s['concat_length_shares']}.",
        f"- {b['closed_form_equals_built']} of {b['networks']} random networks have exactly the closed-form parameter count; "
        f"building one full-size network takes {b['build_s_median']} s (median): checking the limit by building every "
        f"candidate, as the official code does, would cost about {b['build_s_median'] * s['raw_draws'] / s['accepted']:.2f} s "
        f"per accepted genotype, {b['build_s_median'] * s['raw_draws'] / s['accepted'] / (s['ms_per_accepted_sample'] / 1000):.0f}x "
        "the closed form (estimated: median build time x raw draws per accepted genotype).",
        "", "## Mutation", "",
        f"- {m['trials']} mutations of CROZE_CIFAR10: concat list redrawn in the normal cell {m['concat_changed']['normal']}, "
        f"reduction cell {m['concat_changed']['reduce']}, neither {m['concat_changed']['neither']} times "
        "(a third each; a redrawn list may equal the old one). Every mutation changes one op per cell.",
    ]  # fmt: skip
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=5000)
    parser.add_argument("--built", type=int, default=20)
    args = parser.parse_args()
    result = {"published": published(), "sampler": sampler(args.samples), "built": built(args.built),
              "mutation": mutation(3000)}  # fmt: skip
    command = f"python benchmarks/croze_darts_space.py --samples {args.samples} --built {args.built}"
    out = ROOT / "docs" / "results"
    (out / "croze-darts.json").write_text(json.dumps({"command": command, **result}, indent=1) + "\n")
    (out / "croze-darts.md").write_text(markdown(result, command))
    print(markdown(result, command))


if __name__ == "__main__":
    main()
