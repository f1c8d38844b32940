"""ARNAS search space ("Towards Accurate and Robust Architectures via Neural Architecture Search",
CVPR 2024, arXiv:2405.05502; spec crose-and-arnas.md Part B): three cell types, C:2C:2C widths.

* Cell types (§B.1): reduction cells at ⌊L/3⌋ and ⌊2L/3⌋; the other cells before ⌊2L/3⌋ are
  *accurate* cells, the cells after it *robust* cells (L=20: accurate 0-5 and 7-12, reduce 6 and 13,
  robust 14-19).
* Widths (§B.1): the first reduction doubles the channels, the second does not, so the stages have
  C : 2C : 2C channels per node (DARTS: C : 2C : 4C).
* Ops: the 7 DARTS primitives without ``none``.

A genotype has three cells of 8 (op, input) pairs each (same node layout as DARTS, see
spaces/darts.py) with the encodings ``Genotype(accurate=[...], accurate_concat=[...], reduce=[...],
reduce_concat=[...], robust=[...], robust_concat=[...])`` (the ARNAS code's field order), the JSON
object with ``"space": "arnas"`` and published names (``"ARNAS"``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from robustnas.spaces._base import register
from robustnas.spaces.darts import PRIMITIVES, CellGenotype, CellSpace, Pairs, reduction_cells

ARNAS_OPS: tuple[str, ...] = tuple(op for op in PRIMITIVES if op != "none")


@dataclass(frozen=True)
class ArnasGenotype(CellGenotype):
    """An ARNAS genotype: accurate, reduction and robust cells, immutable and hashable."""

    accurate: Pairs
    accurate_concat: tuple[int, ...]
    reduce: Pairs
    reduce_concat: tuple[int, ...]
    robust: Pairs
    robust_concat: tuple[int, ...]

    SPACE: ClassVar[str] = "arnas"
    LABEL: ClassVar[str] = "ARNAS"
    CELLS: ClassVar[tuple[str, ...]] = ("accurate", "reduce", "robust")
    OPS: ClassVar[tuple[str, ...]] = ARNAS_OPS
    SAMPLE_OPS: ClassVar[tuple[str, ...]] = ARNAS_OPS

    @classmethod
    def published(cls) -> dict[str, "ArnasGenotype"]:
        from robustnas.spaces._genotypes import ARNAS_GENOTYPES  # _genotypes.py imports this module

        return ARNAS_GENOTYPES


def cell_types(layers: int) -> tuple[str, ...]:
    """Type of every cell ("accurate", "reduce" or "robust") for an L-cell network (spec §B.1)."""
    first, second = reduction_cells(layers)
    return tuple(
        "reduce" if i in (first, second) else "accurate" if i < second else "robust" for i in range(layers)
    )


def cell_channels(channels: int, layers: int) -> tuple[int, ...]:
    """Channels per node of every cell: C before the first reduction, 2C from it on (C : 2C : 2C)."""
    first, _ = reduction_cells(layers)
    return tuple(channels * (2 if i >= first else 1) for i in range(layers))


class ArnasSpace(CellSpace):
    """The ARNAS space; networks: ARNAS ``NetworkCIFAR_new`` (C=64, 20 cells, as the ARNAS code;
    on Tiny-ImageNet-200 C=84 with 14 cells, spec §B.5, 5.41 M parameters)."""

    name = "arnas"
    label = "ARNAS"
    summary = "ARNAS accurate + reduction + robust cells (Ou et al. 2024), C=64, 20 cells"
    default_sizes = {"C": 64, "layers": 20}
    supernet_sizes = {"C": 24, "layers": 8}  # the ARNAS search (spec §B.3)
    GENOTYPE, NETWORK = ArnasGenotype, "ArnasNetwork"

    def sizes_for(self, dataset: str) -> dict[str, Any]:
        from robustnas.data._names import TINY_IMAGENET, canonical_dataset

        if canonical_dataset(dataset) == TINY_IMAGENET:
            return {"C": 84, "layers": 14}  # ARNAS_train_eval/train_tiny_imagenet
        return dict(self.default_sizes)


register(ArnasSpace())
