"""``train``: the epoch loop with a checkpoint, a log row and a curve plot after every epoch.

RUN_DIR layout: checkpoint.pt (everything needed to resume, see checkpoint.py), log.csv and
curves.png (the rows so far), final.pt (the model's state dict, written when the run ends). A
RUN_DIR that holds a checkpoint is resumed; a resumed run ends with the same weights, bit for
bit, as an uninterrupted one on the same device and software (CPU; on CUDA also needs
deterministic kernels, e.g. ``torch.use_deterministic_algorithms(True)``).
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from robustnas.attacks import PGD, accuracy, robust_accuracy
from robustnas.errors import RobustnasError
from robustnas._files import torch_save
from robustnas._progress import LoopProgress
from robustnas.train._batches import Pixels, as_pixels, epoch_batches, eval_batches
from robustnas.train._checkpoint import (
    check_state_dict,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    seed_everything,
    set_rng_state,
)
from robustnas.train._config import TrainConfig, config_differences, drop_path_at, lr_at
from robustnas.train._log import plot_curves, write_csv
from robustnas.train._losses import AttackView, batch_seed, optimizer_step, training_loss

CHECKPOINT, LOG, CURVES, FINAL = "checkpoint.pt", "log.csv", "curves.png", "final.pt"

EpochHook = Callable[[int, dict[str, Any]], None]


@dataclass(frozen=True)
class TrainResult:
    """Where the run lives, its log rows (as in log.csv) and how many epochs it resumed after."""

    run_dir: Path
    log: list[dict[str, Any]]
    resumed_after: int

    @property
    def final(self) -> Path:
        return self.run_dir / FINAL

    @property
    def last(self) -> dict[str, Any]:
        return self.log[-1]


def train(
    model: nn.Module,
    train_data: Any,
    val_data: Any,
    config: TrainConfig,
    run_dir: str | Path,
    *,
    on_epoch_end: EpochHook | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train ``model`` in place per ``config``; resume from RUN_DIR/checkpoint.pt when it exists.

    ``model`` takes [0,1] pixels [N,3,H,W] (wrap a network in ``robustnas.data.NormalizedModel``)
    and lives on the device to train on. ``train_data`` / ``val_data``: an ImageSet or a pair
    (x, y) (see ``batches.as_pixels``); val_data is the held-out split of the log.
    ``on_epoch_end(epoch, row)`` runs after each epoch's checkpoint is on disk (1-based epoch).

    A fresh run seeds the global torch, numpy and python RNGs with ``config.seed`` (they drive
    model-internal randomness such as dropout and drop path); a resumed run restores them.
    final.pt is ``model.state_dict()`` (keys start with ``model.`` for a NormalizedModel).
    """
    device = _device(model, config)
    train_pixels, val_pixels = as_pixels(train_data, "train_data"), as_pixels(val_data, "val_data")
    if len(train_pixels) < config.batch_size or len(val_pixels) == 0:
        raise RobustnasError(
            f"need at least batch_size={config.batch_size} training images and one held-out image, "
            f"got {len(train_pixels)} and {len(val_pixels)}"
        )
    _check_drop_path(model, config)
    run = Path(run_dir)
    run.mkdir(parents=True, exist_ok=True)
    optimizer = torch.optim.SGD(
        model.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
    )
    scaler = torch.amp.GradScaler(device.type, enabled=config.amp)
    rows = _start(model, optimizer, scaler, config, run / CHECKPOINT)
    resumed_after = len(rows)
    reporter = _Reporter(config.epochs, progress)
    for epoch in range(resumed_after, config.epochs):
        start = time.perf_counter()
        lr = _set_epoch(model, optimizer, config, epoch)
        loss, acc = _train_epoch(model, optimizer, scaler, train_pixels, config, epoch, device, reporter)
        evaluate = (epoch + 1) % config.eval_every == 0 or epoch + 1 == config.epochs
        clean, robust = _evaluate(model, val_pixels, config, device) if evaluate else (None, None)
        rows.append({"epoch": epoch + 1, "lr": lr, "train_loss": loss, "train_acc": acc,
                     "val_clean_acc": clean, "val_pgd_acc": robust, "seconds": time.perf_counter() - start})
        _save(run, model, optimizer, scaler, config, rows)
        reporter.epoch(rows[-1])
        if on_epoch_end is not None:
            on_epoch_end(epoch + 1, rows[-1])
    _save_final(run / FINAL, model)
    return TrainResult(run, rows, resumed_after)


def _save_final(path: Path, model: nn.Module) -> None:
    """final.pt: the state dict only (load with ``torch.load(path, weights_only=True)``)."""
    torch_save(path, model.state_dict())


def _device(model: nn.Module, config: TrainConfig) -> torch.device:
    params = list(model.parameters())
    if not params:
        raise RobustnasError("the model has no parameters to train")
    device = params[0].device
    if config.amp and device.type != "cuda":
        raise RobustnasError(
            f"amp=True needs the model on a CUDA device, it is on {device}; "
            "set amp=False (mixed precision is GPU-only here)"
        )
    return device


def _check_drop_path(model: nn.Module, config: TrainConfig) -> None:
    if config.drop_path_prob > 0 and not _drop_path_modules(model):
        raise RobustnasError(
            "drop_path_prob > 0 but the model has no drop_path_prob attribute (only DARTS/ARNAS "
            "networks have drop path); set drop_path_prob=0"
        )


