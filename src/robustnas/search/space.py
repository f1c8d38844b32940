"""The search view of a space: sample, mutate, a canonical key, and a flat categorical encoding.

NB201 searches run over the 6,466 isomorphism classes: every architecture a strategy sees is its
class representative (``NB201Arch.isomorph``), so no two evaluations are the same network
function and benchmark lookups need no mapping; random NB201 architectures are uniform over the
classes. DARTS and ARNAS genotypes are used as they are.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from itertools import combinations
from typing import Any

from robustnas import spaces
from robustnas.errors import RobustnasError

Arch = Any  # NB201Arch or a CellGenotype (DartsGenotype, ArnasGenotype)


@dataclass(frozen=True)
class SearchSpace:
    """``SearchSpace("nb201" | "darts" | "arnas")``: the moves every strategy uses."""

    name: str

    def __post_init__(self) -> None:
        spaces.check_space(self.name)

    def sample(self, rng: random.Random) -> Arch:
        """A uniformly random architecture; NB201: uniform over the 6,466 isomorphism classes (a
        uniform cell would favour classes with many cells, e.g. those cut off by ``none`` edges)."""
        if self.name == "nb201":
            from robustnas.spaces.nb201 import NB201Arch, unique_indices

            return NB201Arch.from_index(int(rng.choice(unique_indices())))
        return self.canonical(spaces._genotype_type(self.name).sample(rng))

    def mutate(self, arch: Arch, rng: random.Random) -> Arch:
        """A random neighbour that differs from ``arch`` (NB201: after canonicalisation too)."""
        for _ in range(_MUTATION_TRIES):
            child = self.canonical(arch.mutate(rng))
            if child != arch:
                return child
        raise RobustnasError(f"no mutation of {self.key(arch)} leaves its isomorphism class")

    def canonical(self, arch: Arch) -> Arch:
        """NB201: the isomorphism representative; DARTS/ARNAS: the genotype itself (its string names
        its network, as in ``robustnas score`` runs, which a search reads)."""
        arch = spaces.parse(self.name, arch)
        return arch.isomorph() if self.name == "nb201" else arch

    def key(self, arch: Arch) -> str:
        """The string that names ``arch`` in the store and in result files."""
        return str(self.canonical(arch))

    def parse(self, key: str) -> Arch:
        return self.canonical(spaces.parse(self.name, key))

    def population(self) -> list[Arch]:
        """Every architecture, for exhaustive ranking: the 6,466 NB201 representatives, by index."""
        if self.name != "nb201":
            raise RobustnasError(f"the {self.name} space is too large to enumerate; use another strategy")
        from robustnas.spaces.nb201 import NB201Arch, unique_indices

        return [NB201Arch.from_index(int(index)) for index in unique_indices()]

    # ---- flat categorical encoding (Optuna) ------------------------------------------------
    def choices(self) -> dict[str, tuple[Any, ...]]:
        """Parameter name -> its categorical choices; every assignment decodes to a valid arch.

        NB201: ``edge0..edge5`` over the 5 op indices. DARTS/ARNAS: per cell and node, the two
        inputs as one choice ``"i,j"`` (i < j, distinct as in ``sample``) and each input's op.
        """
        if self.name == "nb201":
            from robustnas.spaces.nb201 import NUM_EDGES, NUM_OPS

            return {f"edge{e}": tuple(range(NUM_OPS)) for e in range(NUM_EDGES)}
        kind = spaces._genotype_type(self.name)
        result: dict[str, tuple[Any, ...]] = {}
        for cell in kind.CELLS:
            for node in _nodes():
                result[f"{cell}_node{node}_inputs"] = tuple(f"{i},{j}" for i, j in combinations(range(node), 2))
                for slot in (0, 1):
                    result[f"{cell}_node{node}_op{slot}"] = tuple(kind.SAMPLE_OPS)
        return result

    def encode(self, arch: Arch) -> dict[str, Any]:
        """``arch`` as a choice per parameter of :meth:`choices` (NB201: its representative)."""
        arch = self.canonical(arch)
        if self.name == "nb201":
            return {f"edge{e}": op for e, op in enumerate(arch.ops)}
        result: dict[str, Any] = {}
        for cell in arch.CELLS:
            if getattr(arch, f"{cell}_concat") != _default_concat():
                raise RobustnasError(
                    f"the flat encoding keeps the default concat {list(_default_concat())}; the {cell} cell has another"
                )
            pairs = getattr(arch, cell)
            for slot, node in enumerate(_nodes()):
                first, second = sorted(pairs[2 * slot : 2 * slot + 2], key=lambda pair: pair[1])
                result[f"{cell}_node{node}_inputs"] = f"{first[1]},{second[1]}"
                result[f"{cell}_node{node}_op0"], result[f"{cell}_node{node}_op1"] = first[0], second[0]
        return result

    def decode(self, params: dict[str, Any]) -> Arch:
        """The architecture of a full assignment of :meth:`choices`; DARTS/ARNAS nodes list their
        lower input first, so ``decode(encode(g))`` is ``g`` up to that order within a node."""
        missing = [name for name in self.choices() if name not in params]
        if missing:
            raise RobustnasError(f"{self.name} encoding lacks {', '.join(missing[:3])}; give every parameter")
        if self.name == "nb201":
            from robustnas.spaces.nb201 import NB201Arch, NUM_EDGES

            return self.canonical(NB201Arch(tuple(int(params[f"edge{e}"]) for e in range(NUM_EDGES))))
        kind = spaces._genotype_type(self.name)
        fields: dict[str, Any] = {}
        for cell in kind.CELLS:
            pairs = []
            for node in _nodes():
                first, second = (int(i) for i in str(params[f"{cell}_node{node}_inputs"]).split(","))
                pairs += [(params[f"{cell}_node{node}_op0"], first), (params[f"{cell}_node{node}_op1"], second)]
            fields[cell], fields[f"{cell}_concat"] = tuple(pairs), _default_concat()
        return self.canonical(kind(**fields))


_MUTATION_TRIES = 100


def _nodes() -> range:
    """Intermediate nodes of a DARTS-style cell (imported here: robustnas.spaces.darts imports torch)."""
    from robustnas.spaces.darts import FIRST_NODE, NODES

    return range(FIRST_NODE, FIRST_NODE + NODES)


def _default_concat() -> tuple[int, ...]:
    from robustnas.spaces.darts import DEFAULT_CONCAT

    return DEFAULT_CONCAT
