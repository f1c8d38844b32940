"""Scoring runs: proxies for many architectures, every value stored the moment it exists.

A run directory holds ``store.sqlite`` (the results, robustnas.store) and ``run.json`` (the
settings). Started again with the same settings, a run skips every (architecture, proxy) already
stored, so a run killed at any moment (even ``kill -9``) finishes without recomputing finished
work and without losing or duplicating a row.

Determinism: one seeded batch for the whole run (training split, crop+flip augmentation as in
NAS-Bench-Suite-Zero), and each network initialised from a seed derived from (seed, architecture),
so a value does not depend on the order, the shard or the worker that computed it. On CPU, values are
bit-identical for the same seed and the same ``--workers`` (the thread count per worker follows it),
on either engine (the local pool or Ray, robustnas.executors).
"""
from __future__ import annotations

import json
import math
import sys
import time
import zlib
from contextlib import closing
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

if TYPE_CHECKING:
    import pandas as pd
    import torch

from robustnas.errors import RobustnasError
from robustnas._files import atomic_write, replace_file, run_lock
from robustnas._progress import format_duration

STORE_FILE = "store.sqlite"
SETTINGS_FILE = "run.json"
RUN = "score"
LONG_RUN_S = 120.0  # a run estimated to take longer says so before it starts
EXPENSIVE_PASSES = 10.0  # a proxy this costly (hessian_eig) that dominates a run is named with the time without it
MEASURE_FROM_PASSES = 20.0  # measure a pass (for the estimate) only in runs at least this long


@dataclass(frozen=True)
class ScoreSettings:
    """Everything that determines the values of a scoring run (stored in run.json); ``data`` is
    kept as an absolute path (None: the embedded CIFAR-10 sample)."""

    space: str
    dataset: str
    data: str | None
    proxies: tuple[str, ...]
    batch_size: int
    seed: int
    device: str = "cpu"

    def __post_init__(self) -> None:
        from robustnas.data import data_path

        object.__setattr__(self, "data", data_path(self.data))

    def check(self) -> None:
        """One-line errors for settings no run can use (``run_scoring`` checks before it starts)."""
        from robustnas.data import require_data
        from robustnas._device import require_device

        require_data(self.data, self.dataset)
        if self.batch_size < 1:
            raise RobustnasError(f"--batch-size must be >= 1, got {self.batch_size}")
        require_device(self.device)

    def value_config(self) -> dict[str, Any]:
        """The settings a stored value depends on (proxy list and device excluded)."""
        return {"space": self.space, "dataset": self.dataset, "data": self.data, "batch_size": self.batch_size}


# ---- architectures ---------------------------------------------------------------------------
def select_archs(space: str, spec: str, seed: int) -> list[str]:
    """Canonical strings of the architectures named by ``all``, ``unique``, ``sample:N`` or a file."""
    from robustnas import spaces

    chosen = spaces.get(space)
    if spec in ("all", "unique"):
        if not chosen.enumerable:
            raise RobustnasError(f"--archs {spec} exists only for enumerable spaces (nb201); use sample:N or a genotype file for {space}")
        archs = chosen.all_encodings() if spec == "all" else chosen.population()
        return [str(arch) for arch in archs]
    if spec.startswith("sample:"):
        count = spec.partition(":")[2]
        if not count.isdigit() or int(count) < 1:
            raise RobustnasError(f"--archs sample:N needs a positive N, got {spec!r}")
        return [str(a) for a in chosen.samples(int(count), seed, unique=chosen.enumerable)]
    path = Path(spec)
    if not path.is_file():
        raise RobustnasError(f"--archs {spec!r}: not all, unique, sample:N or an existing file")
    archs = []
    for number, line in enumerate(spaces.read_text_file(path).splitlines(), start=1):
        if line.strip() and not line.lstrip().startswith("#"):
            try:
                archs.append(str(spaces.parse(space, line.strip())))
            except RobustnasError as error:
                raise RobustnasError(f"{path}:{number}: {error}") from None
    if not archs:
        raise RobustnasError(f"{path}: no architectures (one per line expected)")
    return list(dict.fromkeys(archs))


