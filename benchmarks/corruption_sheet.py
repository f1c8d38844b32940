"""Contact sheet of the 15 corruptions at severities 1..5 on real CIFAR-10 test images.

Rows: the corruptions in the four groups of Hendrycks & Dietterich (noise, blur, weather, digital);
columns: clean and severities 1..5, once per image, each 32 px image enlarged 4x with
nearest-neighbour so single pixels stay visible. Images come from the embedded CIFAR-10 sample
(its test split holds the first 1,017 CIFAR-10 test images, exact pixels).

    .venv/bin/python benchmarks/corruption_sheet.py [--images 0 6] [--seed 0]

Writes docs/corruptions-cifar10.png.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from robustnas.bench._names import SEVERITIES
from robustnas.corruptions import corrupt
from robustnas.data import load_dataset
from robustnas.report._stats import HENDRYCKS_GROUPS

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "docs" / "corruptions-cifar10.png"
ZOOM, GAP, LABEL_WIDTH, HEADER = 4, 4, 150, 22
BACKGROUND, INK = (255, 255, 255), (0, 0, 0)


def sheet(images: np.ndarray, captions: list[str], seed: int) -> Image.Image:
    """One row per corruption; per image a block of clean + 5 severities."""
    names = [name for group in HENDRYCKS_GROUPS.values() for name in group]
    cell = images.shape[1] * ZOOM
    block = (1 + len(SEVERITIES)) * (cell + GAP)
    width = LABEL_WIDTH + len(images) * (block + 3 * GAP)
    height = HEADER + len(names) * (cell + GAP)
    canvas = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    for b, caption in enumerate(captions):
        left = LABEL_WIDTH + b * (block + 3 * GAP)
        for c, title in enumerate(["clean", *[f"severity {s}" for s in SEVERITIES]]):
            draw.text((left + c * (cell + GAP) + 4, 2), f"{caption}: {title}" if c == 0 else title, fill=INK)
    for r, name in enumerate(names):
        top = HEADER + r * (cell + GAP)
        draw.text((4, top + cell // 2 - 6), name, fill=INK)
        columns = [images] + [corrupt(images, name, s, seed=seed) for s in SEVERITIES]
        for b in range(len(images)):
            left = LABEL_WIDTH + b * (block + 3 * GAP)
            for c, variant in enumerate(columns):
                tile = Image.fromarray(variant[b]).resize((cell, cell), Image.Resampling.NEAREST)
                canvas.paste(tile, (left + c * (cell + GAP), top))
    return canvas


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, nargs="+", default=[0, 6], help="test-split positions")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    test = load_dataset(split="test")
    images = test.images[args.images]
    captions = [f"#{int(test.index[i])} {test.classes[test.labels[i]]}" for i in args.images]
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    sheet(images, captions, args.seed).save(OUTPUT, optimize=True)
    print(f"wrote {OUTPUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
