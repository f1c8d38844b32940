"""RUN_DIR/model.json: how to rebuild a trained network, so a checkpoint path is all that
``robustnas evaluate`` needs; and loading a checkpoint's weights into that network.

model.json (written by ``robustnas train`` before the first epoch)::

    {"format": "robustnas-model", "version": 1,
     "network": a registered space ("nb201", "darts", "arnas", "croze-darts", ...) | "resnet18",
     "arch": the space's stored form (NB201 string, genotype JSON object) | null (resnet18),
     "dataset": "cifar10", "num_classes": 10,
     "options": constructor sizes, e.g. {"channels": 16, "cells_per_stage": 5},
     "data": {"path": ..., "holdout": ..., "limit": ...}}   # the training images (train/_run.py)

Sizes are each space's standard evaluation sizes for the dataset (``Space.sizes_for``: NB201 C=16,
5 cells per stage; DARTS C=36, 20 cells; ARNAS C=64, 20 cells, and on Tiny-ImageNet-200 C=84, 14
cells as ARNAS trains it, crose-and-arnas.md §B.5) and He et al.'s PreAct ResNet-18, all wrapped in
``NormalizedModel`` with the dataset's constants, so they take [0,1] pixels of any size (global
average pooling before the classifier).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from robustnas.data._names import canonical_dataset
from robustnas.errors import RobustnasError
from robustnas._files import replace_file
from robustnas.train._checkpoint import FORMAT as CHECKPOINT_FORMAT
from robustnas.train._checkpoint import VERSION as CHECKPOINT_VERSION
from robustnas.train._checkpoint import state_dict_problems

MODEL_FILE = "model.json"
FORMAT = "robustnas-model"
VERSION = 1
RESNET18 = "resnet18"
RESNET18_OPTIONS: dict[str, Any] = {"bn_before_fc": True}
WEIGHT_FILES = ("final.pt", "checkpoint.pt")  # a run directory's weights, in order of preference


@dataclass(frozen=True)
class ModelSpec:
    """One network: which family, which architecture, for which dataset and class count."""

    network: str
    arch: str | dict | None
    dataset: str
    num_classes: int
    options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_arch(cls, arch: str, space: str, dataset: str, num_classes: int) -> "ModelSpec":
        """``arch`` is "resnet18" or an architecture of ``space`` in any form ``spaces.parse`` reads
        (NB201 string/tuple/index, DARTS/ARNAS genotype text, JSON, JSON file or published name)."""
        from robustnas import spaces

        if arch.strip().lower() == RESNET18:
            return cls(RESNET18, None, dataset, num_classes, dict(RESNET18_OPTIONS))
        chosen = spaces.get(space)
        parsed = chosen.parse(arch)
        return cls(chosen.name, chosen.record(parsed), dataset, num_classes, chosen.sizes_for(canonical_dataset(dataset)))

    def describe(self) -> str:
        """"nb201 |...|", "darts Genotype(...)" or "resnet18": the architecture in error messages."""
        if self.network == RESNET18:
            return RESNET18
        from robustnas import spaces

        return f"{self.network} {spaces.parse(self.network, self.arch)}"

    def build(self) -> nn.Module:
        """A freshly initialised network (global torch RNG) in a NormalizedModel for the dataset."""
        from robustnas.data import NormalizedModel

        return NormalizedModel.for_dataset(self._network(), self.dataset)

    def _network(self) -> nn.Module:
        if self.network == RESNET18:
            from robustnas.train._preact import preact_resnet18

            return preact_resnet18(self.num_classes, **self.options)
        from robustnas import spaces

        return spaces.get(self.network).network(self.arch, self.num_classes, **self.options)

    def to_json(self) -> dict[str, Any]:
        return {"network": self.network, "arch": self.arch, "dataset": self.dataset,
                "num_classes": self.num_classes, "options": self.options}

    @classmethod
    def from_json(cls, data: dict[str, Any], source: Path) -> "ModelSpec":
        """The spec in a model.json object, checked enough that ``build`` fails only on bad sizes."""
        from robustnas import spaces

        networks = (*spaces.names(), RESNET18)
        fields_ok = (
            data.get("network") in networks
            and isinstance(data.get("dataset"), str)
            and type(data.get("num_classes")) is int and data["num_classes"] >= 1
            and isinstance(data.get("options"), dict)
            and (data.get("arch") is None) == (data.get("network") == RESNET18)
        )
        if not fields_ok:
            raise RobustnasError(
                f"{source}: needs network ({', '.join(networks)}), arch (null only for resnet18), dataset, "
                "num_classes (>= 1) and options; restore it as robustnas train wrote it"
            )
        return cls(data["network"], data["arch"], data["dataset"], data["num_classes"], data["options"])


def write_model_json(run_dir: Path, spec: ModelSpec, data: dict[str, Any]) -> None:
    """Write RUN_DIR/model.json; where it exists, the network and data must be the ones it records
    (resuming a run with another --arch would train or evaluate the wrong weights)."""
    path = run_dir / MODEL_FILE
    record = {"format": FORMAT, "version": VERSION, **spec.to_json(), "data": data}
    if path.exists():
        stored = _read_json(path)
        changed = [key for key in record if stored.get(key) != record[key]]
        if changed:
            diffs = "; ".join(f"{key}: {_short(stored.get(key))} -> {_short(record[key])}" for key in changed)
            raise RobustnasError(
                f"{run_dir} holds a run of another network or data ({diffs}); resume with the same "
                "--arch/--space/--dataset/--data/--holdout/--limit, or give another --out"
            )
    run_dir.mkdir(parents=True, exist_ok=True)
    replace_file(path, json.dumps(record, indent=2) + "\n")


def read_model_json(run_dir: Path) -> tuple[ModelSpec, dict[str, Any]]:
    """(spec, training-data record) of RUN_DIR/model.json."""
    path = run_dir / MODEL_FILE
    if not path.is_file():
        raise RobustnasError(
            f"no {MODEL_FILE} in {run_dir}: evaluate a run directory written by robustnas train "
            "(or write model.json for your checkpoint)"
        )
    stored = _read_json(path)
    if stored.get("format") != FORMAT or stored.get("version") != VERSION:
        raise RobustnasError(f"{path}: not a robustnas model description (version {VERSION})")
    data = stored.get("data") or {}
    if not isinstance(data, dict) or not isinstance(data.get("path"), (str, type(None))):
        raise RobustnasError(f"{path}: data must be an object whose path is a string or null; restore it as robustnas train wrote it")
    return ModelSpec.from_json(stored, path), data


def resolve_checkpoint(path: Path) -> Path:
    """The weights file: ``path`` itself, or a run directory's final.pt (else its checkpoint.pt)."""
    if path.is_dir():
        for name in WEIGHT_FILES:
            if (path / name).is_file():
                return path / name
        raise RobustnasError(f"{path} holds neither {' nor '.join(WEIGHT_FILES)}: train first, or give the file")
    if not path.is_file():
        raise RobustnasError(f"no checkpoint at {path}: give a run directory or its final.pt/checkpoint.pt")
    return path


