"""The Space protocol and the registry of search spaces.

A search space is one :class:`Space` subclass registered once::

    from robustnas.spaces import Space, register

    class ChainSpace(Space):
        name = "chain"
        ...                      # parse, random_arch, mutate, network (the abstract methods)

    register(ChainSpace())

Everything else in robustnas (``robustnas arch``, ``score``, ``search``, ``train``, the Optuna
encoding, the conformance checks of ``robustnas.testing``) asks the registered space and never
names one. Architectures are any immutable, hashable value whose ``str`` names them (a plain
string will do); the space turns them into networks (``nn.Module`` returning logits). Spaces in
other packages are loaded through the ``robustnas.plugins`` entry point group (``robustnas.plugins``).

Imports of torch belong inside :meth:`Space.network`, so that the registry (and with it the
command line's help) loads without it.
"""
from __future__ import annotations

import abc
import json
import os
import random
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

from robustnas._registry import lookup
from robustnas.errors import ArchError, RobustnasError

Arch = Any  # the architecture type of a space (NB201Arch, DartsGenotype, ...)


class Space(abc.ABC):
    """What a search space answers: encodings, random moves, the flat encoding and networks.

    Class attributes: ``name`` (the ``--space`` value), ``label`` (in messages), ``summary`` (one
    line of help), ``default_sizes`` (constructor sizes of the standard evaluation network),
    ``reads_files`` (a string naming a file is replaced by its text when parsed; ``.json`` files are
    read in every space), ``formats`` (the
    encodings ``robustnas arch convert --to`` writes), ``enumerable`` (``population`` lists every
    canonical architecture: ``--archs unique/all``, ``--unique``, exhaustive ranking, uniform
    sampling over it) and ``has_benchmark`` (architectures are rows of the NB201 robustness
    benchmark, ``benchmark_index``: ``bench:`` objectives and benchmark percentiles in results).
    """

    name: ClassVar[str]
    label: ClassVar[str]
    summary: ClassVar[str]
    default_sizes: ClassVar[dict[str, Any]]
    reads_files: ClassVar[bool] = True
    formats: ClassVar[tuple[str, ...]] = ("string", "json")
    enumerable: ClassVar[bool] = False
    has_benchmark: ClassVar[bool] = False
    supernet_sizes: ClassVar[dict[str, Any] | None] = None  # the search supernet's sizes, where it has one

    # ---- encodings ---------------------------------------------------------------------------
    @abc.abstractmethod
    def parse_value(self, value: Any) -> Arch:
        """An architecture from any accepted in-memory form (object, text, JSON object, name);
        a bad value raises ``ArchError`` with one line naming the problem and the fix."""

    def parse(self, value: Any) -> Arch:
        """:meth:`parse_value`, where a string naming an existing file stands for the file's text
        (``reads_files``), and a ``.json`` file (what :meth:`record` wrote: best_genotype.json,
        in every space) for the JSON value it holds."""
        is_file = isinstance(value, str) and (self.reads_files or value.endswith(".json")) and os.path.isfile(value)
        if is_file:
            value = read_text_file(Path(value))
            if not self.reads_files and value.startswith('"'):  # a record that is a JSON string
                try:
                    value = json.loads(value)
                except json.JSONDecodeError:
                    pass  # parse_value names the problem
        return self.parse_value(value)

    def record(self, arch: Arch) -> Any:
        """The JSON value that stores ``arch`` (model.json, best_genotype.json) and that parse reads
        back: its ``to_json()`` where the architecture type has one, else its string."""
        to_json = getattr(arch, "to_json", None)
        return to_json() if callable(to_json) else str(arch)

    def convert(self, arch: Arch, to: str) -> str:
        """``arch`` in the encoding ``to`` (one of ``formats``)."""
        if to == "json":
            return json.dumps(self.record(arch))
        if to == "string":
            return str(arch)
        raise ArchError(f"--to {to} does not exist for {self.name}; use one of {', '.join(self.formats)}")

    def describe(self, arch: Arch) -> dict[str, Any]:
        """Space-specific facts of ``arch`` for ``robustnas arch show`` (beyond its string)."""
        return {}

    def published(self) -> dict[str, Arch]:
        """Published architectures by name (data with citations in the space's module)."""
        return {}

    # ---- canonical forms and keys -------------------------------------------------------------
    def canonical(self, arch: Arch) -> Arch:
        """The representative of the architectures that compute the same function (default: itself)."""
        return self.parse(arch)

    def key(self, arch: Arch) -> str:
        """The string that names ``arch`` in the store and in result files."""
        return str(self.canonical(arch))

    def admissible(self, arch: Arch) -> bool:
        """Whether ``arch`` belongs to the space's searched set (CRoZe's space: <= 6 M parameters);
        a search tells a strategy -inf for an inadmissible one (the flat encoding reaches them)."""
        return True

    def benchmark_index(self, arch: Arch) -> int:
        """The row of ``arch`` in the space's ground-truth benchmark (spaces with ``has_benchmark``)."""
        raise RobustnasError(f"the {self.name} space has no benchmark; bench: objectives need nb201")

    # ---- random moves ------------------------------------------------------------------------
    @abc.abstractmethod
    def random_arch(self, rng: random.Random) -> Arch:
        """One uniformly random encoding (``robustnas arch sample``), drawn only from ``rng``."""

    @abc.abstractmethod
    def mutate_once(self, arch: Arch, rng: random.Random) -> Arch:
        """One random move away from ``arch`` (the parent is left unchanged)."""

    def neighbours(self, arch: Arch) -> list[Arch]:
        """Every architecture one move away, where finite (default: not offered)."""
        raise RobustnasError(f"the {self.name} space lists no neighbours; use a strategy that mutates")

    def sample(self, rng: random.Random) -> Arch:
        """A random canonical architecture, as searches draw them: uniform over the population where
        the space is enumerable (NB201: over the 6,466 classes), else the canonical form of
        :meth:`random_arch`."""
        if self.enumerable:
            return rng.choice(self._population)
        return self.canonical(self.random_arch(rng))

    def mutate(self, arch: Arch, rng: random.Random) -> Arch:
        """A random canonical neighbour that differs from ``arch``."""
        for _ in range(MUTATION_TRIES):
            child = self.canonical(self.mutate_once(arch, rng))
            if child != arch:
                return child
        raise RobustnasError(f"no mutation of {self.key(arch)} leaves its canonical form (isomorphism class)")

    def samples(self, n: int, seed: int, unique: bool = False) -> list[Arch]:
        """``n`` random encodings from ``seed`` (``robustnas arch sample``); ``unique`` draws
        distinct canonical representatives of an enumerable space instead."""
        if n < 0:
            raise RobustnasError(f"-n must be >= 0, got {n}")
        rng = random.Random(seed)
        if not unique:
            return [self.random_arch(rng) for _ in range(n)]
        if not self.enumerable:
            raise RobustnasError(f"--unique exists only for enumerable spaces (nb201), not {self.name}")
        population = self.population()
        if n > len(population):
            raise RobustnasError(f"{self.label} has {len(population)} unique architectures; asked for {n}")
        return rng.sample(population, n)

    # ---- enumeration -------------------------------------------------------------------------
    def population(self) -> list[Arch]:
        """Every canonical architecture, in a fixed order (enumerable spaces only)."""
        if not self.enumerable:
            raise RobustnasError(f"the {self.name} space is too large to enumerate; use another strategy")
        return list(self._population)  # a copy: callers shuffle it

    @cached_property
    def _population(self) -> list[Arch]:
        return self.enumerate_population()

    def enumerate_population(self) -> list[Arch]:
        """The canonical architectures of an enumerable space (called once, then cached)."""
        raise NotImplementedError

    def all_encodings(self) -> list[Arch]:
        """Every encoding, isomorphs included (``--archs all``); default: the population."""
        return self.population()

    # ---- flat categorical encoding (Optuna) ------------------------------------------------------
    @abc.abstractmethod
    def choices(self) -> dict[str, tuple[Any, ...]]:
        """Parameter name -> its categorical choices; every full assignment decodes to a valid arch."""

    @abc.abstractmethod
    def encode(self, arch: Arch) -> dict[str, Any]:
        """``arch`` (canonical) as one choice per parameter of :meth:`choices`."""

    @abc.abstractmethod
    def decode_params(self, params: dict[str, Any]) -> Arch:
        """The architecture of a full assignment of :meth:`choices` (checked by :meth:`decode`)."""

    def decode(self, params: dict[str, Any]) -> Arch:
        """The canonical architecture of a full assignment of :meth:`choices`."""
        missing = [name for name in self.choices() if name not in params]
        if missing:
            raise RobustnasError(f"{self.name} encoding lacks {', '.join(missing[:3])}; give every parameter")
        return self.canonical(self.decode_params(params))

    # ---- networks ----------------------------------------------------------------------------
    @abc.abstractmethod
    def network(self, arch: Arch, num_classes: int, **sizes: Any):
        """The network of ``arch`` (an ``nn.Module`` returning logits) with ``default_sizes``
        overridden by ``sizes``."""

    def supernet(self, num_classes: int, **sizes: Any):
        """The space's supernet for differentiable search (``supernet_sizes`` overridden by ``sizes``):
        an ``nn.Module`` with ``arch_parameters()``, ``weight_parameters()`` and ``forward(x)``."""
        raise RobustnasError(f"the {self.name} space has no supernet; differentiable search needs one of {_with_supernet()}")

    def discretize(self, supernet: Any) -> Arch:
        """The architecture a trained supernet of this space stands for."""
        raise RobustnasError(f"the {self.name} space has no supernet; differentiable search needs one of {_with_supernet()}")

    def sizes_for(self, dataset: str) -> dict[str, Any]:
        """The standard evaluation sizes on ``dataset`` (default: ``default_sizes``)."""
        return dict(self.default_sizes)


