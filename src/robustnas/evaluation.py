"""The evaluation suite: clean, adversarial and corruption accuracy of one model.

    from robustnas.evaluation import evaluate
    test = load_dataset(split="test")
    result = evaluate(model, test.images, test.labels, "clean,pgd20,corruptions")
    result["pgd20"], result["corruption_accuracy"]["fog"]["3"], result["settings"]["pgd20"]["steps"]

Suite items: ``clean``; every registered attack (``robustnas.attacks.list_attacks()``; the shipped
ones in attacks/_presets.py are L-inf, eps 8/255 (pgd20-croze 0.031), with the settings of
crose-and-arnas.md §A.8/§B.5/§B.6), seeded with ``seed`` where it takes one; ``corruptions``: the
15 CIFAR-10-C corruptions x 5 severities of ``robustnas.corruptions`` (Hendrycks & Dietterich
2019), seeded with ``seed``, reported per corruption and severity and as the mean over the 75 (the
mCA of the robustness dataset of Jung et al. 2023). Accuracies are fractions in [0,1]. When the
suite holds an attack that uses gradients (its spec says so; every shipped one but square),
``attacks.sanity_checks`` (Carlini et al. 2019 §5) also runs on the first SANITY_IMAGES images: a
masked gradient makes every gradient attack look strong and those numbers meaningless.

``run_evaluation`` is ``robustnas evaluate``: it rebuilds a trained network from its run
directory (``train.model_spec``), stores every value in DIR/store.sqlite the moment it exists
(``robustnas.store``; a re-run with the same weights, images and settings computes nothing
again) and writes DIR/evaluation.json and DIR/evaluation.md after every suite item.
"""
from __future__ import annotations

import copy
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from robustnas.attacks import EPS, attack_names, frozen_eval, get_attack, list_attacks, sanity_checks
from robustnas.corruptions import CORRUPTIONS, SEVERITIES, corrupt, table_for
from robustnas.errors import RobustnasError
from robustnas._files import replace_file
from robustnas._progress import LoopProgress
from robustnas.train._batches import Pixels, as_pixels, eval_batches

if TYPE_CHECKING:
    from robustnas.executors import Executor

CLEAN, CORRUPTIONS_ITEM, SANITY = "clean", "corruptions", "sanity"
SANITY_IMAGES = 64
SANITY_STEPS = 20  # PGD steps of the checks (sanity_checks' default, eps/4 per step)
SANITY_TOL = 0.02
STORE_FILE, RUN = "store.sqlite", "evaluate"
JSON_FILE, MARKDOWN_FILE = "evaluation.json", "evaluation.md"
META_KEYS = ("corruption_accuracy", "settings", "sanity", "n", "checkpoint")

Value = tuple[float, "str | None"]  # (value, note): the note holds the sanity checks' details
OnValue = Callable[[str, float, "str | None"], None]
OnItem = Callable[[dict[str, Any]], None]


# ---- the suite -----------------------------------------------------------------------------------
def suite_items() -> tuple[str, ...]:
    """Every valid suite item, in the order the help lists them."""
    return tuple(suite_help())


def suite_help() -> dict[str, str]:
    """Every valid suite item with one line saying what it measures."""
    return {
        CLEAN: "accuracy on the images as they are",
        **list_attacks(),
        CORRUPTIONS_ITEM: "the 15 CIFAR-10-C corruptions x 5 severities (Hendrycks & Dietterich 2019) and their mean",
    }


def parse_suite(suite: str | Sequence[str]) -> list[str]:
    """``"clean,pgd20"`` or a list -> the items in order without repeats; unknown ones are an error."""
    names = suite.split(",") if isinstance(suite, str) else list(suite)
    items = list(dict.fromkeys(name.strip() for name in names if name.strip()))
    unknown = [item for item in items if item not in suite_items()]
    if unknown or not items:
        problem = f"unknown suite item {', '.join(unknown)}" if unknown else "empty suite"
        raise RobustnasError(f"{problem}; choose from {', '.join(suite_items())} (comma-separated)")
    return items


