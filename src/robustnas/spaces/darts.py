"""DARTS search space (Liu, Simonyan & Yang, ICLR 2019): genotypes, encodings, search moves, network.

A genotype has a normal and a reduction cell. Each cell has 4 intermediate nodes numbered 2..5
(0 and 1 are the outputs of the two previous cells); node k sums two (op, input) pairs whose inputs
are distinct states < k, so a cell is 8 pairs, stored node by node, plus the concat list of the
nodes whose outputs are concatenated (2..5 for every published genotype).

Encodings (all lossless):

* the DARTS ``Genotype(normal=[('sep_conv_3x3', 0), ...], normal_concat=[2, 3, 4, 5], reduce=[...],
  reduce_concat=[...])`` text (``range(2, 6)`` is accepted for a concat list); read with the ``ast``
  module, never ``eval``;
* a JSON object ``{"space": "darts", "normal": [["sep_conv_3x3", 0], ...], "normal_concat": [...], ...}``;
* the name of a published genotype (``robustnas.spaces._genotypes``), e.g. ``"DARTS_V2"``.

:class:`CellGenotype` holds what DARTS and ARNAS genotypes share; ARNAS (spaces/arnas.py) only
changes the cell names and the op set.
"""
from __future__ import annotations

import ast
import dataclasses
import json
import numbers
import random
import reprlib
from dataclasses import dataclass
from itertools import combinations
from typing import Any, ClassVar, TypeVar

from robustnas.errors import ArchError, RobustnasError
from robustnas.spaces._base import Space, register

# The 8 DARTS primitives in the order of the DARTS code (cnn/genotypes.py PRIMITIVES).
PRIMITIVES: tuple[str, ...] = (
    "none",
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
)
Pairs = tuple[tuple[str, int], ...]

NODES = 4  # intermediate nodes per cell
FIRST_NODE = 2  # nodes 0 and 1 are the cell inputs
PAIRS_PER_CELL = 2 * NODES
DEFAULT_CONCAT: tuple[int, ...] = tuple(range(FIRST_NODE, FIRST_NODE + NODES))

G = TypeVar("G", bound="CellGenotype")


