"""``robustnas train`` as one call: the run's images, its network, then :func:`~robustnas.train.train`.

    from robustnas.train import TrainConfig, default_milestones, run_training
    config = TrainConfig(epochs=200, milestones=default_milestones(200), adversarial="pgd")
    run = run_training("DARTS_V2", config, "runs/darts-at", space="darts", data="cifar-10-batches-py")
    run.result.last["val_pgd_acc"], run.trained, run.held_out

The images come from the train split of ``data``: :func:`training_split` holds out the same
``holdout`` images for every run (a permutation seeded with HOLDOUT_SEED, whatever the config's
seed) for the per-epoch log, and trains on the next ``limit``. RUN_DIR/model.json records the
network and these images, so ``robustnas evaluate`` needs only the run directory.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from robustnas.data import ImageSet, data_path, load_dataset, require_data
from robustnas._device import require_device
from robustnas.errors import RobustnasError
from robustnas.train._config import TrainConfig
from robustnas.train._loop import TrainResult, train
from robustnas.train._model_spec import RESNET18, ModelSpec, write_model_json

HOLDOUT_SEED = 0  # the held-out split is the same for every run, whatever the training seed
HOLDOUT = 1000  # held-out images of the per-epoch log (Rice et al. 2020)
DEFAULT_SPACE = "nb201"


@dataclass(frozen=True)
class TrainingRun:
    """A finished :func:`run_training`: the training result and how many images each split held."""

    result: TrainResult
    trained: int
    held_out: int


def default_milestones(epochs: int) -> tuple[int, ...]:
    """lr x0.1 at 1/2 and 3/4 of the epochs: CRoZe's epochs 100 and 150 of 200 (TrainConfig)."""
    return tuple(sorted({m for m in (epochs // 2, 3 * epochs // 4) if m > 0}))


def training_split(
    data: str | Path | None, dataset: str, holdout: int, limit: int | None, batch_size: int
) -> tuple[ImageSet, ImageSet]:
    """(training images, held-out images) from the train split: a permutation seeded with
    HOLDOUT_SEED; its first ``holdout`` images are held out, the next ``limit`` (default: all the
    rest) are trained on, each set kept in file order. At least ``batch_size`` images must be left
    to train on (one-line errors otherwise)."""
    images = load_dataset(data, dataset, split="train")
    left = len(images) - holdout
    if holdout < 1 or left < 1:
        raise RobustnasError(
            f"--holdout must be in 1..{len(images) - 1} for {len(images)} training images, got {holdout}"
        )
    if limit is not None and not 1 <= limit <= left:
        raise RobustnasError(
            f"--limit must be in 1..{left} (training images left after --holdout {holdout}), got {limit}"
        )
    order = np.random.default_rng(HOLDOUT_SEED).permutation(len(images))
    trained = order[holdout:] if limit is None else order[holdout : holdout + limit]
    if len(trained) < batch_size:
        raise RobustnasError(
            f"{len(trained)} training images are fewer than one batch (--batch-size {batch_size}); "
            "lower --batch-size or raise --limit"
        )
    return images.subset(np.sort(trained)), images.subset(np.sort(order[:holdout]))


def run_training(
    arch: str,
    config: TrainConfig,
    out: str | Path,
    *,
    space: str | None = None,
    dataset: str = "cifar10",
    data: str | Path | None = None,
    holdout: int = HOLDOUT,
    limit: int | None = None,
    device: str = "cpu",
    progress: bool = True,
) -> TrainingRun:
    """Train ``arch`` (an architecture of ``space``, default nb201; or "resnet18", with no space) on
    :func:`training_split` of ``data`` (default: the embedded CIFAR-10 sample) into ``out``.

    The arguments are checked before any file is written; model.json is written before the first
    epoch; the initial weights are drawn from ``config.seed``. The same call on the same ``out``
    resumes a stopped run (another network or other images there are refused).
    """
    require_device(device, config.amp)
    require_data(data, dataset)
    if arch.strip().lower() == RESNET18 and space is not None:
        raise RobustnasError("resnet18 belongs to no search space; drop --space")
    train_set, held_out = training_split(data, dataset, holdout, limit, config.batch_size)
    spec = ModelSpec.from_arch(arch, space or DEFAULT_SPACE, dataset, train_set.num_classes)
    write_model_json(Path(out), spec, {"path": data_path(data), "holdout": holdout, "limit": limit})
    torch.manual_seed(config.seed)  # the initial weights (a resumed run loads its checkpoint's)
    result = train(spec.build().to(device), train_set, held_out, config, out, progress=progress)
    return TrainingRun(result, len(train_set), len(held_out))