def shard(archs: list[str], spec: str | None) -> list[str]:
    """Architectures of shard ``i/N`` (every N-th, starting at i; i counts from 0)."""
    if spec is None:
        return archs
    index, _, total = spec.partition("/")
    if not (index.isdigit() and total.isdigit()) or not 0 <= int(index) < int(total):
        raise RobustnasError(f"--shard must look like i/N with 0 <= i < N, got {spec!r}")
    return archs[int(index) :: int(total)]


# ---- one architecture ------------------------------------------------------------------------
def prepare_batch(settings: ScoreSettings) -> tuple[torch.Tensor, torch.Tensor]:
    """The run's one batch (x normalised, y), on ``settings.device``: ``batch_size`` training images
    drawn with ``seed``, crop+flip augmented as in NAS-Bench-Suite-Zero."""
    import torch

    from robustnas.data import load_dataset, normalization, sample_batch

    images = load_dataset(settings.data, _data_name(settings), split="train")
    x, y = sample_batch(images, settings.batch_size, settings.seed, augment=True)
    mean, std = normalization(settings.dataset)
    mean_t, std_t = torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)
    return ((x - mean_t) / std_t).to(settings.device), y.to(settings.device)


def score_arch(
    settings: ScoreSettings, x: torch.Tensor, y: torch.Tensor, arch: str, proxies: tuple[str, ...]
) -> tuple[dict[str, float], dict[str, str], float]:
    """(values, reasons for NaN, seconds) of ``proxies`` for ``arch`` (its canonical string) on the
    batch of :func:`prepare_batch`: one network, initialised from :func:`arch_seed`, so the values
    do not depend on which process or which other architectures came first."""
    import torch

    from robustnas import spaces
    from robustnas.proxies import score

    start = time.perf_counter()
    torch.manual_seed(arch_seed(settings.seed, arch))
    net = spaces.build(settings.space, arch, settings.dataset).to(settings.device)
    values = score(net, x, y, proxies=proxies, seed=settings.seed)
    return dict(values), values.reasons, time.perf_counter() - start


def pass_seconds(settings: ScoreSettings, x: torch.Tensor, y: torch.Tensor, arch: str) -> float:
    """Seconds of one cross-entropy forward+backward of ``arch``'s network on the run's batch
    (the unit of the registry's ``passes``; the faster of two, the first pays one-time set-up);
    the global random state is left as it was."""
    import torch

    from robustnas import spaces

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(arch_seed(settings.seed, arch))
        net = spaces.build(settings.space, arch, settings.dataset).to(settings.device)
        times = []
        for _ in range(2):
            start = time.perf_counter()
            torch.nn.functional.cross_entropy(net(x), y).backward()
            if settings.device == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
        return min(times)


def cost_notice(
    proxy_passes: dict[str, float], archs: int, workers: int | None, pass_s: float, label: str = "scoring"
) -> str | None:
    """One line saying what scoring ``archs`` architectures will cost, or None below ``LONG_RUN_S``.

    ``proxy_passes`` maps each proxy to its cost in forward+backward passes (the registry's
    ``passes``; fused passes make the real run somewhat faster); ``pass_s`` is one pass here;
    ``workers`` None is one process (not mentioned). An expensive proxy that is most of the cost
    is named, with the time the run would take without it.
    """
    per_arch = sum(proxy_passes.values())
    seconds = archs * per_arch * pass_s / min(workers or 1, archs)
    if seconds < LONG_RUN_S:
        return None
    where = "" if workers is None else f" on {_count(workers, 'worker')}"
    line = (
        f"{label} {_count(archs, 'architecture')} x {_count(len(proxy_passes), 'proxy', 'proxies')} will take "
        f"about {format_duration(seconds)}{where} (one forward+backward here: {pass_s:.2f} s"
    )
    name, passes = max(proxy_passes.items(), key=lambda item: item[1])
    if len(proxy_passes) > 1 and passes >= max(EXPENSIVE_PASSES, per_arch / 2):
        rest = seconds * (per_arch - passes) / per_arch
        line += f"; {name} alone is ~{passes:g} of them per network: without it about {format_duration(rest)}"
    return line + ")"


