"""Where work over many architectures runs: local processes (the default) or a Ray cluster.

One seam for every command that evaluates many things (``score``, ``search``, ``evaluate``)::

    with make_executor("ray", workers=8) as executor:
        for index, result in executor.map_unordered(task, items, shared):
            store(items[index], result)          # the driver is the single writer

``task(shared, item)`` is a module-level function (it travels to other processes by reference);
``shared`` is what every call needs (a data batch, a model), sent once: to each local worker
when it starts, into Ray's object store by ``ray.put``. Results come back as they finish, in any
order, so the caller stores each at once and a killed run loses only the work in flight.

Engines:

* ``local`` (:class:`LocalExecutor`): today's process pool (``robustnas._workers``), nothing to
  start; one worker runs in the calling process.
* ``ray`` (:class:`RayExecutor`, ``pip install 'robustnas[ray]'``): Ray core tasks, following
  Ray's guidance: items go in chunks (not one task per item; shrinking towards the end, so the
  last chunks finish together), at most ``2 x workers`` chunks are
  in flight, ``ray.wait`` hands each chunk back the moment it is done, every task reserves
  ``threads`` CPUs (and one GPU on CUDA) and sets torch's thread count to it, a task whose worker
  or node dies is retried (``max_retries``), and one killed by Ray's memory monitor comes back as
  :class:`Failed` items (recorded as undefined, not retried forever). Errors raised by the task
  itself are not retried: they stop the run, as they would locally.

A task must give the same result wherever it runs (seeded by its item, not by call order): then
``ray`` and ``local`` runs store the same values, bit for bit at the same thread count.
"""
from __future__ import annotations

import math
import os
import socket
from abc import ABC, abstractmethod
from concurrent.futures import as_completed
from contextlib import ExitStack
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from robustnas.errors import RobustnasError

ENGINES = ("local", "ray")
MAX_RETRIES = 3  # Ray: re-runs of a chunk whose worker or node died
CHUNKS_PER_WORKER = 4  # Ray: a chunk is at most this fraction of a worker's share of the remaining items
MAX_CHUNK = 8  # Ray: items per chunk at most (a killed driver loses at most the chunks in flight)
IN_FLIGHT_PER_WORKER = 2  # Ray: chunks submitted per worker ahead of results

Task = Callable[[Any, Any], Any]


@dataclass(frozen=True)
class Failed:
    """The result of an item the engine could not compute (e.g. its Ray worker ran out of memory)."""

    reason: str


def out_of_memory(error: BaseException) -> str:
    """The reason stored with the values of a work unit that ran out of memory (tasks catch
    ``torch.OutOfMemoryError`` and ``MemoryError``: one network too large does not stop a run)."""
    return f"out of memory: {_first_line(error)}"