def plan(items: Sequence[str]) -> list[str]:
    """The items to run: the suite, then the sanity checks when it holds an attack that uses gradients."""
    gradient = any(item in attack_names() and get_attack(item).uses_gradients for item in items)
    return [*items, SANITY] if gradient else list(items)


def quantities(item: str) -> list[str]:
    """The stored values of one item: corruptions give ``corruption:NAME:SEVERITY`` and their mean."""
    if item == CORRUPTIONS_ITEM:
        return [_corruption_key(name, severity) for name in CORRUPTIONS for severity in SEVERITIES] + [item]
    return [item]


def item_settings(item: str, *, seed: int, batch_size: int, image_shape: Sequence[int], n: int) -> dict[str, Any]:
    """Every setting an item's values depend on (eps and step in [0,1] pixel units); {} for clean."""
    if item == CLEAN:
        return {}
    if item == CORRUPTIONS_ITEM:
        return {"corruptions": list(CORRUPTIONS), "severities": list(SEVERITIES), "seed": seed,
                "table": table_for(image_shape[0], image_shape[1])}
    if item == SANITY:
        return {"images": min(n, SANITY_IMAGES), "eps": EPS, "steps": SANITY_STEPS, "tol": SANITY_TOL, "seed": seed}
    return {**get_attack(item).record(seed), "batch_size": batch_size}


def _corruption_key(name: str, severity: int) -> str:
    return f"corruption:{name}:{severity}"


# ---- evaluation ----------------------------------------------------------------------------------
def evaluate(
    model: nn.Module,
    images: np.ndarray,
    labels: np.ndarray,
    suite: str | Sequence[str],
    *,
    batch_size: int = 256,
    seed: int = 0,
    known: Mapping[str, Value] | None = None,
    on_value: OnValue | None = None,
    on_item: OnItem | None = None,
    progress: bool = True,
    executor: Executor | None = None,
) -> dict[str, Any]:
    """Run ``suite`` on uint8 images [N,H,W,3] with integer labels [N] (e.g. an ImageSet's).

    ``model`` takes [0,1] pixels (a ``NormalizedModel``) and stays on its device; batches of
    ``batch_size`` move there. Returns ``{item: accuracy, ..., "corruption_accuracy": {name:
    {"severity": acc}} (with corruptions), "settings": {item: settings}, "sanity": checks or None,
    "n": N}``. ``known`` maps quantities (see :func:`quantities`) to (value, note) pairs computed
    before, which are not computed again; ``on_value(quantity, value, note)`` runs as each new
    value exists, ``on_item(partial result)`` after each item (pending values are None). With an
    ``executor`` (robustnas.executors), the items, and each corruption x severity, run in parallel
    on its workers (a copy of the model each); ``on_item`` then runs after each of them.
    """
    items = parse_suite(suite)
    pixels = _check_inputs(images, labels, batch_size, seed)
    shape = pixels.images.shape[1:3]
    settings = {
        item: item_settings(item, seed=seed, batch_size=batch_size, image_shape=shape, n=len(pixels))
        for item in plan(items)
    }
    values: dict[str, Value] = dict(known or {})
    reporter = _Reporter(progress)

    def record(quantity: str, value: float, note: str | None = None) -> None:
        values[quantity] = (value, note)
        if on_value is not None:
            on_value(quantity, value, note)

    if executor is not None:
        return _evaluate_parallel(executor, items, _shared(model, pixels, settings, batch_size, seed), values, record,
                                  on_item, progress)
    for item in plan(items):
        start = time.perf_counter()
        todo = [q for q in quantities(item) if q not in values]
        if todo:
            _run_item(item, model, pixels, settings[item], batch_size, seed, values, record, reporter)
        reporter.done(item, values[item], time.perf_counter() - start, stored=not todo)
        if on_item is not None:
            on_item(_assemble(items, values, settings, len(pixels)))
    return _assemble(items, values, settings, len(pixels))