def _drop_path_modules(model: nn.Module) -> list[nn.Module]:
    return [module for module in model.modules() if hasattr(module, "drop_path_prob")]


def _start(
    model: nn.Module, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler, config: TrainConfig, path: Path
) -> list[dict[str, Any]]:
    """Fresh run: seed the global RNGs, no rows. Existing checkpoint: restore everything, its rows."""
    if not path.exists():
        seed_everything(config.seed)
        return []
    saved = load_checkpoint(path)
    differences = config_differences(saved["config"], config)
    if differences:
        raise RobustnasError(
            f"{path} was written with another config ({'; '.join(differences)}); use the same "
            "config to resume, or another run directory"
        )
    check_state_dict(model, saved["model"], path)
    model.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    if saved["scaler"]:
        scaler.load_state_dict(saved["scaler"])
    set_rng_state(saved["rng"])
    return list(saved["log"])


def _set_epoch(model: nn.Module, optimizer: torch.optim.Optimizer, config: TrainConfig, epoch: int) -> float:
    """This epoch's lr on every parameter group and drop-path probability on DARTS/ARNAS nets."""
    lr = lr_at(config, epoch)
    for group in optimizer.param_groups:
        group["lr"] = lr
    if config.drop_path_prob > 0:
        for module in _drop_path_modules(model):
            module.drop_path_prob = drop_path_at(config, epoch)
    return lr


def _train_epoch(
    model: nn.Module, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler, data: Pixels,
    config: TrainConfig, epoch: int, device: torch.device, reporter: "_Reporter",
) -> tuple[float, float]:
    """One pass over the epoch's batches; (mean loss, accuracy on the main loss's inputs)."""
    model.train()
    total_loss, correct, seen = 0.0, 0, 0
    batches = epoch_batches(data, config.batch_size, config.seed, epoch, config.augment, config.cutout)
    with reporter.batches(epoch, len(data) // config.batch_size) as advance:
        for index, (x, y) in enumerate(batches):
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=torch.float16, enabled=config.amp):
                loss, logits = training_loss(model, x, y, config, batch_seed(config.seed, epoch, index))
            optimizer_step(model, optimizer, loss, config.grad_clip, scaler)
            total_loss += float(loss.detach()) * len(y)
            correct += int((logits.detach().argmax(1) == y).sum())
            seen += len(y)
            advance()
    return total_loss / seen, correct / seen


def _evaluate(model: nn.Module, data: Pixels, config: TrainConfig, device: torch.device) -> tuple[float, float]:
    """Clean and PGD accuracy on the held-out images (eval mode, float32; batch i's random start
    seeded by config.seed + i, so every evaluation of the same weights gives the same numbers)."""
    view = AttackView(model, keep_train_mode=False)
    clean = robust = 0.0
    for index, (x, y) in enumerate(eval_batches(data, config.batch_size)):
        x, y = x.to(device), y.to(device)
        attack = PGD(config.eval_eps, config.eval_step, config.eval_steps, seed=config.seed + index)
        clean += accuracy(view, x, y) * len(y)
        robust += robust_accuracy(view, (x, y), attack, batch_size=len(y)) * len(y)
    return clean / len(data), robust / len(data)


def _save(
    run: Path, model: nn.Module, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
    config: TrainConfig, rows: list[dict[str, Any]],
) -> None:
    save_checkpoint(run / CHECKPOINT, {
        "epoch": len(rows), "config": config.to_dict(), "model": model.state_dict(),
        "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(), "log": rows,
        "rng": rng_state(cuda=next(model.parameters()).is_cuda),
    })
    write_csv(run / LOG, rows)
    train_label = "train (PGD inputs)" if config.adversarial == "pgd" else "train (clean inputs)"
    plot_curves(run / CURVES, rows, _title(model, config), train_label)


def _title(model: nn.Module, config: TrainConfig) -> str:
    inner = getattr(model, "model", model)
    kind = {None: "standard", "pgd": f"PGD-{config.attack_steps} AT", "trades": f"TRADES (beta {config.trades_beta:g})"}
    return (f"{type(inner).__name__}, {kind[config.adversarial]}; held-out PGD-{config.eval_steps} "
            f"eps {config.eval_eps * 255:.3g}/255")


class _Reporter:
    """A progress bar over an epoch's batches (a line every 30 s in logs), and one line per epoch on
    stderr (the scoring command's convention: bars on terminals, plain lines in logs)."""

    def __init__(self, epochs: int, enabled: bool) -> None:
        self.epochs, self.enabled = epochs, enabled

    def batches(self, epoch: int, total: int) -> LoopProgress:
        return LoopProgress(f"epoch {epoch + 1}/{self.epochs}", total, unit="batch", enabled=self.enabled, transient=True)

    def epoch(self, row: dict[str, Any]) -> None:
        if not self.enabled:
            return
        held_out = (
            f"held-out clean {100 * row['val_clean_acc']:.1f}% PGD {100 * row['val_pgd_acc']:.1f}%"
            if row["val_clean_acc"] is not None
            else "held-out not evaluated"
        )
        print(
            f"epoch {row['epoch']}/{self.epochs}: lr {row['lr']:.4g} loss {row['train_loss']:.4f} "
            f"train acc {100 * row['train_acc']:.1f}% {held_out} ({row['seconds']:.1f} s)",
            file=sys.stderr, flush=True,
        )