class CellGenotype:
    """Validation, text/JSON encodings and search moves shared by the DARTS-style genotypes.

    Subclasses are frozen dataclasses with one ``<cell>`` and one ``<cell>_concat`` field per name in
    ``CELLS`` (in that order) and set ``SPACE`` (the JSON tag), ``LABEL`` (for messages), ``OPS``
    (accepted op names), ``SAMPLE_OPS`` (ops drawn by :meth:`sample` and :meth:`mutate`) and, where
    cells have other than 4 nodes, ``PAIRS``.
    """

    SPACE: ClassVar[str]
    LABEL: ClassVar[str]
    CELLS: ClassVar[tuple[str, ...]]
    OPS: ClassVar[tuple[str, ...]]
    SAMPLE_OPS: ClassVar[tuple[str, ...]]
    PAIRS: ClassVar[int] = PAIRS_PER_CELL  # (op, input) pairs per cell, two per intermediate node

    def __post_init__(self) -> None:
        for cell in self.CELLS:
            object.__setattr__(self, cell, self._checked_pairs(cell, getattr(self, cell)))
            concat = f"{cell}_concat"
            object.__setattr__(self, concat, self._checked_concat(concat, getattr(self, concat)))

    # ---- validation ------------------------------------------------------------------------
    def _checked_pairs(self, cell: str, value: Any) -> Pairs:
        where = f"{self.LABEL} genotype, {cell} cell"
        if not _is_sequence(value) or len(value) != self.PAIRS:
            count = len(value) if _is_sequence(value) else type(value).__name__
            last = FIRST_NODE + self.PAIRS // 2 - 1
            raise ArchError(
                f"{where}: needs {self.PAIRS} (op, input) pairs (2 for each of nodes 2..{last}), got {count}"
            )
        pairs = []
        for position, pair in enumerate(value):
            node = FIRST_NODE + position // 2
            if not _is_sequence(pair) or len(pair) != 2:
                raise ArchError(
                    f"{where}, node {node}: each entry must be an (op, input) pair, got {_short(pair)}"
                )
            op, source = pair
            if not isinstance(op, str) or op not in self.OPS:
                raise ArchError(
                    f"{where}, node {node}: unknown op {_short(op)}; use one of {', '.join(self.OPS)}"
                )
            if not _is_integer(source):
                raise ArchError(
                    f"{where}, node {node}: input {_short(source)} must be an integer state index "
                    f"0..{node - 1} (0, 1 = cell inputs, 2.. = earlier nodes)"
                )
            if not 0 <= source < node:
                raise ArchError(
                    f"{where}, node {node}: input {source} is out of range; node {node} reads states "
                    f"0..{node - 1} (0, 1 = cell inputs, 2.. = earlier nodes)"
                )
            pairs.append((op, int(source)))
        for position in range(0, self.PAIRS, 2):
            source = pairs[position][1]
            if source == pairs[position + 1][1]:
                raise ArchError(
                    f"{where}, node {FIRST_NODE + position // 2}: both pairs read input {source}; the two "
                    "inputs of a node must be distinct (DARTS keeps edges from distinct nodes)"
                )
        return tuple(pairs)

    def _checked_concat(self, field: str, value: Any) -> tuple[int, ...]:
        # A range longer than a concat list is refused unexpanded (tuple(range(10**23)) never ends).
        short_range = isinstance(value, range) and not value[NODES:]
        entries = tuple(value) if _is_sequence(value) or short_range else ()
        valid = (
            entries
            and all(_is_integer(n) and n in DEFAULT_CONCAT for n in entries)
            and all(a < b for a, b in zip(entries, entries[1:]))
        )
        if not valid:
            raise ArchError(
                f"{self.LABEL} genotype: {field} must list nodes from 2..5 in increasing order without "
                f"repeats (usually [2, 3, 4, 5]), got {_short(value)}"
            )
        return tuple(int(n) for n in entries)

    # ---- encodings -------------------------------------------------------------------------
    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(name for cell in cls.CELLS for name in (cell, f"{cell}_concat"))

    def to_string(self) -> str:
        """The DARTS ``Genotype(...)`` text, e.g. ``Genotype(normal=[('sep_conv_3x3', 0), ...], ...)``."""
        fields = (f"{name}={list(getattr(self, name))!r}" for name in self.field_names())
        return f"Genotype({', '.join(fields)})"

    __str__ = to_string

    @classmethod
    def from_string(cls: type[G], text: str) -> G:
        """Read the ``Genotype(field=..., ...)`` text safely (``ast``, no ``eval``)."""
        usage = f"expected Genotype({'=..., '.join(cls.field_names())}=...)"
        unreadable = f"cannot read {cls.LABEL} genotype text {_short(text)}"
        try:
            call = ast.parse(text.strip(), mode="eval").body
        except SyntaxError as exc:
            raise ArchError(f"{unreadable}: {exc.msg}; {usage}") from None
        except (MemoryError, RecursionError):  # how CPython's parser gives up on very deep nesting
            raise ArchError(f"{unreadable}: nested too deeply; {usage}") from None
        if not (isinstance(call, ast.Call) and _is_name(call.func, "Genotype")):
            raise ArchError(f"{unreadable}: {usage}")
        if call.args or any(keyword.arg is None for keyword in call.keywords):
            raise ArchError(f"{cls.LABEL} genotype text must name every field as a keyword: {usage}")
        return cls._from_fields({kw.arg: _literal(kw.arg, kw.value) for kw in call.keywords})

    def to_json(self) -> dict:
        data: dict[str, Any] = {"space": self.SPACE}
        for cell in self.CELLS:
            data[cell] = [list(pair) for pair in getattr(self, cell)]
            data[f"{cell}_concat"] = list(getattr(self, f"{cell}_concat"))
        return data

    @classmethod
    def from_json(cls: type[G], data: dict) -> G:
        if not isinstance(data, dict) or data.get("space", cls.SPACE) != cls.SPACE:
            raise ArchError(
                f"not a {cls.LABEL} genotype JSON object (needs \"space\": \"{cls.SPACE}\"): {_short(data)}"
            )
        return cls._from_fields({k: v for k, v in data.items() if k != "space"}, ignore_unknown=True)

    @classmethod
    def _from_fields(cls: type[G], values: dict[str, Any], ignore_unknown: bool = False) -> G:
        expected = cls.field_names()
        missing = [name for name in expected if name not in values]
        unknown = [name for name in values if name not in expected]
        problems = [f"missing {', '.join(missing)}"] if missing else []
        if unknown and not ignore_unknown:
            problems.append(f"unknown {', '.join(unknown)}")
        if problems:
            raise ArchError(
                f"{cls.LABEL} genotype fields: {'; '.join(problems)}; expected {', '.join(expected)}"
            )
        return cls(**{name: values[name] for name in expected})

    @classmethod
    def published(cls: type[G]) -> dict[str, G]:
        """Published genotypes of this space by name (``robustnas.spaces._genotypes``)."""
        raise NotImplementedError

    @classmethod
    def parse(cls: type[G], value: Any) -> G:
        """Accept a genotype, its ``Genotype(...)`` text, its JSON object or text, or a published name
        (a genotype of a subclass, another space, is not one of this class)."""
        if type(value) is cls:
            return value
        if isinstance(value, dict):
            return cls.from_json(value)
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("{"):
                return cls.from_json(_json_object(cls.LABEL, text))
            if text.startswith("Genotype"):
                return cls.from_string(text)
            published = cls.published()
            name = text.upper().replace("-", "_")
            if name in published:
                return published[name]
        names = ", ".join(cls.published())
        raise ArchError(
            f"cannot read {cls.LABEL} genotype {_short(value)}: give a published name ({names}), "
            f"a Genotype({cls.CELLS[0]}=[...], ...) text or its JSON object"
        )

    # ---- search moves ----------------------------------------------------------------------
    @classmethod
    def sample(cls: type[G], rng: random.Random) -> G:
        """Uniform random genotype: per node two distinct inputs and two ops from ``SAMPLE_OPS``."""
        fields: dict[str, Any] = {}
        for cell in cls.CELLS:
            fields[cell] = tuple(
                (rng.choice(cls.SAMPLE_OPS), source)
                for node in range(FIRST_NODE, FIRST_NODE + NODES)
                for source in rng.sample(range(node), 2)
            )
            fields[f"{cell}_concat"] = DEFAULT_CONCAT
        return cls(**fields)

    def neighbours(self: G) -> list[G]:
        """All genotypes one move away: one pair of one cell gets a different op (input kept) or a
        different input that its node does not read yet (op kept); concat lists are kept."""
        result = []
        for cell in self.CELLS:
            pairs = getattr(self, cell)
            for position, (op, source) in enumerate(pairs):
                node, sibling = FIRST_NODE + position // 2, pairs[position ^ 1][1]
                ops = [other for other in self.SAMPLE_OPS if other != op]
                inputs = [other for other in range(node) if other not in (source, sibling)]
                result += [self._with(cell, position, (other, source)) for other in ops]
                result += [self._with(cell, position, (op, other)) for other in inputs]
        return result

    def mutate(self: G, rng: random.Random) -> G:
        """A uniformly chosen neighbour (see :meth:`neighbours`); the parent is left unchanged."""
        return rng.choice(self.neighbours())

    def _with(self: G, cell: str, position: int, pair: tuple[str, int]) -> G:
        pairs = list(getattr(self, cell))
        pairs[position] = pair
        return dataclasses.replace(self, **{cell: tuple(pairs)})