def _data_name(settings: ScoreSettings) -> str | None:
    return settings.dataset if settings.data is not None else None


def arch_seed(seed: int, arch: str) -> int:
    """The network-initialisation seed of one architecture in a run."""
    return zlib.crc32(f"{seed}:{arch}".encode())


def score_task(shared: tuple[ScoreSettings, torch.Tensor, torch.Tensor], job: tuple[str, tuple[str, ...]]) -> tuple:
    """One work unit of a scoring run (any engine): (arch, values, reasons, seconds) of ``job``'s
    (arch, proxies) on the shared (settings, x, y). Running out of memory makes the values
    undefined with the reason, so one network too large for a device does not stop the run."""
    import torch

    from robustnas.executors import out_of_memory

    settings, x, y = shared
    arch, proxies = job
    try:
        return (arch, *score_arch(settings, x.to(settings.device), y.to(settings.device), arch, proxies))
    except (torch.OutOfMemoryError, MemoryError) as error:
        return failed_job(job, out_of_memory(error))


def job_result(job: tuple[str, tuple[str, ...]], result: Any) -> tuple:
    """``result`` of ``job`` as :func:`score_task` gives it; an engine's ``Failed`` becomes every
    proxy undefined with the reason."""
    from robustnas.executors import Failed

    return failed_job(job, result.reason) if isinstance(result, Failed) else result


def failed_job(job: tuple[str, tuple[str, ...]], reason: str) -> tuple:
    """The result of a job that could not run: every proxy undefined with ``reason``."""
    arch, proxies = job
    return arch, {name: math.nan for name in proxies}, {name: reason for name in proxies}, 0.0


# ---- the run ---------------------------------------------------------------------------------
def open_run(out: Path, settings: ScoreSettings):
    """Create or reopen RUN_DIR; settings that change stored values must match the stored ones."""
    from robustnas.store import Store

    out.mkdir(parents=True, exist_ok=True)
    settings_file = out / SETTINGS_FILE
    if settings_file.exists():
        stored = read_settings(out)
        mine = asdict(settings)
        changed = [k for k in ("space", "dataset", "data", "batch_size", "seed") if stored.get(k) != mine[k]]
        if changed:
            diffs = ", ".join(f"{k} {stored.get(k)!r} -> {mine[k]!r}" for k in changed)
            raise RobustnasError(f"{out} holds a run with other settings ({diffs}); give another --out")
    replace_file(settings_file, json.dumps(asdict(settings), indent=2) + "\n")
    store = Store(out / STORE_FILE)
    store.ensure_run(RUN, {"settings": asdict(settings), "argv": sys.argv})
    return store


def todo(store, settings: ScoreSettings, archs: list[str], config: str) -> list[tuple[str, tuple[str, ...]]]:
    """(arch, proxies still missing) for every architecture with missing values."""
    from robustnas.store import Key

    keys = [Key(a, p, settings.seed, config) for a in archs for p in settings.proxies]
    missing: dict[str, list[str]] = {}
    for key in store.missing(RUN, keys):
        missing.setdefault(key.arch, []).append(key.quantity)
    return [(arch, tuple(proxies)) for arch, proxies in missing.items()]


