"""NAS-Bench-201 (Dong & Yang, ICLR 2020): architectures, encodings, isomorphism and the network.

Encodings (all lossless, see spec zero-cost-proxies-and-rf-study.md §3.4):

* op-index tuple in NASLib order ``(e12, e13, e14, e23, e24, e34)`` with
  0=skip_connect, 1=none, 2=nor_conv_3x3, 3=nor_conv_1x1, 4=avg_pool_3x3;
* the NB201 string ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`` (groups by target node);
* the NB201 index 0..15624 (the benchmark's storage order, shipped as a table in the package).
"""
from __future__ import annotations

import ast
import json
import random
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any, Iterator

import numpy as np

from robustnas.errors import ArchError
from robustnas.spaces._base import Space, register

OPS: tuple[str, ...] = ("skip_connect", "none", "nor_conv_3x3", "nor_conv_1x1", "avg_pool_3x3")
EDGES: tuple[tuple[int, int], ...] = ((1, 2), (1, 3), (1, 4), (2, 3), (2, 4), (3, 4))
NUM_EDGES = len(EDGES)
NUM_OPS = len(OPS)
NUM_ARCHS = NUM_OPS**NUM_EDGES  # 15,625
NUM_UNIQUE = 6466
# String order = e12 | e13 e23 | e14 e24 e34, as positions of the tuple.
_STRING_ORDER: tuple[tuple[int, ...], ...] = ((0,), (1, 3), (2, 4, 5))