_SHORT = reprlib.Repr()
_SHORT.maxstring = _SHORT.maxother = 80
_SHORT.maxlevel = 3


def _short(value: Any) -> str:
    """A bounded repr for messages: long text and deep or huge literals are elided, never expanded."""
    return _SHORT.repr(value)


def _source(node: ast.expr) -> str:
    """A literal's source text for messages, elided in the middle when long."""
    text = ast.unparse(node)
    return text if len(text) <= 80 else f"{text[:38]}...{text[-38:]}"


def _json_object(label: str, text: str) -> Any:
    """``json.loads`` with every failure as one ArchError (deep nesting and over-long numbers included)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        reason = str(exc)
    except (RecursionError, ValueError):  # ValueError: an integer longer than Python's 4300-digit limit
        reason = "nested too deeply or a number too long for a genotype"
    raise ArchError(f"cannot read {label} genotype JSON {_short(text)}: {reason}")


def _is_sequence(value: Any) -> bool:
    return isinstance(value, (list, tuple))


def _is_integer(value: Any) -> bool:
    """True for ints (numpy ints included), False for bools."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_name(node: ast.expr, name: str) -> bool:
    return isinstance(node, ast.Name) and node.id == name


def _literal(field: str, node: ast.expr) -> Any:
    """A literal field value; ``range(a, b)`` (as in the published genotype files) becomes a tuple."""
    if isinstance(node, ast.Call) and _is_name(node.func, "range"):
        return _concat_range(field, node)
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError):
        raise ArchError(
            f"genotype text field {field}={_source(node)} is not a literal; write lists of "
            "('op', input) pairs and concat lists like [2, 3, 4, 5] or range(2, 6)"
        ) from None