def load_weights(path: Path) -> dict[str, torch.Tensor]:
    """The model state dict of final.pt (a state dict) or checkpoint.pt (its "model"), read
    with ``weights_only=True`` on the CPU."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for corrupt or foreign files
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise RobustnasError(f"{path}: not a readable checkpoint ({first_line})") from None
    if isinstance(payload, dict) and payload.get("format") == CHECKPOINT_FORMAT:
        if payload.get("version") != CHECKPOINT_VERSION:
            raise RobustnasError(
                f"{path}: training checkpoint version {payload.get('version')}, need {CHECKPOINT_VERSION}"
            )
        payload = payload.get("model")
    if not (isinstance(payload, dict) and payload and all(isinstance(v, torch.Tensor) for v in payload.values())):
        raise RobustnasError(
            f"{path}: holds no model state dict (expected final.pt or checkpoint.pt of robustnas train)"
        )
    return payload


@dataclass(frozen=True)
class LoadedModel:
    """A trained network ready to evaluate, and where it came from."""

    model: nn.Module  # weights loaded, eval mode, on the CPU
    spec: ModelSpec
    data: dict[str, Any]  # model.json's training-data record
    weights_file: Path
    digest: str  # weights_digest of the loaded state dict


def load_model(checkpoint: Path) -> LoadedModel:
    """The network of a run directory or weights file whose folder holds model.json, with its
    weights; a state dict that does not fit the described network is a one-line error."""
    weights_file = resolve_checkpoint(checkpoint)
    spec, data = read_model_json(weights_file.parent)
    try:
        model = spec.build()
    except RobustnasError:
        raise
    except (TypeError, ValueError, KeyError, RuntimeError) as error:  # options model.json should not hold
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise RobustnasError(
            f"{weights_file.parent / MODEL_FILE}: cannot build {spec.describe()} ({reason}); "
            "restore it as robustnas train wrote it"
        ) from None
    state = load_weights(weights_file)
    problems = state_dict_problems(model, state)
    if problems:
        raise RobustnasError(
            f"{weights_file} does not match {spec.describe()} of {weights_file.parent / MODEL_FILE} "
            f"({'; '.join(problems)}); fix model.json or give the checkpoint of that network"
        )
    model.load_state_dict(state)
    return LoadedModel(model.eval(), spec, data, weights_file, weights_digest(state))


def weights_digest(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 over the names, dtypes, shapes and bytes of a state dict: identifies the weights
    whatever file holds them (final.pt and the last checkpoint.pt give the same digest)."""
    digest = hashlib.sha256()
    for key in sorted(state):
        tensor = state[key].detach().cpu()
        digest.update(f"{key}|{tensor.dtype}|{list(tensor.shape)}|".encode())
        digest.update(tensor.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise RobustnasError(f"{path}: unreadable JSON ({error}); restore it as robustnas train wrote it") from None
    if not isinstance(data, dict):
        raise RobustnasError(f"{path}: not a JSON object; restore it as robustnas train wrote it")
    return data


def _short(value: Any) -> str:
    text = json.dumps(value, separators=(",", ":"))
    return text if len(text) <= 120 else text[:117] + "..."