@dataclass(frozen=True, order=True)
class NB201Arch:
    """One NAS-Bench-201 cell, immutable and hashable; ``ops`` is the NASLib op-index tuple."""

    ops: tuple[int, ...]

    def __post_init__(self) -> None:
        ops = self.ops
        valid = (
            isinstance(ops, (tuple, list))
            and len(ops) == NUM_EDGES
            and all(isinstance(o, (int, np.integer)) and not isinstance(o, bool) and 0 <= o < NUM_OPS for o in ops)
        )
        if not valid:
            raise ArchError(
                f"NB201 op-index tuple must have {NUM_EDGES} integer entries in 0..{NUM_OPS - 1}, got {ops!r}"
            )
        object.__setattr__(self, "ops", tuple(int(o) for o in ops))

    # ---- encodings -------------------------------------------------------------------------
    @classmethod
    def from_string(cls, text: str) -> "NB201Arch":
        """Parse an NB201 string such as ``|nor_conv_3x3~0|+|none~0|skip_connect~1|+|...|``."""
        groups = text.strip().split("+")
        if len(groups) != 3:
            raise ArchError(f"NB201 string needs 3 '+'-separated node groups, got {text!r}")
        ops = [0] * NUM_EDGES
        for target, (group, positions) in enumerate(zip(groups, _STRING_ORDER), start=1):
            tokens = [t for t in group.strip().strip("|").split("|")]
            if len(tokens) != target:
                raise ArchError(f"node {target} of {text!r} needs {target} inputs, got {len(tokens)}")
            for source, (token, position) in enumerate(zip(tokens, positions)):
                name, _, src = token.partition("~")
                if name not in OPS or src != str(source):
                    raise ArchError(
                        f"bad edge {token!r} in {text!r}: expected '<op>~{source}' with op in {', '.join(OPS)}"
                    )
                ops[position] = OPS.index(name)
        return cls(tuple(ops))

    def to_string(self) -> str:
        groups = []
        for positions in _STRING_ORDER:
            groups.append("|" + "|".join(f"{OPS[self.ops[p]]}~{s}" for s, p in enumerate(positions)) + "|")
        return "+".join(groups)

    __str__ = to_string

    @classmethod
    def from_index(cls, index: int) -> "NB201Arch":
        if not 0 <= int(index) < NUM_ARCHS:
            raise ArchError(f"NB201 index must be in 0..{NUM_ARCHS - 1}, got {index}")
        return cls(tuple(int(o) for o in _index_table()[int(index)]))

    @property
    def index(self) -> int:
        """The NB201 benchmark index (row in the NB201/NATS-Bench tables)."""
        return int(_code_to_index()[self.code])

    @property
    def code(self) -> int:
        """Base-5 integer of the op tuple (0..15624), a compact key independent of the benchmark."""
        value = 0
        for op in self.ops:
            value = value * NUM_OPS + op
        return value

    @classmethod
    def parse(cls, value: "NB201Arch | str | int | tuple | list") -> "NB201Arch":
        """Accept an op-index tuple (or its text ``"(0, 2, 3, 2, 3, 1)"``), an NB201 string or index, or
        the JSON object of :meth:`to_json` (or its text)."""
        if isinstance(value, NB201Arch):
            return value
        if isinstance(value, (tuple, list)):
            return cls(tuple(value))
        if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
            return cls.from_index(int(value))
        if isinstance(value, dict):
            return cls.from_json(value)
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("{"):
                return cls.from_json(_json_object(text))
            if text.isascii() and text.lstrip("-").isdigit():
                return cls.from_index(int(text))
            if text.startswith("|"):
                return cls.from_string(text)
            if text.startswith(("(", "[")):
                try:
                    parsed = ast.literal_eval(text)
                except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as exc:
                    raise ArchError(f"cannot read op-index tuple {text!r}: {exc}") from None
                return cls(parsed)
        raise ArchError(
            f"cannot read NB201 architecture {value!r}: give an op-index tuple like (0, 2, 3, 2, 3, 1), "
            "an NB201 string like |nor_conv_3x3~0|+|...| or an index 0..15624"
        )

    def to_json(self) -> dict:
        return {"space": "nb201", "ops": list(self.ops), "string": self.to_string()}

    @classmethod
    def from_json(cls, data: dict) -> "NB201Arch":
        if not isinstance(data, dict) or data.get("space", "nb201") != "nb201" or "ops" not in data:
            raise ArchError(f"not an NB201 architecture JSON object (needs \"ops\": [6 op indices]): {data!r:.120}")
        ops = data["ops"]
        return cls(tuple(ops) if isinstance(ops, list) else ops)

    # ---- counts of op types (used by the closed-form checks) -------------------------------
    def count(self, op: str) -> int:
        return self.ops.count(OPS.index(op))

    # ---- search moves ----------------------------------------------------------------------
    @classmethod
    def sample(cls, rng: random.Random) -> "NB201Arch":
        return cls(tuple(rng.randrange(NUM_OPS) for _ in range(NUM_EDGES)))

    def mutate(self, rng: random.Random) -> "NB201Arch":
        """Change the op of one random edge to a different op (NASLib single-edge mutation)."""
        position = rng.randrange(NUM_EDGES)
        choices = [o for o in range(NUM_OPS) if o != self.ops[position]]
        return self._with(position, rng.choice(choices))

    def neighbours(self) -> list["NB201Arch"]:
        """All 24 architectures one single-edge op change away."""
        return [
            self._with(p, o) for p in range(NUM_EDGES) for o in range(NUM_OPS) if o != self.ops[p]
        ]

    def _with(self, position: int, op: int) -> "NB201Arch":
        ops = list(self.ops)
        ops[position] = op
        return NB201Arch(tuple(ops))

    # ---- isomorphism -----------------------------------------------------------------------
    def unique_string(self) -> str:
        """NB201's canonical string ``Structure.to_unique_str(consider_zero=True)`` (spec §3.5).

        Reproduces the quirk that only a node string exactly equal to "#" counts as zero, which
        yields exactly 6,466 classes over the 15,625 cells.
        """
        node_strings = ["0"]
        for target in (2, 3, 4):
            terms = []
            for position, (source, dest) in enumerate(EDGES):
                if dest != target:
                    continue
                op, src = OPS[self.ops[position]], node_strings[source - 1]
                if op == "none" or src == "#":
                    terms.append("#")
                elif op == "skip_connect":
                    terms.append(src)
                else:
                    terms.append(f"({src})@{op}")
            node_strings.append("+".join(sorted(terms)))
        return node_strings[-1]

    def isomorph(self) -> "NB201Arch":
        """The representative of this architecture's isomorphism class (its lowest NB201 index)."""
        return NB201Arch.from_index(int(_representative_index()[self.index]))

    @property
    def isomorph_index(self) -> int:
        return int(_representative_index()[self.index])


