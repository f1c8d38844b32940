"""Search spaces: NAS-Bench-201, DARTS and ARNAS, behind one small front door.

``parse(space, value)`` reads an architecture in any accepted form, ``build(space, arch, dataset)``
makes its network, ``describe``/``convert``/``sample`` serve the ``robustnas arch`` commands.
"""
from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

from robustnas.errors import ArchError, RobustnasError

SPACES = ("nb201", "darts", "arnas")
NUM_CLASSES = {"cifar10": 10, "cifar100": 100, "ImageNet16-120": 120}
INPUT_SIZE = {"cifar10": 32, "cifar100": 32, "ImageNet16-120": 16}


def check_space(space: str, dataset: str | None = None) -> None:
    """One-line errors for an unknown space or dataset."""
    if space not in SPACES:
        raise RobustnasError(f"unknown search space {space!r}; choose one of {', '.join(SPACES)}")
    if dataset is not None and dataset not in NUM_CLASSES:
        raise RobustnasError(f"unknown dataset {dataset!r}; choose one of {', '.join(NUM_CLASSES)}")


def _genotype_type(space: str) -> Any:
    if space == "nb201":
        from robustnas.spaces.nb201 import NB201Arch

        return NB201Arch
    if space == "darts":
        from robustnas.spaces.darts import DartsGenotype

        return DartsGenotype
    from robustnas.spaces.arnas import ArnasGenotype

    return ArnasGenotype


def parse(space: str, value: Any) -> Any:
    """An architecture of ``space`` from any accepted form (see each type's ``parse``).

    For DARTS and ARNAS, a string naming an existing file is replaced by the file's text (a
    genotype or JSON file); NB201 architectures are always given inline.
    """
    check_space(space)
    if space != "nb201" and isinstance(value, str) and os.path.isfile(value):
        value = read_text_file(Path(value))
    return _genotype_type(space).parse(value)


def read_text_file(path: Path) -> str:
    """The stripped text of a small UTF-8 file, or one clear error."""
    try:
        return path.read_text(encoding="utf-8").strip()
    except UnicodeDecodeError:
        raise RobustnasError(f"{path}: not a UTF-8 text file") from None


def build(space: str, arch: Any, dataset: str = "cifar10"):
    """The evaluation network of ``arch`` for ``dataset`` (an ``nn.Module`` returning logits).

    Standard evaluation sizes: NB201 C=16, 5 cells per stage; DARTS C=36, 20 cells (DARTS paper);
    ARNAS C=64, 20 cells (ARNAS code). No auxiliary head here; the trainer adds it on request.
    """
    check_space(space, dataset)
    arch = parse(space, arch)
    if space == "nb201":
        from robustnas.spaces.nb201_net import build_nb201

        return build_nb201(arch, dataset)
    if space == "darts":
        from robustnas.spaces.darts import DartsNetwork

        return DartsNetwork(arch, C=36, layers=20, num_classes=NUM_CLASSES[dataset])
    from robustnas.spaces.arnas import ArnasNetwork

    return ArnasNetwork(arch, C=64, layers=20, num_classes=NUM_CLASSES[dataset])


def describe(space: str, value: Any, dataset: str = "cifar10") -> dict[str, Any]:
    """Encodings, parameter and FLOP counts (suite units: millions) of one architecture."""
    from robustnas.spaces.counting import count

    arch = parse(space, value)
    size = INPUT_SIZE[dataset]
    counts = count(build(space, arch, dataset), (1, 3, size, size))
    info: dict[str, Any] = {"space": space, "dataset": dataset, "string": str(arch)}
    if space == "nb201":
        info.update(
            ops=list(arch.ops),
            index=arch.index,
            isomorph_index=arch.isomorph_index,
            unique_string=arch.unique_string(),
        )
    info.update(params_m=counts.params_m, flops_m=counts.flops_m)
    return info


def convert(space: str, value: Any, to: str) -> str:
    """Another encoding of the same architecture: tuple, string, index (NB201) or json."""
    import json

    arch = parse(space, value)
    if to == "json":
        return json.dumps(arch.to_json())
    if to == "string":
        return str(arch)
    if space != "nb201":
        raise ArchError(f"--to {to} exists only for NB201; use string or json for {space}")
    return str(arch.ops) if to == "tuple" else str(arch.index)


def sample(space: str, n: int, seed: int, unique: bool = False) -> list[Any]:
    """``n`` random architectures (seeded); ``unique`` keeps NB201 isomorphism representatives."""
    check_space(space)
    if n < 0:
        raise RobustnasError(f"-n must be >= 0, got {n}")
    rng = random.Random(seed)
    if space == "nb201" and unique:
        from robustnas.spaces.nb201 import NUM_UNIQUE, NB201Arch, unique_indices

        if n > NUM_UNIQUE:
            raise RobustnasError(f"NB201 has {NUM_UNIQUE} unique architectures; asked for {n}")
        return [NB201Arch.from_index(int(i)) for i in rng.sample(list(unique_indices()), n)]
    if unique:
        raise RobustnasError("--unique exists only for NB201 (isomorphism classes)")
    kind = _genotype_type(space)
    return [kind.sample(rng) for _ in range(n)]
