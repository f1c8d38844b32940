"""Build src/robustnas/_embedded/nb201_index_codes.npy from the NATS-Bench accuracy table.

Row i of ``nats-bench-test-accuracy.csv`` is NB201 index i; we store the base-5 code of its op
tuple (uint16, 31 KB) so that index <-> architecture works offline.

    python scripts/embed_nb201_index.py ../shared/data/nb201/nats-bench-test-accuracy.csv
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from robustnas.spaces.nb201 import NB201Arch

OUT = Path(__file__).resolve().parents[1] / "src" / "robustnas" / "_embedded" / "nb201_index_codes.npy"


def main(csv_path: str) -> None:
    strings = pd.read_csv(csv_path)["ArchitectureString"]
    codes = np.array([NB201Arch.from_string(s).code for s in strings], dtype=np.uint16)
    if len(set(codes.tolist())) != len(codes) or len(codes) != 15625:
        raise SystemExit(f"{csv_path}: expected 15,625 distinct architectures")
    np.save(OUT, codes)
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main(sys.argv[1])