# ---- graph features ------------------------------------------------------------------------------
# The cell's four input->output paths (node 1 -> node 4) as positions of the op tuple.
PATHS: tuple[tuple[int, ...], ...] = ((2,), (0, 4), (1, 5), (0, 3, 5))
_PATH_OPS = ("skip_connect", "nor_conv_3x3", "nor_conv_1x1", "avg_pool_3x3")
GRAPH_FEATURES: tuple[str, ...] = (
    *(f"edge{a}{b}_{op}" for a, b in EDGES for op in OPS),
    *(f"path{''.join(str(EDGES[e][0]) for e in path)}4_{what}" for path in PATHS for what in ("alive", *_PATH_OPS)),
    "alive_paths", "max_conv3x3_on_path", "conv3x3_on_paths", "conv_free_paths",
)


def graph_features(arch: NB201Arch) -> dict[str, float]:
    """Zero-cost features of the cell graph itself, no network built (names: ``GRAPH_FEATURES``).

    In the spirit of GRAF, Kadlecova et al.'s neural graph features (ICML 2024): the op of every edge
    (one-hot, 30); for each of the four input->output paths whether it is alive (no ``none`` on
    it) and how many of each op it carries (-1 where it is dead, 20); and four summaries: alive
    paths, the most 3x3 convolutions on one alive path (the cell's depth; -1 if none is alive),
    3x3 convolutions summed over alive paths, and alive paths without any convolution (shortcuts).
    """
    values = {f"edge{a}{b}_{op}": float(arch.ops[e] == k) for e, (a, b) in enumerate(EDGES) for k, op in enumerate(OPS)}
    alive_paths = []
    for path in PATHS:
        name = f"path{''.join(str(EDGES[e][0]) for e in path)}4"
        ops = [OPS[arch.ops[e]] for e in path]
        alive = "none" not in ops
        values[f"{name}_alive"] = float(alive)
        for op in _PATH_OPS:
            values[f"{name}_{op}"] = float(ops.count(op)) if alive else -1.0
        if alive:
            alive_paths.append(ops)
    conv3 = [ops.count("nor_conv_3x3") for ops in alive_paths]
    values["alive_paths"] = float(len(alive_paths))
    values["max_conv3x3_on_path"] = float(max(conv3, default=-1))
    values["conv3x3_on_paths"] = float(sum(conv3))
    values["conv_free_paths"] = float(sum("nor_conv_3x3" not in ops and "nor_conv_1x1" not in ops for ops in alive_paths))
    return {name: values[name] for name in GRAPH_FEATURES}


def all_archs() -> Iterator[NB201Arch]:
    """All 15,625 architectures in NB201 index order."""
    for index in range(NUM_ARCHS):
        yield NB201Arch.from_index(index)


def unique_indices() -> np.ndarray:
    """Sorted NB201 indices of the 6,466 isomorphism-class representatives."""
    rep = _representative_index()
    return np.flatnonzero(rep == np.arange(NUM_ARCHS))


@lru_cache(maxsize=1)
def _index_table() -> np.ndarray:
    """[15625, 6] uint8: op tuple of every NB201 index (derived from the NB201 API order)."""
    codes = np.load(resources.files("robustnas") / "_embedded" / "nb201_index_codes.npy")
    digits = np.empty((NUM_ARCHS, NUM_EDGES), dtype=np.uint8)
    remaining = codes.astype(np.int64)
    for position in reversed(range(NUM_EDGES)):
        digits[:, position] = remaining % NUM_OPS
        remaining //= NUM_OPS
    return digits


@lru_cache(maxsize=1)
def _code_to_index() -> np.ndarray:
    codes = np.load(resources.files("robustnas") / "_embedded" / "nb201_index_codes.npy")
    inverse = np.empty(NUM_ARCHS, dtype=np.int64)
    inverse[codes.astype(np.int64)] = np.arange(NUM_ARCHS)
    return inverse


