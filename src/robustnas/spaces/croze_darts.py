"""CRoZe's own DARTS-like search space (Ha et al., NeurIPS 2023; spec crose-and-arnas.md §A.6).

Not the DARTS genotype space, although its networks are DARTS ``NetworkCIFAR`` (C=36, 20 cells,
reductions at ⌊L/3⌋ and ⌊2L/3⌋, no auxiliary head):

* 10 primitives, the 8 of DARTS plus ``sep_conv_7x7`` and ``conv_7x1_1x7``; ``none`` is accepted
  but never sampled.
* A cell is 14 (op, input) pairs: the sampler draws one op for every predecessor j = 0..i+1 of its
  nodes i = 0..3, and the network reads the pairs two by two, as **7 two-input nodes** 2..8 whose
  inputs are therefore fixed: (0,1), (0,1), (2,0), (1,2), (3,0), (1,2), (3,4).
* The concat list has 1-4 entries drawn with replacement from {2, 3, 4, 5}, in any order (e.g.
  [4, 5, 3, 4]); nodes 6-8 are computed but never read. One length is drawn for both cells.
* Normal and reduction cells are independent; candidates over 6 M parameters are not part of the
  space: sampling and mutation draw again, as the official code does. The count uses a CIFAR-10
  head whatever the dataset (a space has none; the official code counts the dataset's head, so on
  CIFAR-100 a genotype within ~52 k parameters of the limit is in here and not there).
* Mutation: one op of the normal and one of the reduction cell change to a different sampled op
  (input kept); with probability 1/3 each the normal or the reduction concat list is drawn anew,
  else neither. The official code edits the parent's lists in place (so children of one step share
  their cells); here every child is a new genotype and the parent is never changed.

Encodings are those of DARTS genotypes (spaces/darts.py) with ``"space": "croze-darts"`` in JSON;
published names are CRoZe's searched cells (below).
"""
from __future__ import annotations

import dataclasses
import json
import random
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from itertools import product
from typing import Any, ClassVar

from robustnas.errors import ArchError
from robustnas.spaces._base import register
from robustnas.spaces.darts import CellSpace, DartsGenotype, Pairs, _is_integer, _short, cell_channels, reduction_cells

# CRoZe's sampling primitives, in the order of its sampling.py (DARTS_PRIMITIVES there).
CROZE_OPS: tuple[str, ...] = (
    "none", "avg_pool_3x3", "max_pool_3x3", "skip_connect", "sep_conv_3x3", "sep_conv_5x5",
    "sep_conv_7x7", "dil_conv_3x3", "dil_conv_5x5", "conv_7x1_1x7",
)  # fmt: skip
SAMPLED_OPS = tuple(op for op in CROZE_OPS if op != "none")
SAMPLER_NODES = 4
INPUTS: tuple[int, ...] = tuple(j for i in range(SAMPLER_NODES) for j in range(2 + i))  # 14 inputs
CONCAT_NODES: tuple[int, ...] = (2, 3, 4, 5)
MAX_CONCAT = 4
MAX_PARAMS_M = 6.0
STANDARD_SIZES = {"C": 36, "layers": 20}


