"""Standard and adversarial training (PGD-AT, TRADES) with exact resume, a CSV log and curves.

    from robustnas.data import NormalizedModel, load_dataset
    from robustnas.train import TrainConfig, preact_resnet18, train
    model = NormalizedModel.for_dataset(preact_resnet18(10), "cifar10")   # takes [0,1] pixels
    config = TrainConfig(adversarial="pgd", attack_steps=10, milestones=(100, 150))
    result = train(model, load_dataset(path), load_dataset(path, split="test"), config, "runs/at")
    result.last["val_pgd_acc"]                       # RUN_DIR/log.csv, curves.png, final.pt

``run_training`` is ``robustnas train`` (train/_run.py): it builds the network of an architecture,
holds out the same images for every run (``training_split``, ``HOLDOUT_SEED``), records both in
RUN_DIR/model.json for ``robustnas evaluate`` and trains; ``default_milestones(epochs)`` is its schedule.

Networks of every space train the same way (``NormalizedModel.for_dataset(
spaces.build(...), dataset)``; DARTS/ARNAS nets with ``auxiliary=True`` for ``aux_weight``).
Killed and restarted on the same RUN_DIR, a run continues from its last epoch's checkpoint to
the same final weights as an uninterrupted run.
"""
from __future__ import annotations

from robustnas.train._batches import cutout
from robustnas.train._config import TrainConfig, drop_path_at, lr_at
from robustnas.train._loop import TrainResult, train
from robustnas.train._losses import trades_kl, training_loss
from robustnas.train._preact import PreActResNet18, preact_resnet18
from robustnas.train._run import HOLDOUT_SEED, TrainingRun, default_milestones, run_training, training_split

__all__ = [
    "HOLDOUT_SEED",
    "PreActResNet18",
    "TrainConfig",
    "TrainResult",
    "TrainingRun",
    "cutout",
    "default_milestones",
    "drop_path_at",
    "lr_at",
    "preact_resnet18",
    "run_training",
    "trades_kl",
    "train",
    "training_loss",
    "training_split",
]
