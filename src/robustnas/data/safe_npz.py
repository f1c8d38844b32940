"""Reading untrusted ``.npz`` files: every array's header is checked before anything is allocated.

``numpy.load`` alone would tell the user of a non-zip file to load it "unsafely" with
``allow_pickle``, and allocate whatever shape a corrupt ``.npy`` header claims (10**13 rows ->
MemoryError). Here each ``.npy`` member's header (NEP 1 format) is read first: arrays of Python
objects are refused by name (they would need unpickling), and a shape whose byte size exceeds
the bytes the member holds is rejected as corrupt. Members not named ``*.npy`` are ignored.
"""
from __future__ import annotations

import math
import zipfile
from pathlib import Path

import numpy as np
from numpy.lib import format as npy_format

from robustnas.data.zips import ZIP_ERRORS, open_zip
from robustnas.errors import RobustnasError

def read_npz(path: Path) -> dict[str, np.ndarray]:
    """All arrays of the ``.npz`` file at ``path`` by name (``x_train`` for ``x_train.npy``)."""
    arrays = {}
    with open_zip(path, ".npz file") as archive:
        for info in archive.infolist():
            if info.filename.endswith(".npy"):
                name = info.filename.removesuffix(".npy")
                arrays[name] = _read_member(f"{path}: array '{name}'", archive, info)
    return arrays


def _read_member(where: str, archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> np.ndarray:
    shape = _checked_shape(where, archive, info)
    try:
        with archive.open(info) as stream:
            return npy_format.read_array(stream, allow_pickle=False)
    except MemoryError:
        raise RobustnasError(f"{where}: shape {list(shape)} does not fit in memory") from None
    except ZIP_ERRORS as error:
        raise RobustnasError(f"{where}: not readable (truncated or corrupt?): {_reason(error)}") from None


def _checked_shape(where: str, archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> tuple[int, ...]:
    """The shape in the member's header, once its dtype and byte size are known to be loadable."""
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
    return shape


def _reason(error: BaseException) -> str:
    """The first line of an error, clipped (numpy's header errors can quote kilobytes of header)."""
    lines = str(error).splitlines()
    return lines[0][:200] if lines else type(error).__name__
