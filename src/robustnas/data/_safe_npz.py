"""Reading untrusted ``.npz`` files: every array's header is checked before anything is allocated.

``numpy.load`` alone would tell the user of a non-zip file to load it "unsafely" with
``allow_pickle``, and allocate whatever shape a corrupt ``.npy`` header claims (10**13 rows ->
MemoryError). Here each ``.npy`` member's header (NEP 1 format) is read first: arrays of Python
objects are refused by name (they would need unpickling), and a shape whose byte size exceeds
the bytes the member holds is rejected as corrupt, and arrays whose total size exceeds the
machine's physical memory are refused before any is read (a small compressed file can claim
terabytes; Linux would rather kill the process than raise MemoryError). Members not named
``*.npy`` are ignored.
"""
from __future__ import annotations

import math
import os
import zipfile
from pathlib import Path

import numpy as np
from numpy.lib import format as npy_format

from robustnas.data._zips import ZIP_ERRORS, open_zip
from robustnas.errors import RobustnasError

def read_npz(path: Path) -> dict[str, np.ndarray]:
    """All arrays of the ``.npz`` file at ``path`` by name (``x_train`` for ``x_train.npy``)."""
    with open_zip(path, ".npz file") as archive:
        members = {
            info.filename.removesuffix(".npy"): info for info in archive.infolist() if info.filename.endswith(".npy")
        }
        shapes = {name: _checked_shape(_where(path, name), archive, info) for name, info in members.items()}
        _check_fits_in_memory(path, sum(claimed for _, claimed in shapes.values()))
        return {
            name: _read_member(_where(path, name), archive, info, shapes[name][0]) for name, info in members.items()
        }


def _where(path: Path, name: str) -> str:
    return f"{path}: array '{name}'"


def _check_fits_in_memory(path: Path, total_bytes: int) -> None:
    """Refuse arrays larger in total than the machine's physical memory (where the OS reports it)."""
    memory = physical_memory()
    if memory is not None and total_bytes > memory:
        raise RobustnasError(
            f"{path}: its arrays need {total_bytes:,} bytes but this machine has {memory:,} bytes of memory; "
            "split the file or use a machine with more memory"
        )


def physical_memory() -> int | None:
    """Bytes of physical memory, or None where the OS does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def _read_member(where: str, archive: zipfile.ZipFile, info: zipfile.ZipInfo, shape: tuple[int, ...]) -> np.ndarray:
    try:
        with archive.open(info) as stream:
            return npy_format.read_array(stream, allow_pickle=False)
    except MemoryError:
        raise RobustnasError(f"{where}: shape {list(shape)} does not fit in memory") from None
    except ZIP_ERRORS as error:
        raise RobustnasError(f"{where}: not readable (truncated or corrupt?): {_reason(error)}") from None


def _checked_shape(where: str, archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> tuple[tuple[int, ...], int]:
    """The shape in the member's header and its byte size, once its dtype and size are known to be loadable."""
    try:
        with archive.open(info) as stream:
            version = npy_format.read_magic(stream)
            # Headers 2.0 and 3.0 differ only in text encoding, which changes neither shape nor dtype size.
            if version == (1, 0):
                shape, _, dtype = npy_format.read_array_header_1_0(stream)
            else:
                shape, _, dtype = npy_format.read_array_header_2_0(stream)
            data_bytes = info.file_size - stream.tell()
    except ZIP_ERRORS as error:
        raise RobustnasError(
            f"{where}: not a valid .npy array (truncated or corrupt?): {_reason(error)}"
        ) from None
    if dtype.hasobject:
        raise RobustnasError(
            f"{where} holds Python objects (dtype {dtype}), which robustnas will not unpickle; "
            "store numbers or strings"
        )
    if min(shape, default=0) < 0:
        raise RobustnasError(f"{where}: its header claims an impossible shape {list(shape)} (corrupt?)")
    claimed = math.prod(shape) * dtype.itemsize
    if claimed > data_bytes:
        raise RobustnasError(
            f"{where}: its header claims shape {list(shape)} of {dtype} ({claimed:,} bytes) but the "
            f"file holds {data_bytes:,} bytes of data (truncated or corrupt?)"
        )
    return shape, claimed


def _reason(error: BaseException) -> str:
    """The first line of an error, clipped (numpy's header errors can quote kilobytes of header)."""
    lines = str(error).splitlines()
    return lines[0][:200] if lines else type(error).__name__