def _shared(model: nn.Module, pixels: Pixels, settings: dict[str, Any], batch_size: int, seed: int) -> tuple:
    """What every work unit of a parallel evaluation needs; the model travels on the CPU (a copy
    when it is elsewhere) and each worker moves it to the model's device."""
    device = str(next(model.parameters()).device)
    portable = model if device == "cpu" else copy.deepcopy(model).cpu()
    return portable, device, pixels, settings, batch_size, seed


def _evaluate_parallel(
    executor: Executor, items: list[str], shared: tuple, values: dict[str, Value], record: Callable[..., None],
    on_item: OnItem | None, progress: bool,
) -> dict[str, Any]:
    """:func:`evaluate` with one work unit per missing item, and per corruption x severity."""
    from robustnas.executors import Failed

    settings, n = shared[3], len(shared[2])
    units = [unit for item in plan(items) for unit in _units(item, values)]
    with LoopProgress("evaluate", len(units), unit="item", enabled=progress) as advance:
        for index, result in executor.map_unordered(evaluation_task, units, shared):
            failed = isinstance(result, Failed)
            record(*((_quantity(units[index]), float("nan"), result.reason) if failed else result))
            advance()
            if on_item is not None:
                on_item(_assemble(items, values, settings, n))
    if CORRUPTIONS_ITEM in items and CORRUPTIONS_ITEM not in values:
        record(CORRUPTIONS_ITEM, _corruption_mean(values))
        if on_item is not None:
            on_item(_assemble(items, values, settings, n))
    return _assemble(items, values, settings, n)


def _conditions() -> list[tuple[str, int]]:
    """Every (corruption, severity) of the corruptions item."""
    return [(name, severity) for name in CORRUPTIONS for severity in SEVERITIES]


def _units(item: str, values: Mapping[str, Value]) -> list[tuple]:
    """The work units of one item still missing: ``(item,)``, or ``(corruptions, name, severity)``."""
    if item == CORRUPTIONS_ITEM:
        return [(item, *condition) for condition in _conditions() if _corruption_key(*condition) not in values]
    return [] if item in values else [(item,)]


def _quantity(unit: tuple) -> str:
    return _corruption_key(*unit[1:]) if unit[0] == CORRUPTIONS_ITEM else unit[0]


def evaluation_task(shared: tuple, unit: tuple) -> tuple[str, float, str | None]:
    """One work unit of a parallel evaluation (any engine): (quantity, value, note) of one item, or
    of one corruption x severity, on the shared (model, device, pixels, settings, batch size, seed);
    running out of memory gives NaN with the reason as the note."""
    from robustnas.executors import out_of_memory

    model, device, pixels, settings, batch_size, seed = shared
    model, item = model.to(device), unit[0]
    try:
        if item == CORRUPTIONS_ITEM:
            return _quantity(unit), _corruption_accuracy(model, pixels, settings[item], batch_size, *unit[1:]), None
        found: dict[str, Value] = {}
        _run_item(item, model, pixels, settings[item], batch_size, seed, found,
                  lambda quantity, value, note=None: found.update({quantity: (value, note)}), _Reporter(False))
        return item, *found[item]
    except (torch.OutOfMemoryError, MemoryError) as error:  # stored as undefined with the reason
        return _quantity(unit), float("nan"), out_of_memory(error)


def _check_inputs(images: np.ndarray, labels: np.ndarray, batch_size: int, seed: int) -> Pixels:
    pixels = as_pixels((images, labels), "evaluate images")
    if pixels.images.dtype != np.uint8 or len(pixels) == 0:
        raise RobustnasError(
            "evaluate takes uint8 images [N,H,W,3] (N >= 1; ImageSet.images), since the corruptions "
            f"work on 8-bit pixels; got {pixels.images.dtype} {list(pixels.images.shape)}"
        )
    check_settings(batch_size, seed)
    return pixels


