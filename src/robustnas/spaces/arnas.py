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
from typing import ClassVar

from robustnas.spaces.darts import CellGenotype, check_network_size, reduction_cells
from robustnas.spaces.darts_ops import PRIMITIVES, CellNetwork, CellSpec, Pairs

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
        from robustnas.spaces.genotypes import ARNAS_GENOTYPES  # genotypes.py imports this module

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


class ArnasNetwork(CellNetwork):
    """The ARNAS evaluation network (``NetworkCIFAR_new`` of the ARNAS code) for one genotype.

    Stem 3x3 conv to 3C + BN, ``layers`` cells typed by :func:`cell_types` with widths from
    :func:`cell_channels`, global average pool, linear classifier; the optional auxiliary head reads
    cell ⌊2L/3⌋ (the second reduction). Published setting: C=64, 20 cells, auxiliary on (spec §B.5).
    Takes a normalised [N, 3, 32, 32] batch and returns logits, or ``(logits, aux_logits)`` in training
    mode when ``auxiliary`` is on. ``drop_path_prob`` is a settable attribute.
    """

    def __init__(
        self,
        genotype: ArnasGenotype | str | dict,
        C: int = 64,
        layers: int = 20,
        num_classes: int = 10,
        auxiliary: bool = False,
        drop_path_prob: float = 0.0,
    ):
        genotype = ArnasGenotype.parse(genotype)
        check_network_size("ARNAS", C, layers, num_classes)
        specs = [
            CellSpec(getattr(genotype, kind), getattr(genotype, f"{kind}_concat"), width, kind == "reduce")
            for kind, width in zip(cell_types(layers), cell_channels(C, layers))
        ]
        super().__init__(specs, 3 * C, num_classes, auxiliary, reduction_cells(layers)[1], drop_path_prob)
        self.genotype = genotype