def _concat_range(field: str, node: ast.Call) -> tuple[int, ...]:
    """``range(...)`` of integer literals as a tuple, refused before it is expanded when it would hold
    more than ``NODES`` entries (slicing and truth-testing a range stay lazy; ``len(range(10**23))``
    overflows)."""
    where = f"genotype text field {field}={_source(node)}"
    try:
        bounds = [ast.literal_eval(arg) for arg in node.args]
        values = range(*bounds) if not node.keywords and all(_is_integer(b) for b in bounds) else None
    except (ValueError, TypeError, SyntaxError):  # not literals, 0 or > 3 arguments, a zero step
        values = None
    if values is None:
        raise ArchError(f"{where}: range() takes 1 to 3 integers and a non-zero step, as in range(2, 6)")
    if values[NODES:]:
        raise ArchError(f"{where}: a concat list has at most {NODES} nodes (2..5), as in range(2, 6)")
    return tuple(values)


@dataclass(frozen=True)
class DartsGenotype(CellGenotype):
    """A DARTS genotype: normal and reduction cells, immutable and hashable (tuples only)."""

    normal: Pairs
    normal_concat: tuple[int, ...]
    reduce: Pairs
    reduce_concat: tuple[int, ...]

    SPACE: ClassVar[str] = "darts"
    LABEL: ClassVar[str] = "DARTS"
    CELLS: ClassVar[tuple[str, ...]] = ("normal", "reduce")
    OPS: ClassVar[tuple[str, ...]] = PRIMITIVES
    # A discretised DARTS cell never keeps `none` (DARTS §2.4), so searches draw from the other 7.
    SAMPLE_OPS: ClassVar[tuple[str, ...]] = tuple(op for op in PRIMITIVES if op != "none")

    @classmethod
    def published(cls) -> dict[str, "DartsGenotype"]:
        from robustnas.spaces._genotypes import DARTS_GENOTYPES  # _genotypes.py imports this module

        return DARTS_GENOTYPES


def reduction_cells(layers: int) -> tuple[int, int]:
    """Indices of the two reduction cells, ⌊L/3⌋ and ⌊2L/3⌋ (DARTS and ARNAS)."""
    return layers // 3, 2 * layers // 3


def check_network_size(label: str, channels: int, layers: int, num_classes: int) -> None:
    """Reject sizes the cell networks cannot build (two distinct reduction cells need L >= 3)."""
    if channels < 1 or layers < 3 or num_classes < 1:
        raise ArchError(
            f"{label} network needs C >= 1, layers >= 3 (reductions at L//3 and 2L//3) and num_classes >= 1, "
            f"got C={channels}, layers={layers}, num_classes={num_classes}"
        )


def cell_channels(channels: int, layers: int) -> tuple[int, ...]:
    """Channels per node of every cell: C, doubled at each reduction (C : 2C : 4C)."""
    first, second = reduction_cells(layers)
    return tuple(channels * (1 + (i >= first)) * (1 + (i >= second)) for i in range(layers))