def check_settings(batch_size: int, seed: int) -> None:
    """batch_size >= 1 and seed >= 0, integers (one-line errors)."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise RobustnasError(f"batch size must be a positive integer, got {batch_size!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise RobustnasError(f"seed must be a non-negative integer, got {seed!r}")


def _run_item(
    item: str, model: nn.Module, pixels: Pixels, settings: dict[str, Any], batch_size: int, seed: int,
    values: dict[str, Value], record: Callable[..., None], reporter: "_Reporter",
) -> None:
    if item == CLEAN:
        record(item, _accuracy(model, pixels, batch_size, None, reporter.bar(item, _batches(pixels, batch_size))))
    elif item == CORRUPTIONS_ITEM:
        _corruptions(model, pixels, settings, batch_size, values, record, reporter)
    elif item == SANITY:
        report = _sanity(model, pixels, settings)
        record(item, float(all(check["passed"] for check in report.values())), json.dumps(report))
    else:
        attack = get_attack(item).make(seed)
        record(item, _accuracy(model, pixels, batch_size, attack, reporter.bar(item, _batches(pixels, batch_size))))


def _batches(pixels: Pixels, batch_size: int) -> int:
    return -(-len(pixels) // batch_size)


def _accuracy(model: nn.Module, pixels: Pixels, batch_size: int, attack: Any, bar: LoopProgress) -> float:
    """Fraction of images classified correctly (after ``attack``, unless None), batch by batch."""
    device = next(model.parameters()).device
    correct = 0
    with bar as advance:
        for x, y in eval_batches(pixels, batch_size):
            x, y = x.to(device), y.to(device)
            if attack is not None:
                x = attack(model, x, y)
            with frozen_eval(model), torch.no_grad():
                correct += int((model(x).argmax(1) == y).sum())
            advance()
    return correct / len(pixels)


def _corruptions(
    model: nn.Module, pixels: Pixels, settings: dict[str, Any], batch_size: int,
    values: dict[str, Value], record: Callable[..., None], reporter: "_Reporter",
) -> None:
    """Accuracy on each corrupted copy of the images, stored one by one, then their mean."""
    conditions = _conditions()
    with reporter.bar(CORRUPTIONS_ITEM, len(conditions)) as advance:
        for name, severity in conditions:
            key = _corruption_key(name, severity)
            if key not in values:
                record(key, _corruption_accuracy(model, pixels, settings, batch_size, name, severity))
            advance()
    if CORRUPTIONS_ITEM not in values:
        record(CORRUPTIONS_ITEM, _corruption_mean(values))


def _corruption_accuracy(
    model: nn.Module, pixels: Pixels, settings: dict[str, Any], batch_size: int, name: str, severity: int
) -> float:
    """Accuracy on the images corrupted by ``name`` at ``severity`` (seeded by the item's settings)."""
    corrupted = corrupt(pixels.images, name, severity, settings["seed"], settings["table"])
    return _accuracy(model, Pixels(corrupted, pixels.labels), batch_size, None, LoopProgress("", 0, enabled=False))


def _corruption_mean(values: Mapping[str, Value]) -> float:
    """The corruptions item: the mean accuracy over the 15 corruptions x 5 severities."""
    return float(np.mean([values[_corruption_key(*condition)][0] for condition in _conditions()]))


def _sanity(model: nn.Module, pixels: Pixels, settings: dict[str, Any]) -> dict[str, dict]:
    device = next(model.parameters()).device
    x, y = next(eval_batches(pixels, settings["images"]))
    return sanity_checks(
        model, x.to(device), y.to(device), eps=settings["eps"], steps=settings["steps"], tol=settings["tol"],
        seed=settings["seed"],
    )


def _assemble(items: list[str], values: dict[str, Value], settings: dict[str, dict], n: int) -> dict[str, Any]:
    """The result dict (see :func:`evaluate`); values not computed yet are None."""
    result: dict[str, Any] = {item: values.get(item, (None, None))[0] for item in items}
    if CORRUPTIONS_ITEM in items:
        result["corruption_accuracy"] = {
            name: {str(s): values.get(_corruption_key(name, s), (None, None))[0] for s in SEVERITIES}
            for name in CORRUPTIONS
        }
    result["settings"] = {item: value for item, value in settings.items() if value}
    sanity = values.get(SANITY)
    result["sanity"] = json.loads(sanity[1]) if sanity else None
    result["n"] = n
    return result


# ---- progress ------------------------------------------------------------------------------------
class _Reporter:
    """A bar per item (a line every 30 s in logs) and one line per finished item on stderr (the
    train and score commands' convention); silent when ``enabled`` is False."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def bar(self, label: str, total: int) -> LoopProgress:
        return LoopProgress(label, total, unit="batch", enabled=self.enabled, transient=True)

    def done(self, item: str, value: Value, seconds: float, stored: bool) -> None:
        if not self.enabled:
            return
        when = "already stored" if stored else f"{seconds:.1f} s"
        if item == SANITY:
            failed = [name for name, check in json.loads(value[1]).items() if not check["passed"]]
            text = f"FAILED {', '.join(failed)} (gradient masking?)" if failed else "all checks passed"
        else:
            text = f"{value[0]:.4f}"
        print(f"{item}: {text} ({when})", file=sys.stderr, flush=True)


# ---- robustnas evaluate --------------------------------------------------------------------------
def run_evaluation(
    checkpoint: str | Path,
    suite: str | Sequence[str],
    *,
    out: str | Path | None = None,
    data: str | Path | None = None,
    n: int | None = None,
    batch_size: int = 256,
    seed: int = 0,
    device: str = "cpu",
    progress: bool = True,
    workers: int = 1,
    engine: str = "local",
    address: str | None = None,
) -> tuple[dict[str, Any], Path, int]:
    """Evaluate a checkpoint (a run directory of ``robustnas train``, or its final.pt/checkpoint.pt)
    on the first ``n`` test images of ``data`` (default: the data it was trained on), on ``device``
    ("cpu" or "cuda", checked first). One local worker runs the items one after the other in this
    process; more workers, or ``engine`` "ray" (at ``address``), run them in parallel
    (robustnas.executors).

    Values go to OUT/store.sqlite (OUT defaults to the checkpoint's folder) under run "evaluate",
    key (architecture, quantity, seed, config hash of {weights digest, images digest, item,
    settings}); stored keys are not computed again. Returns (result with "checkpoint", OUT,
    number of values computed now).
    """
    from robustnas._device import require_device
    from robustnas.executors import make_executor
    from robustnas.store import Key, Result, Store
    from robustnas.train._model_spec import load_model

    require_device(device)
    items = parse_suite(suite)
    check_settings(batch_size, seed)
    executor = make_executor(engine, workers, device=device, address=address)
    parallel = engine != "local" or workers > 1
    if n is not None and n < 1:
        raise RobustnasError(f"--n must be >= 1, got {n}")
    loaded = load_model(Path(checkpoint))
    test = _test_images(loaded.spec.dataset, data if data is not None else loaded.data.get("path"), n)
    model = loaded.model.to(device)
    out_dir = Path(out) if out is not None else loaded.weights_file.parent
    arch = loaded.spec.describe()
    base = {"weights": loaded.digest, "images": _images_digest(test.images, test.labels)}
    header = _header(loaded, test)
    computed = 0
    with executor, Store(out_dir / STORE_FILE) as store:
        store.ensure_run(RUN, {"command": "robustnas evaluate"})
        config_of: dict[str, str] = {}
        for item in plan(items):
            settings = item_settings(item, seed=seed, batch_size=batch_size, image_shape=test.image_shape, n=len(test))
            digest = store.add_config({**base, "item": item, "settings": settings})
            config_of.update({quantity: digest for quantity in quantities(item)})
        known = {}
        for quantity, config in config_of.items():
            stored = store.get(RUN, Key(arch, quantity, seed, config))
            if stored is not None:
                known[quantity] = (stored.value, stored.note)

        def on_value(quantity: str, value: float, note: str | None) -> None:
            nonlocal computed
            store.put(RUN, Result(arch, quantity, seed, config_of[quantity], value, note))
            computed += 1

        def on_item(partial: dict[str, Any]) -> None:
            write_reports(out_dir, {**partial, "checkpoint": str(loaded.weights_file)}, header)

        result = evaluate(
            model, test.images, test.labels, items, batch_size=batch_size, seed=seed, known=known,
            on_value=on_value, on_item=on_item, progress=progress, executor=executor if parallel else None,
        )
    result["checkpoint"] = str(loaded.weights_file)
    return result, out_dir, computed


def _test_images(dataset: str, path: str | Path | None, n: int | None) -> Any:
    """The first ``n`` images of the test split (all when None)."""
    from robustnas.data import load_dataset, require_data

    require_data(path, dataset)
    test = load_dataset(path, dataset, split="test")
    if n is not None and n > len(test):
        raise RobustnasError(f"--n {n} but the test split of {test.source} has {len(test)} images; give a smaller --n")
    return test.subset(np.arange(n if n is not None else len(test)))


def _images_digest(images: np.ndarray, labels: np.ndarray) -> str:
    import hashlib

    return hashlib.sha256(np.ascontiguousarray(images).tobytes() + labels.astype(np.int64).tobytes()).hexdigest()


def _header(loaded: Any, test: Any) -> list[str]:
    spec = loaded.spec
    return [
        f"- checkpoint: `{loaded.weights_file}` (weights sha256 {loaded.digest[:16]})",
        f"- model: {spec.describe()} ({spec.dataset}, {spec.num_classes} classes)",
        f"- images: the first {len(test)} of the test split of {test.source}",
    ]


# ---- reports -------------------------------------------------------------------------------------
def write_reports(out_dir: Path, result: dict[str, Any], header: Sequence[str] = ()) -> None:
    """OUT/evaluation.json (the result) and OUT/evaluation.md, each replaced atomically."""
    out_dir.mkdir(parents=True, exist_ok=True)
    replace_file(out_dir / JSON_FILE, json.dumps(result, indent=2) + "\n")
    replace_file(out_dir / MARKDOWN_FILE, markdown(result, header))


def summary_table(result: dict[str, Any]) -> str:
    """The markdown table: one row per suite item, accuracy as a fraction (pending: -)."""
    rows = [f"| {item} | {_fraction(value)} |" for item, value in result.items() if item not in META_KEYS]
    return "\n".join(["| suite | accuracy |", "|---|---:|", *rows]) + "\n"


def markdown(result: dict[str, Any], header: Sequence[str] = ()) -> str:
    """evaluation.md: provenance, the summary table, corruptions per severity, settings, sanity checks."""
    parts = ["# Evaluation\n\n", *(line + "\n" for line in header), "\n", summary_table(result)]
    if "corruption_accuracy" in result:
        parts += ["\n## Corruption accuracy\n\n", "| corruption | " + " | ".join(map(str, SEVERITIES)) + " | mean |\n",
                  "|---|" + "---:|" * (len(SEVERITIES) + 1) + "\n"]
        for name, by_severity in result["corruption_accuracy"].items():
            accs = list(by_severity.values())
            mean = None if None in accs else float(np.mean(accs))
            parts.append(f"| {name} | " + " | ".join(_fraction(a) for a in [*accs, mean]) + " |\n")
    parts.append("\n## Settings\n\n")
    for item, settings in result["settings"].items():
        shown = ", ".join(f"{key}={_setting(key, value)}" for key, value in settings.items())
        parts.append(f"- {item}: {shown}\n")
    if result["sanity"] is not None:
        parts += ["\n## Gradient-masking sanity checks\n\n", "| check | passed | details |\n", "|---|---|---|\n"]
        for name, check in result["sanity"].items():
            details = json.dumps({k: v for k, v in check.items() if k != "passed"})
            parts.append(f"| {name} | {'yes' if check['passed'] else '**no**'} | `{details}` |\n")
    return "".join(parts)


def _fraction(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _setting(key: str, value: Any) -> str:
    if key in ("eps", "step") and isinstance(value, float):
        return f"{value * 255:g}/255"
    if key == "corruptions":
        return f"{len(value)} (Hendrycks & Dietterich 2019)"
    return str(value)