def run_scoring(
    settings: ScoreSettings, archs: list[str], out: Path, workers: int = 1, *, engine: str = "local",
    address: str | None = None,
) -> dict[str, Any]:
    """Score ``archs``, storing each architecture's values as soon as they exist; returns a summary.

    ``workers`` processes of ``engine`` ("local" or "ray", at the Ray cluster ``address``;
    robustnas.executors) compute; this process alone stores.
    """
    from robustnas._progress import LoopProgress
    from robustnas.executors import default_threads, make_executor
    from robustnas.store import Result

    settings.check()
    threads = default_threads(max(1, workers))  # set even for one worker: the values depend on it (module doc)
    executor = make_executor(engine, workers, threads=threads, device=settings.device, address=address)
    x, y = prepare_batch(settings)  # loads the data: bad settings fail before the run directory exists
    shared = (settings, x.cpu(), y.cpu())
    with executor, run_lock(out), open_run(out, settings) as store:  # a Ray that cannot start fails first
        config = store.add_config(settings.value_config())
        jobs = todo(store, settings, archs, config)
        if jobs:
            missing = sorted({name for _, names in jobs for name in names}, key=settings.proxies.index)
            first = jobs[0][0]
            announce_cost(missing, len(jobs), workers, lambda: pass_seconds(settings, x, y, first))
        start = time.perf_counter()
        with (
            LoopProgress("scoring", len(archs), len(archs) - len(jobs)) as advance,
            closing(executor.map_unordered(score_task, jobs, shared)) as results,  # an exception stops the workers
        ):
            for index, result in results:
                arch, values, reasons, _ = job_result(jobs[index], result)
                rows = [
                    Result(arch, name, settings.seed, config, value, reasons.get(name))
                    for name, value in values.items()
                ]
                store.put_many(RUN, rows)
                advance()
        return {"archs": len(archs), "computed": len(jobs), "seconds": time.perf_counter() - start,
                **executor.describe()}


def _count(number: int, noun: str, plural: str | None = None) -> str:
    return f"{number} {noun if number == 1 else plural or noun + 's'}"


def announce_cost(
    proxies: Sequence[str], archs: int, workers: int | None, time_one_pass: Callable[[], float], label: str = "scoring"
) -> None:
    """Print :func:`cost_notice` on stderr before a long run starts; one pass is timed (by
    ``time_one_pass``) only when the run may be long, so short runs pay nothing."""
    from robustnas.proxies._registry import REGISTRY

    passes = {name: REGISTRY[name].passes for name in proxies}
    if not archs or archs * sum(passes.values()) < MEASURE_FROM_PASSES:
        return
    notice = cost_notice(passes, archs, workers, time_one_pass(), label)
    if notice:
        print(f"robustnas: {notice}", file=sys.stderr, flush=True)


def summary_table(out: Path):
    """One row per proxy: count, NaNs, min / median / max (for the end-of-run table)."""
    from robustnas.store import Store

    with Store(out / STORE_FILE) as store:
        frame = store.frame(RUN)
    grouped = frame.groupby("quantity")["value"]
    table = grouped.agg(["count", "size", "min", "median", "max"])
    table["nan"] = table["size"] - table["count"]
    return table.drop(columns="size")


def scores(run_dir: Path, undefined: float = math.nan) -> pd.DataFrame:
    """The stored values of a run: index ``arch``, one column per proxy in registry order.

    NaN where a value was never computed; ``undefined`` where it was computed and is undefined
    (stored as NaN with a reason), e.g. NAS-Bench-Suite-Zero's -1e8 sentinel (spec §1.1).
    """
    from robustnas.proxies import resolve
    from robustnas.store import Store

    _require_run_dir(run_dir)
    with Store(run_dir / STORE_FILE, readonly=True) as store:
        wide = store.wide_frame(RUN)
        if not math.isnan(undefined):
            stored = store.frame(RUN).assign(stored=1.0).pivot(index="arch", columns="quantity", values="stored")
            wide = wide.mask(wide.isna() & stored.reindex_like(wide).notna(), undefined)
    return wide[[p for p in resolve("all") if p in wide.columns]].rename_axis("arch")