class CellSpace(Space):
    """A space of DARTS-style genotypes (``GENOTYPE``, a :class:`CellGenotype`): genotypes are used
    as they are (their string names their network); random moves are the genotype's own.

    The flat encoding holds, per cell and node, the two inputs as one choice ``"i,j"`` (i < j,
    distinct as in ``sample``) and each input's op; it keeps the default concat [2, 3, 4, 5], and
    ``decode`` lists a node's lower input first, so ``decode(encode(g))`` is ``g`` up to that order.
    """

    GENOTYPE: ClassVar[type[CellGenotype]]
    NETWORK: ClassVar[str]  # the evaluation network's class in spaces/_darts_ops.py

    def network(self, arch: Any, num_classes: int, **sizes: Any):
        return self._network_type()(self.parse(arch), num_classes=num_classes, **(self.default_sizes | sizes))

    def supernet(self, num_classes: int, **sizes: Any):
        """The DARTS-style supernet over ``GENOTYPE.OPS`` with the evaluation network's layout."""
        if self.supernet_sizes is None:
            return super().supernet(num_classes, **sizes)
        from robustnas.spaces._supernet import CellSupernet

        size = self.supernet_sizes | sizes
        layout = self._network_type().layout(size["C"], size["layers"])
        missing = [cell for cell in self.GENOTYPE.CELLS if cell not in {kind for kind, _ in layout}]
        if missing:
            def complete(layers: int) -> bool:
                return {kind for kind, _ in self._network_type().layout(size["C"], layers)} >= set(self.GENOTYPE.CELLS)

            fewest = next(layers for layers in range(1, 64) if complete(layers))
            raise RobustnasError(
                f"{size['layers']} cells are too few for the {self.name} supernet: it would have no "
                f"{' or '.join(missing)} cell; give layers >= {fewest}"
            )
        return CellSupernet(self.GENOTYPE.OPS, layout, size["C"], num_classes)

    def discretize(self, supernet: Any) -> CellGenotype:
        return supernet.genotype(self.GENOTYPE)

    def _network_type(self) -> type:
        import importlib

        return getattr(importlib.import_module("robustnas.spaces._darts_ops"), self.NETWORK)

    def parse_value(self, value: Any) -> CellGenotype:
        return self.GENOTYPE.parse(value)

    def published(self) -> dict[str, CellGenotype]:
        return self.GENOTYPE.published()

    def random_arch(self, rng: random.Random) -> CellGenotype:
        return self.GENOTYPE.sample(rng)

    def mutate_once(self, arch: CellGenotype, rng: random.Random) -> CellGenotype:
        return arch.mutate(rng)

    def neighbours(self, arch: CellGenotype) -> list[CellGenotype]:
        return arch.neighbours()

    def choices(self) -> dict[str, tuple[Any, ...]]:
        result: dict[str, tuple[Any, ...]] = {}
        for cell in self.GENOTYPE.CELLS:
            for node in _nodes():
                result[f"{cell}_node{node}_inputs"] = tuple(f"{i},{j}" for i, j in combinations(range(node), 2))
                for slot in (0, 1):
                    result[f"{cell}_node{node}_op{slot}"] = tuple(self.GENOTYPE.SAMPLE_OPS)
        return result

    def encode(self, arch: Any) -> dict[str, Any]:
        arch = self.canonical(arch)
        result: dict[str, Any] = {}
        for cell in arch.CELLS:
            if getattr(arch, f"{cell}_concat") != DEFAULT_CONCAT:
                raise ArchError(
                    f"the flat encoding keeps the default concat {list(DEFAULT_CONCAT)}; the {cell} cell has another"
                )
            pairs = getattr(arch, cell)
            for slot, node in enumerate(_nodes()):
                first, second = sorted(pairs[2 * slot : 2 * slot + 2], key=lambda pair: pair[1])
                result[f"{cell}_node{node}_inputs"] = f"{first[1]},{second[1]}"
                result[f"{cell}_node{node}_op0"], result[f"{cell}_node{node}_op1"] = first[0], second[0]
        return result

    def decode_params(self, params: dict[str, Any]) -> CellGenotype:
        fields: dict[str, Any] = {}
        for cell in self.GENOTYPE.CELLS:
            pairs = []
            for node in _nodes():
                first, second = (int(i) for i in str(params[f"{cell}_node{node}_inputs"]).split(","))
                pairs += [(params[f"{cell}_node{node}_op0"], first), (params[f"{cell}_node{node}_op1"], second)]
            fields[cell], fields[f"{cell}_concat"] = tuple(pairs), DEFAULT_CONCAT
        return self.GENOTYPE(**fields)


def _nodes() -> range:
    return range(FIRST_NODE, FIRST_NODE + NODES)


class DartsSpace(CellSpace):
    """The DARTS space; networks: DARTS ``NetworkCIFAR`` (C=36, 20 cells, as the DARTS paper)."""

    name = "darts"
    label = "DARTS"
    summary = "DARTS normal + reduction cells (Liu et al. 2019), C=36, 20 cells"
    default_sizes = {"C": 36, "layers": 20}
    supernet_sizes = {"C": 16, "layers": 8}  # the DARTS search (DARTS §3.1.1)
    GENOTYPE, NETWORK = DartsGenotype, "DartsNetwork"


register(DartsSpace())
