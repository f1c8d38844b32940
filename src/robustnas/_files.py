"""Atomic file writes: a kill at any moment leaves the old file or the new one, never a torn one.

Every result robustnas rewrites in place (checkpoints, weights, logs, reports, predictors, the
decoded-image cache) goes through :func:`atomic_write`: a temporary file in the same folder, flushed
to disk, then renamed over the target (``os.replace`` is atomic on POSIX and Windows).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO


@contextmanager
def atomic_write(path: str | Path) -> Iterator[BinaryIO]:
    """A binary handle whose content replaces ``path`` only when the ``with`` block ends without error.

    The temporary name carries the process id, so two processes writing the same file never
    share a temporary; on any error the temporary is removed and ``path`` is left as it was.
    """
    path = Path(path)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        with open(partial, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, path)
    except OSError as error:
        if error.filename in (None, str(partial)):  # a failed write names no file or the temporary: name the target
            raise OSError(error.errno, error.strerror, str(path)) from error
        raise
    finally:
        partial.unlink(missing_ok=True)


def torch_save(path: str | Path, obj: object) -> None:
    """Atomically write ``torch.save(obj)``: serialised in memory first, so a full disk is an
    ``OSError`` naming ``path`` (torch's own writer reports it as a RuntimeError)."""
    import io

    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    replace_file(path, buffer.getbuffer())


def replace_file(path: str | Path, content: bytes | memoryview | str) -> None:
    """Atomically set the content of ``path`` (text is written as UTF-8)."""
    with atomic_write(path) as handle:
        handle.write(content.encode() if isinstance(content, str) else content)


LOCK_FILE = ".robustnas.lock"


@contextmanager
def run_lock(folder: str | Path) -> Iterator[None]:
    """Hold ``folder`` (created if missing) for one command: a second command on it is a one-line error.

    An advisory ``flock`` on FOLDER/.robustnas.lock; the system drops it when the holder exits, even by
    ``kill -9``, so a stopped run never leaves the folder locked. Without ``fcntl`` (Windows) no lock.
    """
    from robustnas.errors import RobustnasError

    try:
        import fcntl
    except ImportError:
        yield
        return
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / LOCK_FILE, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RobustnasError(
                f"{folder} is in use by another robustnas command; wait for it to end or give another --out"
            ) from None
        yield