def stored_values(run_dir: Path, settings: ScoreSettings) -> dict[tuple[str, str], tuple[float, str | None]]:
    """(arch, proxy) -> (value, reason for NaN) of a run scored with ``settings``' value settings and
    seed (its proxy list may differ); a run with other settings is one error naming them."""
    from robustnas.store import Store, config_hash

    _require_run_dir(run_dir)
    stored, mine = read_settings(run_dir), {**settings.value_config(), "seed": settings.seed}
    changed = [k for k in mine if stored.get(k) != mine[k]]
    if changed:
        diffs = ", ".join(f"{k} {stored.get(k)!r} (wanted {mine[k]!r})" for k in changed)
        raise RobustnasError(f"{run_dir} was scored with other settings ({diffs}); give runs with these settings")
    with Store(run_dir / STORE_FILE, readonly=True) as store:
        frame = store.frame(RUN, seed=settings.seed, config=config_hash(settings.value_config()))
    notes = frame["note"].where(frame["note"].notna(), None)
    return {(a, q): (float(v), n) for a, q, v, n in zip(frame["arch"], frame["quantity"], frame["value"], notes)}


def export(run_dir: Path, out: Path) -> Path:
    """One row per architecture (column ``arch``) and one column per proxy, as .csv or .parquet."""
    if out.suffix not in (".csv", ".parquet"):
        raise RobustnasError(f"--out must end in .csv or .parquet, got {out.name!r}")
    wide = scores(run_dir).reset_index()
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(out) as handle:  # a stopped export leaves no half file
        wide.to_csv(handle, index=False) if out.suffix == ".csv" else wide.to_parquet(handle, index=False)
    return out


def merge(run_dirs: list[Path], out: Path) -> list[tuple[Path, int, int]]:
    """Join shard runs into ``out`` (no duplicates); returns (shard, added, skipped) per shard."""
    from robustnas.store import Store

    settings = []
    for run_dir in run_dirs:
        _require_run_dir(run_dir)
        settings.append(read_settings(run_dir))
    if (out / SETTINGS_FILE).exists():
        settings.append(read_settings(out))
    differing = sorted({key for other in settings[1:] for key in other if other.get(key) != settings[0].get(key)})
    if differing:
        raise RobustnasError(
            f"the runs to merge (and --out, if it holds a run) differ in {', '.join(differing)} (run.json); "
            "merge only shards of one run"
        )
    out.mkdir(parents=True, exist_ok=True)
    replace_file(out / SETTINGS_FILE, json.dumps(settings[0], indent=2) + "\n")
    report = []
    with Store(out / STORE_FILE) as store:
        for run_dir in run_dirs:
            merged = store.merge(run_dir / STORE_FILE)
            report.append((run_dir, merged.added, merged.skipped))
    return report


def read_settings(run_dir: Path) -> dict[str, Any]:
    """The settings stored in RUN_DIR/run.json (exactly the fields of ``ScoreSettings``), or one clear error."""
    from dataclasses import fields

    path = run_dir / SETTINGS_FILE
    restore = f"the values in {STORE_FILE} are intact: restore {SETTINGS_FILE} as robustnas score wrote it, or give another --out"
    try:
        settings = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise RobustnasError(f"{path}: unreadable settings ({error}); {restore}") from None
    if not isinstance(settings, dict):
        raise RobustnasError(f"{path}: not a robustnas run settings file (a JSON object); {restore}")
    expected = {field.name for field in fields(ScoreSettings)}
    if set(settings) != expected:
        odd = sorted(set(settings) - expected) + sorted(expected - set(settings))
        raise RobustnasError(f"{path}: not the settings of a scoring run (unknown or missing: {', '.join(odd)}); {restore}")
    return settings


def _require_run_dir(run_dir: Path) -> None:
    if not (run_dir / STORE_FILE).is_file() or not (run_dir / SETTINGS_FILE).is_file():
        raise RobustnasError(f"{run_dir} is not a scoring run directory (no {STORE_FILE} / {SETTINGS_FILE})")