@dataclass(frozen=True)
class CrozeDartsGenotype(DartsGenotype):
    """A genotype of CRoZe's space: DARTS's normal and reduction cells, here of 14 pairs each and
    with free concat lists (never equal to a DartsGenotype: dataclass equality compares types)."""

    SPACE: ClassVar[str] = "croze-darts"
    LABEL: ClassVar[str] = "CRoZe-DARTS"
    OPS: ClassVar[tuple[str, ...]] = CROZE_OPS
    SAMPLE_OPS: ClassVar[tuple[str, ...]] = SAMPLED_OPS
    PAIRS: ClassVar[int] = len(INPUTS)

    def _checked_pairs(self, cell: str, value: Any) -> Pairs:
        pairs = super()._checked_pairs(cell, value)
        inputs = tuple(source for _, source in pairs)
        if inputs != INPUTS:
            raise ArchError(
                f"{self.LABEL} genotype, {cell} cell: inputs {list(inputs)} differ from the space's fixed "
                f"inputs {list(INPUTS)} (one op per predecessor of each sampler node); change only the ops"
            )
        return pairs

    def _checked_concat(self, field: str, value: Any) -> tuple[int, ...]:
        short_range = isinstance(value, range) and not value[MAX_CONCAT:]
        entries = tuple(value) if isinstance(value, (list, tuple)) or short_range else ()
        if not (1 <= len(entries) <= MAX_CONCAT and all(_is_node(n) for n in entries)):
            raise ArchError(
                f"{self.LABEL} genotype: {field} must list 1 to {MAX_CONCAT} nodes from 2..5, in any order and "
                f"repeats allowed (e.g. [4, 5, 3, 4]), got {_short(value)}"
            )
        return tuple(int(n) for n in entries)

    @classmethod
    def published(cls) -> dict[str, "CrozeDartsGenotype"]:
        return published_genotypes()

    @classmethod
    def sample(cls, rng: random.Random) -> "CrozeDartsGenotype":
        """One draw of CRoZe's ``random_architecture`` (no size limit: see ``CrozeDartsSpace``)."""
        length = rng.randint(1, MAX_CONCAT)
        normal, reduce = _random_cell(rng), _random_cell(rng)
        return cls(normal, _random_concat(rng, length), reduce, _random_concat(rng, length))

    def mutate(self, rng: random.Random) -> "CrozeDartsGenotype":
        """CRoZe's ``mutate_architecture`` on a copy (see the module docstring)."""
        resampled = rng.randint(1, 3)  # 1: normal concat, 2: reduction concat, 3: neither
        normal, reduce = _mutated_cell(self.normal, rng), _mutated_cell(self.reduce, rng)
        length = rng.randint(1, MAX_CONCAT)
        normal_concat = _random_concat(rng, length) if resampled == 1 else self.normal_concat
        reduce_concat = _random_concat(rng, length) if resampled == 2 else self.reduce_concat
        return CrozeDartsGenotype(normal, normal_concat, reduce, reduce_concat)

    def neighbours(self) -> list["CrozeDartsGenotype"]:
        """Every genotype with one op of one cell changed to another sampled op (concat kept)."""
        return [
            dataclasses.replace(self, **{cell: _with_op(getattr(self, cell), position, op)})
            for cell in self.CELLS
            for position, (current, _) in enumerate(getattr(self, cell))
            for op in self.SAMPLE_OPS
            if op != current
        ]


def _is_node(value: Any) -> bool:
    return _is_integer(value) and value in CONCAT_NODES


def _random_cell(rng: random.Random) -> Pairs:
    return tuple((rng.choice(SAMPLED_OPS), source) for source in INPUTS)


def _random_concat(rng: random.Random, length: int) -> tuple[int, ...]:
    return tuple(rng.choice(CONCAT_NODES) for _ in range(length))


def _mutated_cell(pairs: Pairs, rng: random.Random) -> Pairs:
    position = rng.randrange(len(pairs))
    current = pairs[position][0]
    return _with_op(pairs, position, rng.choice([op for op in SAMPLED_OPS if op != current]))


def _with_op(pairs: Pairs, position: int, op: str) -> Pairs:
    return tuple((op, source) if at == position else (current, source) for at, (current, source) in enumerate(pairs))


# ---- parameter count without building the network ---------------------------------------------
def _op_params(op: str, c: int, stride: int) -> int:
    """Parameters of one DARTS primitive on ``c`` channels (affine BN: 2c)."""
    if op in ("none", "max_pool_3x3", "avg_pool_3x3"):
        return 0
    if op == "skip_connect":
        return 0 if stride == 1 else c * c + 2 * c  # FactorizedReduce: two 1x1 convs to c/2 each
    if op.startswith("sep_conv_"):
        kernel = int(op[-1])
        return 2 * (c * kernel * kernel + c * c + 2 * c)
    if op.startswith("dil_conv_"):
        kernel = int(op[-1])
        return c * kernel * kernel + c * c + 2 * c
    return 2 * 7 * c * c + 2 * c  # conv_7x1_1x7


def count_params(genotype: CrozeDartsGenotype, C: int = 36, layers: int = 20, num_classes: int = 10) -> int:
    """Parameters of the genotype's DARTS network, auxiliary head excluded, as DARTS's
    ``count_parameters_in_MB`` counts them (tests check it against the built network)."""
    reductions = reduction_cells(layers)
    c_prev_prev = c_prev = 3 * C
    total = 3 * 3 * 3 * 3 * C + 2 * 3 * C  # stem conv + BN
    for index, width in enumerate(cell_channels(C, layers)):
        cell = "reduce" if index in reductions else "normal"
        total += c_prev_prev * width + 2 * width + c_prev * width + 2 * width  # the two preprocessings
        for op, source in getattr(genotype, cell):
            total += _op_params(op, width, 2 if cell == "reduce" and source < 2 else 1)
        c_prev_prev, c_prev = c_prev, len(getattr(genotype, f"{cell}_concat")) * width
    return total + c_prev * num_classes + num_classes


