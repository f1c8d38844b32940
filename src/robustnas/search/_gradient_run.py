"""The differentiable search's run: data halves, per-step batches, epochs, checkpoints and outputs.

OUT gets ``search.json`` (the settings), ``checkpoint.pt`` after every epoch (supernet, both
optimizers, the logs; read with ``weights_only=True``), ``steps.csv`` (per step: losses, the weight
of each objective, e.g. MGDA's gamma, and the direction's norm), ``alphas.csv`` (per epoch, cell
type, edge and op: alpha and its softmax weight), ``alphas_<cell type>.png`` (heat maps of the
current mixture weights), ``best_genotype.json`` (the discretised architecture, which
``robustnas train --arch`` reads) after every epoch, and ``result.json`` at the end. Randomness is
a function of (seed, epoch, step) only, so the same command resumes a killed run exactly.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch

from robustnas import spaces
from robustnas.errors import RobustnasError
from robustnas._files import replace_file, run_lock
from robustnas.search._base import get
from robustnas.search._gradient import GradientSettings, json_ready
from robustnas.search._gradient_step import StepBatch, arch_step, optimizers, weight_step
from robustnas.spaces import Space

CHECKPOINT = "checkpoint.pt"
CHECKPOINT_KIND = "robustnas-search-checkpoint"
SPLIT_SEED = 20240601  # the fixed permutation that halves the training images (weights | alphas)


@dataclass(frozen=True)
class Halves:
    """The training images split in two: the weights' half and the alphas' half (uint8 NHWC)."""

    train_images: np.ndarray
    train_labels: np.ndarray
    val_images: np.ndarray
    val_labels: np.ndarray
    num_classes: int


def split_halves(images: Any) -> Halves:
    """Half of the images (by a fixed permutation, each half in file order) for the weights, the
    rest for the alphas (ARNAS' train_portion 0.5)."""
    order = np.random.default_rng(SPLIT_SEED).permutation(len(images))
    first, second = np.sort(order[: len(order) // 2]), np.sort(order[len(order) // 2 :])
    return Halves(images.images[first], images.labels[first], images.images[second], images.labels[second],
                  images.num_classes)


def step_batch(halves: Halves, settings: GradientSettings, seed: int, epoch: int, step: int,
               order: np.ndarray, device: str) -> StepBatch:
    """The clean images of one step: the step's slice of the epoch's train order and a random
    validation batch, both with crop + flip; the corruption objective's corrupted copy."""
    from robustnas.bench._names import CORRUPTIONS
    from robustnas.corruptions import corrupt
    from robustnas.data import random_crop_flip
    from robustnas.train._batches import to_tensor

    rng = np.random.default_rng([seed, epoch, step])
    size = settings.batch_size
    train = order[step * size : (step + 1) * size]
    val = rng.choice(len(halves.val_labels), size=size, replace=False)
    train_pixels = random_crop_flip(halves.train_images[train], rng)
    val_pixels = random_crop_flip(halves.val_images[val], rng)
    batch = StepBatch(
        to_tensor(train_pixels).to(device), torch.from_numpy(halves.train_labels[train]).to(device),
        to_tensor(val_pixels).to(device), torch.from_numpy(halves.val_labels[val]).to(device),
    )
    if "corruption" in settings.objectives:
        name = CORRUPTIONS[int(rng.integers(len(CORRUPTIONS)))]
        severity = int(rng.integers(1, 6))
        batch.x_val_corrupt = to_tensor(corrupt(val_pixels, name, severity, seed=int(rng.integers(2**31)))).to(device)
    return batch


def add_examples(supernet: torch.nn.Module, settings: GradientSettings, batch: StepBatch, epoch: int,
                 seed: int, step: int) -> None:
    """The adversarial examples the step's losses need, against the current supernet in train mode."""
    from robustnas.attacks import PGD
    from robustnas.train._config import TrainConfig
    from robustnas.train._losses import AttackView, batch_seed, trades_examples

    view = AttackView(supernet, keep_train_mode=True)

    def pgd(x: torch.Tensor, y: torch.Tensor, role: int) -> torch.Tensor:
        attack = PGD(settings.pgd_eps, settings.pgd_step, settings.pgd_steps, seed=batch_seed(seed, epoch, 2 * step + role))
        return attack(view, x, y)

    if settings.inner == "adversarial":
        batch.x_train_adv = pgd(batch.x_train, batch.y_train, 0)
    elif settings.inner == "trades":
        config = TrainConfig(attack_eps=settings.pgd_eps, attack_step=settings.pgd_step, attack_steps=settings.pgd_steps)
        batch.x_train_adv = trades_examples(view, batch.x_train, config, batch_seed(seed, epoch, 2 * step))
    if "adversarial" in settings.active_objectives(epoch):
        batch.x_val_adv = pgd(batch.x_val, batch.y_val, 1)


# ---- the state a checkpoint keeps --------------------------------------------------------------
@dataclass
class SearchState:
    """Everything that moves during a search (what a checkpoint holds)."""

    supernet: torch.nn.Module
    weight_optimizer: torch.optim.SGD
    alpha_optimizer: torch.optim.Adam
    epochs_done: int = 0
    steps: list[dict[str, float]] = field(default_factory=list)  # one row per step
    alphas: list[dict[str, list]] = field(default_factory=list)  # per finished epoch: cell type -> alpha rows
    seconds: float = 0.0  # search time of the epochs done (all sessions)

    def payload(self, settings: dict[str, Any]) -> dict[str, Any]:
        return {
            "settings": settings, "epochs_done": self.epochs_done, "model": self.supernet.state_dict(),
            "weight_optimizer": self.weight_optimizer.state_dict(), "alpha_optimizer": self.alpha_optimizer.state_dict(),
            "steps": self.steps, "alphas": self.alphas, "seconds": self.seconds,
        }

    def restore(self, payload: dict[str, Any], path: Path, settings: dict[str, Any]) -> None:
        from robustnas.train._checkpoint import check_state_dict

        if payload.get("settings") != settings:
            raise RobustnasError(f"{path} belongs to a search with other settings; delete it or give another --out")
        check_state_dict(self.supernet, payload["model"], path)
        self.supernet.load_state_dict(payload["model"])
        self.weight_optimizer.load_state_dict(payload["weight_optimizer"])
        self.alpha_optimizer.load_state_dict(payload["alpha_optimizer"])
        self.epochs_done, self.steps = payload["epochs_done"], payload["steps"]
        self.alphas, self.seconds = payload["alphas"], payload["seconds"]


def new_state(space: Space, settings: GradientSettings, num_classes: int, seed: int, device: str) -> SearchState:
    """The supernet initialised from ``seed`` (weights and the 1e-3 N(0,1) alphas) and its optimizers."""
    torch.manual_seed(seed)
    supernet = space.supernet(num_classes, **settings.sizes).to(device)
    supernet.train()
    return SearchState(supernet, *optimizers(supernet, settings))


def train_epoch(state: SearchState, halves: Halves, settings: GradientSettings, seed: int, device: str,
                after_step: Callable[[dict[str, float]], None] = lambda row: None) -> None:
    """One epoch of alternating architecture and weight steps (the last short batch is dropped)."""
    epoch = state.epochs_done
    for group in state.weight_optimizer.param_groups:
        group["lr"] = settings.lr_at(epoch)
    order = np.random.default_rng([seed, epoch]).permutation(len(halves.train_labels))
    for step in range(steps_per_epoch(halves, settings)):
        batch = step_batch(halves, settings, seed, epoch, step, order, device)
        add_examples(state.supernet, settings, batch, epoch, seed, step)
        row = {"epoch": float(epoch), "step": float(step), "lr": settings.lr_at(epoch)}
        row.update(arch_step(state.supernet, settings, batch, epoch, state.weight_optimizer, state.alpha_optimizer))
        row["loss_inner"] = weight_step(state.supernet, settings, batch, state.weight_optimizer)
        state.steps.append(row)
        after_step(row)
    state.alphas.append({kind: alpha.detach().cpu().tolist() for kind, alpha in state.supernet.alphas.items()})
    state.epochs_done += 1


def steps_per_epoch(halves: Halves, settings: GradientSettings) -> int:
    return len(halves.train_labels) // settings.batch_size


# ---- outputs -----------------------------------------------------------------------------------
def steps_frame(state: SearchState, settings: GradientSettings) -> pd.DataFrame:
    """steps.csv: epoch, step, lr, loss and weight of every objective (empty where inactive), the
    direction's norm and the inner loss."""
    columns = ["epoch", "step", "lr", *(f"loss_{n}" for n in settings.objectives),
               *(f"weight_{n}" for n in settings.objectives), "direction_norm", "loss_inner"]
    frame = pd.DataFrame(state.steps, columns=columns)
    return frame.astype({"epoch": int, "step": int})


def alphas_frame(state: SearchState, supernet: torch.nn.Module) -> pd.DataFrame:
    """alphas.csv: one row per epoch (0-based), cell type, edge and op with the alpha and its softmax
    weight; ``link`` names the edge by its nodes (NB201: ``1->2`` as in NB201 strings' ``~0`` of
    node 2; DARTS-style: inputs 0 and 1 are the cell's, intermediate nodes are 2..5)."""
    rows = []
    links = edge_links(supernet)
    for epoch, alphas in enumerate(state.alphas):
        for kind, matrix in alphas.items():
            alpha = torch.tensor(matrix, dtype=torch.float64)
            weight = torch.softmax(alpha, dim=-1)
            for edge in range(alpha.shape[0]):
                for index, op in enumerate(op_names(supernet)):
                    rows.append((epoch, kind, edge, links[edge], op, float(alpha[edge, index]),
                                 float(weight[edge, index])))
    return pd.DataFrame(rows, columns=["epoch", "cell", "edge", "link", "op", "alpha", "weight"])


def op_names(supernet: torch.nn.Module) -> tuple[str, ...]:
    """The op of each alpha column: the DARTS-style supernet's ops, NB201's five."""
    from robustnas.spaces.nb201 import OPS

    return getattr(supernet, "ops", OPS)


def edge_links(supernet: torch.nn.Module) -> list[str]:
    """``source->target`` of each alpha row (NB201's EDGES; DARTS-style: node i+2 reads 0..i+1)."""
    from robustnas.spaces._supernet import NODES
    from robustnas.spaces.nb201 import EDGES

    if not hasattr(supernet, "ops"):
        return [f"{source}->{target}" for source, target in EDGES]
    return [f"{source}->{node + 2}" for node in range(NODES) for source in range(node + 2)]


def plot_alphas(frame: pd.DataFrame, out: Path) -> list[Path]:
    """One heat map per cell type of the last epoch's mixture weights (edges x ops)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from robustnas._files import atomic_write

    last = frame[frame["epoch"] == frame["epoch"].max()]
    epochs = int(last["epoch"].iloc[0]) + 1
    paths = []
    for kind, rows in last.groupby("cell", sort=False):
        table = rows.pivot(index="edge", columns="op", values="weight")[list(dict.fromkeys(rows["op"]))]
        links = rows.drop_duplicates("edge").set_index("edge")["link"]
        values = table.to_numpy()
        fig, ax = plt.subplots(figsize=(1.5 + 1.0 * table.shape[1], 1.2 + 0.32 * table.shape[0]))
        image = ax.imshow(values, cmap="viridis", aspect="auto")  # colours span this cell's own range
        ax.set_xticks(range(table.shape[1]), table.columns, rotation=45, ha="right")
        ax.set_yticks(range(table.shape[0]), [f"edge {e} ({links[e]})" for e in table.index])
        middle = (values.max() + values.min()) / 2
        for (i, j), value in np.ndenumerate(values):
            ax.text(j, i, f"{value:.4f}", ha="center", va="center", color="w" if value < middle else "k", fontsize=6)
        fig.colorbar(image, ax=ax, label="softmax(alpha)")
        name = "NB201 cell" if kind == "cell" else f"{kind} cell"
        ax.set_title(f"{name} after {epochs} epoch{'s' if epochs > 1 else ''} (uniform: {1 / table.shape[1]:.4f})")
        fig.tight_layout()
        path = out / f"alphas_{kind}.png"
        with atomic_write(path) as handle:
            fig.savefig(handle, format="png", dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


def write_outputs(out: Path, state: SearchState, settings: GradientSettings, space: Space) -> None:
    """The CSVs, heat maps and the current genotype, all from the state."""
    replace_file(out / "steps.csv", steps_frame(state, settings).to_csv(index=False))
    alphas = alphas_frame(state, state.supernet)
    replace_file(out / "alphas.csv", alphas.to_csv(index=False))
    plot_alphas(alphas, out)
    arch = space.discretize(state.supernet)
    replace_file(out / "best_genotype.json", json.dumps(space.record(arch), indent=2) + "\n")


# ---- the command -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Prepared:
    """What a search and its dry run both start from: the space, the resolved settings, the images."""

    space: Space
    gradient: GradientSettings
    halves: Halves


def prepare(settings: Any) -> Prepared:
    """Check ``settings`` (one-line errors) and load the images, split in halves."""
    from robustnas.data import load_dataset, require_data

    require_data(settings.data, settings.dataset)
    space = spaces.get(settings.space)
    gradient = resolve(settings, space)
    images = load_dataset(settings.data, settings.dataset, "train", limit_per_class=gradient.per_class or None)
    halves = split_halves(images)
    if len(halves.train_labels) < gradient.batch_size:
        raise RobustnasError(
            f"{len(halves.train_labels)} images for the weights are fewer than one batch ({gradient.batch_size}); "
            "lower --batch-size or raise per_class"
        )
    return Prepared(space, gradient, halves)


def plan(settings: Any) -> dict[str, Any]:
    """What a differentiable search will do, without training: the resolved settings, the
    supernet's parameter counts and the steps with their cost in forward+backward passes
    (``robustnas search ... --dry-run``)."""
    prepared = prepare(settings)
    gradient, halves = prepared.gradient, prepared.halves
    supernet = prepared.space.supernet(halves.num_classes, **gradient.sizes)
    return {
        "strategy": settings.strategy,
        "space": settings.space,
        "dataset": settings.dataset,
        "supernet_weights": sum(p.numel() for p in supernet.weight_parameters()),
        "supernet_alphas": sum(p.numel() for p in supernet.arch_parameters()),
        "images_weights": len(halves.train_labels),
        "images_alphas": len(halves.val_labels),
        "steps_per_epoch": steps_per_epoch(halves, gradient),
        "steps": steps_per_epoch(halves, gradient) * gradient.epochs,
        "passes_per_step": gradient.passes_per_step(),
        "settings": {**json_ready(asdict(settings)), "resolved": gradient.to_dict()},
    }


def resolve(settings: Any, space: Space) -> GradientSettings:
    """The strategy's options checked and resolved against ``space``; proxy-search flags refused."""
    for name, value, default in (("--objective", settings.objective, None), ("--budget", settings.budget, None),
                                 ("--proxy-seed", settings.proxy_seed, 0)):
        if value != default:
            raise RobustnasError(
                f"{name} does not apply to --strategy {settings.strategy}, which trains a supernet "
                "(its losses: --strategy-option objectives=natural,adversarial,corruption; length: epochs=N)"
            )
    if settings.max_latency_ms is not None or settings.latency_device != "edgegpu":
        raise RobustnasError(f"--max-latency and --latency-device do not apply to --strategy {settings.strategy}")
    strategy = get(settings.strategy)(space, settings.seed, batch_size=settings.batch_size, **settings.options)
    return strategy.settings


def run_gradient(settings: Any, out: Path, *, device: str = "cpu", progress: bool = True,
                 after_step: Callable[[dict[str, float]], None] | None = None) -> dict[str, Any]:
    """Search ``settings.space`` by gradient into ``out`` (resumable); returns result.json's content.

    ``after_step`` sees each step's log row (tests use it to stop a run midway).
    """
    from robustnas._device import require_device
    from robustnas._progress import LoopProgress
    from robustnas.search._run import check_settings, write_settings
    from robustnas.train._checkpoint import load_checkpoint, save_checkpoint

    require_device(device)
    prepared = prepare(settings)
    space, gradient, halves = prepared.space, prepared.gradient, prepared.halves
    record = json_ready(asdict(settings))
    with run_lock(out):
        check_settings(out, settings)
        state = new_state(space, gradient, halves.num_classes, settings.seed, device)
        checkpoint = out / CHECKPOINT
        if checkpoint.exists():
            state.restore(load_checkpoint(checkpoint, CHECKPOINT_KIND), checkpoint, record)
        write_settings(out, settings)
        per_epoch = steps_per_epoch(halves, gradient)
        announce_cost(state, halves, gradient, settings.seed, device, per_epoch)
        with LoopProgress("search", per_epoch * gradient.epochs, state.epochs_done * per_epoch, "step", progress) as advance:
            def report(row: dict[str, float]) -> None:
                advance(status=_status(row))
                if after_step is not None:
                    after_step(row)

            trained = False
            while state.epochs_done < gradient.epochs:
                start = time.perf_counter()
                train_epoch(state, halves, gradient, settings.seed, device, report)
                state.seconds += time.perf_counter() - start
                save_checkpoint(checkpoint, state.payload(record), kind=CHECKPOINT_KIND)  # first: then a kill loses nothing
                write_outputs(out, state, gradient, space)
                trained = True
        if not trained:  # a finished search: a kill may have come between its last checkpoint and the files
            write_outputs(out, state, gradient, space)
        return write_gradient_result(out, settings, gradient, space, state)


def announce_cost(state: SearchState, halves: Halves, gradient: GradientSettings, seed: int, device: str,
                  per_epoch: int) -> None:
    """Say on stderr what the steps left will take when that is over two minutes: one timed
    forward+backward of a copy of the supernet (the faster of two) times the passes of each step."""
    import copy
    import sys

    from robustnas._progress import format_duration
    from robustnas.scoring import LONG_RUN_S, MEASURE_FROM_PASSES

    steps = per_epoch * (gradient.epochs - state.epochs_done)
    passes = sum(gradient.passes_per_step(epoch) for epoch in range(state.epochs_done, gradient.epochs)) * per_epoch
    if passes < MEASURE_FROM_PASSES:
        return
    order = np.random.default_rng([seed, state.epochs_done]).permutation(len(halves.train_labels))
    batch = step_batch(halves, gradient, seed, state.epochs_done, 0, order, device)
    network = copy.deepcopy(state.supernet)  # the search's own state (BN statistics, gradients) untouched
    times = []
    for _ in range(2):
        start = time.perf_counter()
        torch.nn.functional.cross_entropy(network(batch.x_train), batch.y_train).backward()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    seconds = passes * min(times)
    if seconds >= LONG_RUN_S:
        print(f"robustnas: search: {steps:,} steps will take about {format_duration(seconds)} here (one forward+"
              f"backward of the supernet: {min(times):.2f} s; a step is about {passes / steps:.0f} of them)",
              file=sys.stderr, flush=True)


def _status(row: dict[str, float]) -> str:
    """The progress line's losses and objective weights: ``inner 2.21 natural 2.30 (w 0.61) ...``."""
    parts = [f"inner {row['loss_inner']:.3f}"]
    for key, value in row.items():
        if key.startswith("loss_") and key != "loss_inner":
            name = key[len("loss_"):]
            parts.append(f"{name} {value:.3f} (w {row[f'weight_{name}']:.2f})")
    return " ".join(parts)


def write_gradient_result(out: Path, settings: Any, gradient: GradientSettings, space: Space,
                          state: SearchState) -> dict[str, Any]:
    """result.json: the found architecture (NB201: its benchmark accuracies and percentiles)."""
    from robustnas.search._run import benchmark_record

    supernet = state.supernet
    arch = space.discretize(supernet)
    last = state.steps[-1] if state.steps else {}
    result: dict[str, Any] = {
        "best_arch": space.key(arch),
        "epochs": state.epochs_done,
        "steps": len(state.steps),
        "supernet_weights": sum(p.numel() for p in supernet.weight_parameters()),
        "supernet_alphas": sum(p.numel() for p in supernet.arch_parameters()),
        "final_losses": {key: value for key, value in last.items() if key.startswith("loss_")},
        "search_s": round(state.seconds, 3),
        "genotype_file": str((out / "best_genotype.json").resolve()),
        "settings": {**json_ready(asdict(settings)), "resolved": gradient.to_dict()},
    }
    if space.has_benchmark:
        from robustnas.bench import Benchmark

        result["benchmark"] = benchmark_record(arch, settings.dataset, Benchmark(), space)
    replace_file(out / "result.json", json.dumps(result, indent=2, allow_nan=False) + "\n")
    return result