def default_threads(workers: int) -> int:
    """Torch threads per worker: this machine's cores shared among ``workers``."""
    return max(1, (os.cpu_count() or 1) // workers)


class Executor(ABC):
    """Runs ``task(shared, item)`` over items, yielding ``(index, result)`` as each finishes."""

    name: str

    def __init__(self, workers: int = 1, threads: int | None = None, device: str = "cpu") -> None:
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise RobustnasError(f"--workers must be >= 1, got {workers!r}")
        if threads is not None and threads < 1:
            raise RobustnasError(f"threads per worker must be >= 1, got {threads}")
        self.workers, self.device = workers, device
        self.threads = threads or default_threads(workers)

    @abstractmethod
    def map_unordered(self, task: Task, items: Sequence[Any], shared: Any = None) -> Iterator[tuple[int, Any]]:
        """``(index into items, task(shared, item))`` for every item, in the order they finish."""

    def describe(self) -> dict[str, Any]:
        """The engine's settings, for run records (not part of any value's key)."""
        return {"engine": self.name, "workers": self.workers, "threads": self.threads}

    def close(self) -> None:
        """Release what the executor started (no process outlives the command)."""

    def __enter__(self) -> "Executor":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---- local -------------------------------------------------------------------------------------
_SHARED: dict[str, Any] = {}


def _set_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def _init_local_worker(shared: Any, threads: int) -> None:
    _set_threads(threads)
    _SHARED["value"] = shared


def _call_local(task: Task, item: Any) -> Any:
    return task(_SHARED["value"], item)


class LocalExecutor(Executor):
    """A pool of ``workers`` local processes (``robustnas._workers.process_pool``), started on first
    use and kept for later calls with the same ``shared``; one worker runs in this process. Each
    process uses ``threads`` torch threads (one worker without ``threads``: this process's setting)."""

    name = "local"

    def __init__(self, workers: int = 1, threads: int | None = None, device: str = "cpu") -> None:
        super().__init__(workers, threads, device)
        self._own_threads = workers == 1 and threads is None  # one worker in this process: torch as it is
        self._stack = ExitStack()
        self._pool: Any = None
        self._pool_shared: Any = None

    def map_unordered(self, task: Task, items: Sequence[Any], shared: Any = None) -> Iterator[tuple[int, Any]]:
        if not items:
            return
        if self.workers == 1:
            if not self._own_threads:
                _set_threads(self.threads)
            for index, item in enumerate(items):
                yield index, task(shared, item)
            return
        pool = self._pool_for(shared)
        futures = {pool.submit(_call_local, task, item): index for index, item in enumerate(items)}
        for future in as_completed(futures):
            yield futures[future], future.result()

    def _pool_for(self, shared: Any) -> Any:
        from robustnas._workers import process_pool

        if self._pool is None or shared is not self._pool_shared:
            self.close()
            self._pool = self._stack.enter_context(process_pool(self.workers, _init_local_worker, (shared, self.threads)))
            self._pool_shared = shared
        return self._pool

    def close(self) -> None:
        self._stack.close()
        self._pool = self._pool_shared = None

    def __exit__(self, *exc: Any) -> None:
        self._stack.__exit__(*exc)  # an exception (Ctrl-C, a failed store) stops the workers at once
        self._pool = self._pool_shared = None


# ---- Ray ---------------------------------------------------------------------------------------
def _run_chunk(task: Task, shared: Any, items: Sequence[Any], threads: int) -> list[Any]:
    """One Ray task: ``task`` over a chunk of items with an explicit torch thread count."""
    _set_threads(threads)
    return [task(shared, item) for item in items]


def chunk_size(remaining: int, workers: int) -> int:
    """Items of the next Ray task (guided self-scheduling): a CHUNKS_PER_WORKER-th of each worker's
    share of what remains, at most MAX_CHUNK, so chunks shrink towards the end and no worker
    finishes a long last chunk alone while the others wait."""
    return max(1, min(MAX_CHUNK, math.ceil(remaining / (workers * CHUNKS_PER_WORKER))))


class RayExecutor(Executor):
    """Ray core tasks on the cluster at ``address`` ("auto", "HOST:PORT"; None: ``RAY_ADDRESS``
    if set, else a Ray started for this command with ``workers x threads`` CPUs and stopped at
    its end). A Ray already initialised in this process is used as it is."""

    name = "ray"

    def __init__(
        self, workers: int = 1, threads: int | None = None, device: str = "cpu", address: str | None = None,
        max_retries: int = MAX_RETRIES,
    ) -> None:
        super().__init__(workers, threads, device)
        self.address = address or os.environ.get("RAY_ADDRESS") or None
        self.max_retries = max_retries
        self._ray = _import_ray()
        self._started = False  # this executor called ray.init (close() calls ray.shutdown)
        self._owns_ray = False  # ... and that started a Ray of its own (not a cluster's)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "address": self.address or "local"}

    def __enter__(self) -> "RayExecutor":
        self._connect()  # a wrong address fails before the run starts
        return self

    def _connect(self) -> None:
        ray = self._ray
        if ray.is_initialized():
            return
        options: dict[str, Any] = {"include_dashboard": False, "logging_level": "WARNING", "log_to_driver": True}
        if self.address is None:
            options |= {"num_cpus": self.workers * self.threads, "num_gpus": 1 if self._gpu() else 0}
        else:
            _check_reachable(self.address)
        try:
            ray.init(address=self.address, **options)
            self._owns_ray = self.address is None
        except (ConnectionError, self._ray.exceptions.AuthenticationError) as error:
            raise RobustnasError(f"cannot join the Ray cluster at {self.address!r}: {_first_line(error)}") from None
        self._started = True

    def _gpu(self) -> bool:
        return self.device.startswith("cuda")

    def map_unordered(self, task: Task, items: Sequence[Any], shared: Any = None) -> Iterator[tuple[int, Any]]:
        if not items:
            return
        self._connect()
        ray = self._ray
        remote = ray.remote(_run_chunk).options(
            num_cpus=self.threads, num_gpus=1 if self._gpu() else 0, max_retries=self.max_retries,
            retry_exceptions=False,
        )
        shared_ref = ray.put(shared)
        submitted = 0  # items go out in order, in chunks of chunk_size(items not yet submitted)
        pending: dict[Any, list[int]] = {}
        try:
            while submitted < len(items) or pending:
                while submitted < len(items) and len(pending) < IN_FLIGHT_PER_WORKER * self.workers:
                    indices = list(range(submitted, submitted + chunk_size(len(items) - submitted, self.workers)))
                    pending[remote.remote(task, shared_ref, [items[i] for i in indices], self.threads)] = indices
                    submitted += len(indices)
                ready, _ = ray.wait(list(pending), num_returns=1)
                indices = pending.pop(ready[0])
                yield from zip(indices, self._chunk_results(ready[0], indices))
        finally:
            if pending and not self._owns_ray:  # Ctrl-C, an error while storing: stop the cluster's work in flight
                for ref in pending:  # (a Ray of this command's own stops as a whole in close())
                    ray.cancel(ref)

    def _chunk_results(self, ref: Any, indices: list[int]) -> list[Any]:
        from ray import exceptions

        try:
            return self._ray.get(ref)
        except exceptions.OutOfMemoryError as error:
            return [Failed(f"{out_of_memory(error)} (Ray's memory monitor stopped the worker)")] * len(indices)
        except (exceptions.WorkerCrashedError, exceptions.NodeDiedError, exceptions.ObjectLostError) as error:
            raise RobustnasError(
                f"a Ray worker or node died {self.max_retries + 1} times running one chunk ({_first_line(error)}); "
                "what is stored is kept: run the same command again to resume"
            ) from None
        except exceptions.RayTaskError as error:
            raise error.as_instanceof_cause() from None

    def close(self) -> None:
        if self._started:
            self._ray.shutdown()
            self._started = False


def _check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """One line, at once, where nothing listens at HOST:PORT (Ray itself keeps retrying for minutes)."""
    host, _, port = address.rpartition(":")
    if address == "auto" or "://" in address or not port.isdigit():
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as error:
        raise RobustnasError(
            f"cannot reach the Ray cluster at {address} ({error.strerror or error}); start it with `ray start --head` "
            "there, or give its head's HOST:PORT with --ray-address (or RAY_ADDRESS)"
        ) from None


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise RobustnasError("--engine ray needs Ray: pip install 'robustnas[ray]' (on every node)") from None
    return ray


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


# ---- choosing ----------------------------------------------------------------------------------
def make_executor(
    engine: str = "local", workers: int = 1, *, threads: int | None = None, device: str = "cpu",
    address: str | None = None,
) -> Executor:
    """The executor of ``engine`` ("local" or "ray"); ``address`` (a Ray cluster) only with ray."""
    if engine not in ENGINES:
        raise RobustnasError(f"unknown --engine {engine!r}; choose {' or '.join(ENGINES)}")
    if engine == "local":
        if address is not None:
            raise RobustnasError("--ray-address needs --engine ray")
        return LocalExecutor(workers, threads, device)
    return RayExecutor(workers, threads, device, address)