def params_m(genotype: CrozeDartsGenotype) -> float:
    """Millions of parameters at the standard size with a CIFAR-10 head (the 6 M limit's count)."""
    return count_params(genotype) / 1e6


class CrozeDartsSpace(CellSpace):
    """CRoZe's DARTS-like space (see the module docstring); networks: DARTS NetworkCIFAR, C=36,
    20 cells. The flat encoding is one categorical per op (14 per cell) and one per concat list
    (its 340 possible lists, written "4,5,3,4"); it also reaches genotypes over 6 M parameters,
    which a search tells its strategy as infeasible (``admissible``)."""

    name = "croze-darts"
    label = "CRoZe-DARTS"
    summary = "CRoZe's DARTS-like space (Ha et al. 2023): 7-node cells, 10 ops, free concat, <= 6 M params"
    default_sizes = dict(STANDARD_SIZES)
    GENOTYPE, NETWORK = CrozeDartsGenotype, "DartsNetwork"  # no supernet: CRoZe searches by sampling

    def admissible(self, arch: Any) -> bool:
        return params_m(self.parse(arch)) <= MAX_PARAMS_M

    def random_arch(self, rng: random.Random) -> CrozeDartsGenotype:
        while True:
            genotype = CrozeDartsGenotype.sample(rng)
            if self.admissible(genotype):
                return genotype

    def mutate_once(self, arch: CrozeDartsGenotype, rng: random.Random) -> CrozeDartsGenotype:
        while True:
            child = arch.mutate(rng)
            if self.admissible(child):
                return child

    def neighbours(self, arch: CrozeDartsGenotype) -> list[CrozeDartsGenotype]:
        return [child for child in arch.neighbours() if self.admissible(child)]

    def choices(self) -> dict[str, tuple[Any, ...]]:
        concats = tuple(_concat_text(c) for n in range(1, MAX_CONCAT + 1) for c in product(CONCAT_NODES, repeat=n))
        result: dict[str, tuple[Any, ...]] = {}
        for cell in CrozeDartsGenotype.CELLS:
            result.update({f"{cell}_op{k}": SAMPLED_OPS for k in range(len(INPUTS))})
            result[f"{cell}_concat"] = concats
        return result

    def encode(self, arch: Any) -> dict[str, Any]:
        arch = self.canonical(arch)
        result: dict[str, Any] = {}
        for cell in arch.CELLS:
            result.update({f"{cell}_op{k}": op for k, (op, _) in enumerate(getattr(arch, cell))})
            result[f"{cell}_concat"] = _concat_text(getattr(arch, f"{cell}_concat"))
        return result

    def decode_params(self, params: dict[str, Any]) -> CrozeDartsGenotype:
        fields: dict[str, Any] = {}
        for cell in CrozeDartsGenotype.CELLS:
            fields[cell] = tuple((params[f"{cell}_op{k}"], source) for k, source in enumerate(INPUTS))
            fields[f"{cell}_concat"] = tuple(int(n) for n in str(params[f"{cell}_concat"]).split(","))
        return CrozeDartsGenotype(**fields)


def _concat_text(concat: tuple[int, ...]) -> str:
    return ",".join(str(n) for n in concat)


@lru_cache(maxsize=1)
def published_genotypes() -> dict[str, CrozeDartsGenotype]:
    """The architectures CRoZe found, as released with its code: github.com/HyeonjeongHa/CRoZe
    train.py @ 4db142e, CROZE_CIFAR10 / CROZE_CIFAR100 / CROZE_IMAGENET (the ImageNet16-120 search),
    kept as data in _embedded/croze_darts_genotypes.json. Spec §A.8 measured 5.53 M, 4.72 M (100
    classes) and 4.60 M parameters at C=36, 20 cells; tests/test_spaces.py checks them."""
    data = json.loads((resources.files("robustnas") / "_embedded" / "croze_darts_genotypes.json").read_text())
    return {name: CrozeDartsGenotype.from_json(genotype) for name, genotype in data["genotypes"].items()}


register(CrozeDartsSpace())
