"""Local worker processes that never outlive the command that started them.

Work over many architectures runs in a :func:`process_pool` (``robustnas score --workers N``).
Its workers

* exit on their own within :data:`WATCH_S` seconds when their parent dies, even by ``kill -9``
  (a thread in each worker watches the parent: its parent pid changes when it dies);
* ignore Ctrl-C: the terminal sends SIGINT to the whole process group, and the parent alone
  decides (it stops them, so no worker prints a traceback);
* are stopped at once when the parent leaves the pool with an exception (Ctrl-C, SIGTERM, an
  error while storing), instead of finishing their current architecture first.
"""
from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from typing import Any

WATCH_S = 0.5  # how often a worker checks that its parent is alive


@contextmanager
def process_pool(
    workers: int, initializer: Callable[..., None], initargs: tuple[Any, ...] = ()
) -> Iterator[ProcessPoolExecutor]:
    """A ``ProcessPoolExecutor`` of ``workers`` processes, each set up by ``initializer(*initargs)``."""
    pool = ProcessPoolExecutor(
        workers, initializer=_start_worker, initargs=(os.getpid(), initializer, initargs)
    )
    try:
        yield pool
    except BaseException:
        _stop_workers(pool)
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    """SIGTERM every worker (the executor has no public way to stop a running task)."""
    for process in list((pool._processes or {}).values()):
        if process.is_alive():
            process.terminate()


def _start_worker(parent_pid: int, initializer: Callable[..., None], initargs: tuple[Any, ...]) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a forked worker inherits the command's handler
    first_parent = os.getppid()  # our parent: the command, or a fork server it started
    threading.Thread(target=_exit_with_parent, args=(first_parent, parent_pid), daemon=True).start()
    initializer(*initargs)


def _exit_with_parent(first_parent: int, command_pid: int) -> None:
    """Exit the worker as soon as its parent or the command is gone (an orphan's parent pid changes)."""
    while os.getppid() == first_parent and _alive(command_pid):
        time.sleep(WATCH_S)
    os._exit(1)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True