MUTATION_TRIES = 100
REGISTRY: dict[str, Space] = {}


def register(space: Space) -> Space:
    """Add ``space`` under ``space.name`` (a second space of that name is an error)."""
    if not isinstance(space, Space):
        raise TypeError(f"register() takes a Space instance, got {type(space).__name__}")
    missing = [name for name in ("name", "label", "summary", "default_sizes") if not getattr(space, name, None)]
    if missing:
        raise RobustnasError(f"{type(space).__name__} cannot be registered: set its {', '.join(missing)}")
    if space.name in REGISTRY and type(REGISTRY[space.name]) is not type(space):
        raise RobustnasError(f"a search space named {space.name!r} is already registered")
    REGISTRY[space.name] = space
    return space


def unregister(name: str) -> None:
    """Remove a registered space (tests that register a toy space clean up with this)."""
    REGISTRY.pop(name, None)


def get(name: str) -> Space:
    """The registered space ``name``, or a one-line error listing the known ones."""
    if isinstance(name, Space):
        return name
    if name in REGISTRY:  # the common case: no sorted copy for the error message
        return REGISTRY[name]
    return lookup(dict(sorted(REGISTRY.items())), name, "search space")


def names() -> tuple[str, ...]:
    """Names of the registered spaces, sorted (whatever order their modules were imported in)."""
    return tuple(sorted(REGISTRY))


def list_spaces() -> dict[str, str]:
    """Name -> one-line summary of every registered space, sorted by name."""
    return {name: REGISTRY[name].summary for name in names()}


def _with_supernet() -> str:
    return ", ".join(name for name in sorted(REGISTRY) if REGISTRY[name].supernet_sizes is not None)


def read_text_file(path: Path) -> str:
    """The stripped text of a small UTF-8 file, or one clear error."""
    try:
        return path.read_text(encoding="utf-8").strip()
    except UnicodeDecodeError:
        raise RobustnasError(f"{path}: not a UTF-8 text file") from None
