"""Build src/robustnas/_embedded/cifar10-sample.npz, the CIFAR-10 sample shipped in the package.

Exact original pixels from the raw subset in shared/data (see its README): the first
TRAIN_PER_CLASS train images of every class in original order (class-balanced; ``train_index`` is
each image's index among the 50,000 original train images) and all 1,017 test images it holds
(the first 1,017 of the original test set, ``test_index`` 0..1016). Stored with
np.savez_compressed; the package data limit is 10 MB.

    python scripts/embed_cifar10_sample.py ../shared/data/cifar10/cifar10-raw-subset.npz
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from robustnas.data.imageset import first_per_class
from robustnas.data.names import CIFAR10_CLASSES

OUT = Path(__file__).resolve().parents[1] / "src" / "robustnas" / "_embedded" / "cifar10-sample.npz"
TRAIN_PER_CLASS = 200
MAX_BYTES = 10_000_000


def main(raw_subset: str) -> None:
    with np.load(raw_subset, allow_pickle=False) as raw:
        arrays = {key: raw[key] for key in raw.files}
    keep = first_per_class(arrays["y_train"], TRAIN_PER_CLASS)
    if np.bincount(arrays["y_train"][keep]).tolist() != [TRAIN_PER_CLASS] * len(CIFAR10_CLASSES):
        raise SystemExit(f"{raw_subset}: fewer than {TRAIN_PER_CLASS} train images in some class")
    np.savez_compressed(
        OUT,
        x_train=arrays["x_train"][keep],
        y_train=arrays["y_train"][keep],
        train_index=arrays["train_index"][keep],
        x_test=arrays["x_test"],
        y_test=arrays["y_test"],
        test_index=np.arange(len(arrays["x_test"]), dtype=np.int64),
        class_names=np.array(CIFAR10_CLASSES),
        provenance=np.array(
            f"exact CIFAR-10 pixels from {Path(raw_subset).name}: first {TRAIN_PER_CLASS} train images per class "
            f"(train_index = original train index), test images 0..{len(arrays['x_test']) - 1}"
        ),
    )
    size = OUT.stat().st_size
    if size > MAX_BYTES:
        OUT.unlink()
        raise SystemExit(f"{OUT} would be {size} bytes, over the {MAX_BYTES} limit: lower TRAIN_PER_CLASS")
    print(f"wrote {OUT} ({size} bytes): {len(keep)} train + {len(arrays['x_test'])} test images")


if __name__ == "__main__":
    main(sys.argv[1])
