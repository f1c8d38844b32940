"""Checkpoints that resume bit for bit: written atomically, read with ``torch.load(weights_only=True)``.

Contents (tensors, dicts, lists, numbers, strings, None only): format, version, epoch (epochs
done), config (``TrainConfig.to_dict``), model and optimizer state dicts, the GradScaler state
(empty without AMP), the log rows so far, and the torch (CPU and CUDA), numpy and python global
RNG states, the python and numpy ones as int64 tensors. The lr schedule is a closed form of the
epoch (``config.lr_at``), so the epoch is its whole state.
"""
from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from robustnas.errors import RobustnasError
from robustnas._files import torch_save

FORMAT = "robustnas-train-checkpoint"
VERSION = 1


def rng_state(cuda: bool) -> dict[str, Any]:
    """The global RNG states of torch (CPU, and every CUDA device when ``cuda``), numpy and python.
    ``cuda`` is False for CPU training, so a CPU run on a GPU machine does not initialise CUDA."""
    _, keys, position, has_gauss, gauss = np.random.get_state()
    version, words, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if cuda else [],
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(position),
                  "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "python": {"version": int(version), "words": torch.tensor(words, dtype=torch.int64), "gauss_next": gauss_next},
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured (CUDA states only where the device count matches)."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
    numpy = state["numpy"]
    np.random.set_state(
        ("MT19937", numpy["keys"].numpy().astype(np.uint32), numpy["pos"], numpy["has_gauss"], numpy["gauss"])
    )
    python = state["python"]
    random.setstate((python["version"], tuple(python["words"].tolist()), python["gauss_next"]))


def seed_everything(seed: int) -> None:
    """Seed the torch, numpy and python global RNGs (model-internal randomness such as drop path)."""
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


def save_checkpoint(path: Path, payload: dict[str, Any], kind: str = FORMAT) -> None:
    """Write to a temporary file in the same folder, flush to disk, then rename over ``path``,
    so a kill at any moment leaves either the old or the new checkpoint, never a partial one.
    ``kind`` names what it holds (a training run by default; a search's is another format)."""
    torch_save(path, {"format": kind, "version": VERSION, **payload})


def load_checkpoint(path: Path, kind: str = FORMAT) -> dict[str, Any]:
    """A checkpoint of ``kind`` written by :func:`save_checkpoint`, loaded on the CPU with weights_only=True."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for corrupt or foreign files
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise RobustnasError(f"{path}: not a readable checkpoint ({first_line}); delete it to start over") from None
    if not isinstance(payload, dict) or payload.get("format") != kind or payload.get("version") != VERSION:
        what = "training" if kind == FORMAT else "search"
        raise RobustnasError(f"{path}: not a robustnas {what} checkpoint (version {VERSION}); delete it to start over")
    return payload


def state_dict_problems(model: nn.Module, state: dict[str, torch.Tensor]) -> list[str]:
    """``missing: ...``, ``unexpected: ...``, ``shape: ...`` (three names each at most), or [] when
    ``state`` fits ``model`` exactly."""
    own = model.state_dict()
    problems = []
    missing = [key for key in own if key not in state]
    unexpected = [key for key in state if key not in own]
    shapes = [
        f"{key} {list(state[key].shape)} vs model {list(own[key].shape)}"
        for key in own
        if key in state and tuple(state[key].shape) != tuple(own[key].shape)
    ]
    for label, items in (("missing", missing), ("unexpected", unexpected), ("shape", shapes)):
        if items:
            more = f" and {len(items) - 3} more" if len(items) > 3 else ""
            problems.append(f"{label}: {', '.join(items[:3])}{more}")
    return problems


def check_state_dict(model: nn.Module, state: dict[str, torch.Tensor], source: Path) -> None:
    """One-line error naming the missing, unexpected and differently shaped entries, if any."""
    problems = state_dict_problems(model, state)
    if problems:
        raise RobustnasError(
            f"{source} does not match the model ({'; '.join(problems)}); use the network it was "
            "trained with or another run directory"
        )