@lru_cache(maxsize=1)
def _representative_index() -> np.ndarray:
    """Representative (lowest index with the same unique string) for every NB201 index."""
    first_seen: dict[str, int] = {}
    rep = np.empty(NUM_ARCHS, dtype=np.int64)
    for index in range(NUM_ARCHS):
        key = NB201Arch.from_index(index).unique_string()
        rep[index] = first_seen.setdefault(key, index)
    return rep


def _json_object(text: str) -> object:
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError, ValueError) as error:
        raise ArchError(f"cannot read NB201 architecture JSON {text!r:.120}: {error}") from None


class NB201Space(Space):
    """NAS-Bench-201 as a search space: searches run over the 6,466 isomorphism classes.

    Every architecture a strategy sees is its class representative (``NB201Arch.isomorph``), so no
    two evaluations are the same network function and benchmark lookups need no mapping; random
    architectures of a search are uniform over the classes (a uniform cell would favour classes
    with many cells, e.g. those cut off by ``none`` edges). Networks: the NB201 skeleton (C=16,
    5 cells per stage).
    """

    name = "nb201"
    label = "NB201"
    summary = "NAS-Bench-201 cells (15,625; 6,466 unique), with the robustness benchmark"
    default_sizes = {"channels": 16, "cells_per_stage": 5}
    reads_files = False  # NB201 architectures are always given inline
    formats = ("tuple", "string", "index", "json")
    enumerable = True
    has_benchmark = True
    supernet_sizes = {"channels": 16, "cells_per_stage": 5}  # DARTS on NB201 (Dong & Yang 2020)

    def parse_value(self, value: Any) -> NB201Arch:
        return NB201Arch.parse(value)

    def record(self, arch: NB201Arch) -> str:
        return arch.to_string()

    def convert(self, arch: NB201Arch, to: str) -> str:
        if to == "tuple":
            return str(arch.ops)
        if to == "index":
            return str(arch.index)
        if to == "json":
            return json.dumps(arch.to_json())  # ops and string (record() keeps only the string)
        return super().convert(arch, to)

    def describe(self, arch: NB201Arch) -> dict[str, Any]:
        return {
            "ops": list(arch.ops),
            "index": arch.index,
            "isomorph_index": arch.isomorph_index,
            "unique_string": arch.unique_string(),
        }

    def canonical(self, arch: Any) -> NB201Arch:
        return self.parse(arch).isomorph()

    def benchmark_index(self, arch: Any) -> int:
        return int(self.canonical(arch).index)

    def random_arch(self, rng: random.Random) -> NB201Arch:
        return NB201Arch.sample(rng)

    def mutate_once(self, arch: NB201Arch, rng: random.Random) -> NB201Arch:
        return arch.mutate(rng)

    def neighbours(self, arch: NB201Arch) -> list[NB201Arch]:
        return arch.neighbours()

    def enumerate_population(self) -> list[NB201Arch]:
        """The 6,466 class representatives, by NB201 index."""
        return [NB201Arch.from_index(int(index)) for index in unique_indices()]

    def all_encodings(self) -> list[NB201Arch]:
        return list(all_archs())

    def choices(self) -> dict[str, tuple[Any, ...]]:
        """``edge0..edge5`` over the 5 op indices."""
        return {f"edge{e}": tuple(range(NUM_OPS)) for e in range(NUM_EDGES)}

    def encode(self, arch: Any) -> dict[str, Any]:
        return {f"edge{e}": op for e, op in enumerate(self.canonical(arch).ops)}

    def decode_params(self, params: dict[str, Any]) -> NB201Arch:
        return NB201Arch(tuple(int(params[f"edge{e}"]) for e in range(NUM_EDGES)))

    def network(self, arch: Any, num_classes: int, **sizes: Any):
        from robustnas.spaces._nb201_net import NB201Network

        return NB201Network(self.parse(arch), num_classes=num_classes, **(self.default_sizes | sizes))

    def supernet(self, num_classes: int, **sizes: Any):
        """The NB201 skeleton with a mixed edge over the 5 ops on every edge (one alpha 6 x 5)."""
        from robustnas.spaces._supernet import NB201Supernet

        return NB201Supernet(num_classes, **(self.supernet_sizes | sizes))

    def discretize(self, supernet: Any) -> NB201Arch:
        return supernet.arch()


register(NB201Space())
