"""Search spaces: a registry of :class:`Space` objects, full on import, and a small front door.

    from robustnas import spaces
    spaces.names()                                   # ('arnas', 'croze-darts', 'darts', 'nb201')
    space = spaces.get("darts")                      # parse, sample, mutate, encode, network ...
    net = spaces.build("darts", "DARTS_V2", "cifar10")   # the standard evaluation network

``parse(space, value)`` reads an architecture in any accepted form, ``build(space, arch, dataset)``
makes its network, ``describe``/``convert``/``sample`` serve the ``robustnas arch`` commands. A new
space is one module with a :class:`Space` subclass and ``register(MySpace())``: every public module
of this package is a space and is imported here (helpers are private, ``_name.py``); a space of
another package is loaded through ``robustnas.plugins``. ``robustnas.testing.check_space`` says
what a space must pass.
"""
from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from robustnas.errors import RobustnasError
from robustnas.spaces._base import REGISTRY, Arch, Space, get, list_spaces, names, read_text_file, register, unregister

NUM_CLASSES = {"cifar10": 10, "cifar100": 100, "ImageNet16-120": 120}
INPUT_SIZE = {"cifar10": 32, "cifar100": 32, "ImageNet16-120": 16}

__all__ = [
    "INPUT_SIZE",
    "NUM_CLASSES",
    "REGISTRY",
    "Arch",
    "Space",
    "build",
    "check_dataset",
    "convert",
    "describe",
    "get",
    "list_spaces",
    "names",
    "parse",
    "read_text_file",
    "register",
    "sample",
    "unregister",
]

for _module in sorted(info.name for info in pkgutil.iter_modules(__path__) if not info.name.startswith("_")):
    importlib.import_module(f"{__name__}.{_module}")  # each public module registers its space


def check_dataset(dataset: str) -> None:
    """One-line error for a dataset that has no class count and image size here."""
    if dataset not in NUM_CLASSES:
        raise RobustnasError(f"unknown dataset {dataset!r}; choose one of {', '.join(NUM_CLASSES)}")


def parse(space: str | Space, value: Any) -> Arch:
    """An architecture of ``space`` from any accepted form (see each space's ``parse``); for
    spaces that read files, a string naming an existing file stands for the file's text."""
    return get(space).parse(value)


def build(space: str | Space, arch: Any, dataset: str = "cifar10", **sizes: Any):
    """The standard evaluation network of ``arch`` for ``dataset`` (an ``nn.Module`` returning
    logits): NB201 C=16, 5 cells per stage; DARTS C=36, 20 cells (DARTS paper); ARNAS C=64, 20
    cells (ARNAS code); CRoZe's space C=36, 20 cells. ``sizes`` override them. No auxiliary head
    here; the trainer adds it on request."""
    space = get(space)
    check_dataset(dataset)
    return space.network(space.parse(arch), NUM_CLASSES[dataset], **sizes)


def describe(space: str | Space, value: Any, dataset: str = "cifar10") -> dict[str, Any]:
    """Encodings, parameter and FLOP counts (suite units: millions) of one architecture."""
    from robustnas.spaces._counting import count

    space = get(space)
    arch = space.parse(value)
    size = INPUT_SIZE.get(dataset)
    counts = count(build(space, arch, dataset), (1, 3, size, size))
    info: dict[str, Any] = {"space": space.name, "dataset": dataset, "string": str(arch)}
    info.update(space.describe(arch))
    info.update(params_m=counts.params_m, flops_m=counts.flops_m)
    return info


def convert(space: str | Space, value: Any, to: str) -> str:
    """Another encoding of the same architecture (one of the space's ``formats``)."""
    space = get(space)
    return space.convert(space.parse(value), to)


def sample(space: str | Space, n: int, seed: int, unique: bool = False) -> list[Arch]:
    """``n`` random architectures (seeded); ``unique`` keeps canonical representatives (NB201)."""
    return get(space).samples(n, seed, unique)
