"""Restricted unpickling of dataset batch files (CIFAR python batches, ImageNet16 batches).

A pickle can call any importable function while it loads, so a downloaded "dataset" could run
code. These files only hold dicts, lists, str/bytes, ints and numpy arrays; dicts, lists, str,
bytes and ints need no global at all, so the allowlist is just what rebuilds a numpy array:

* ``numpy.ndarray``, ``numpy.dtype`` and ``multiarray._reconstruct`` -- arrays pickled with
  protocols 0-4, including the Python 2 originals (CIFAR: protocol 2, ``numpy.core`` names, the
  pixel buffer as a Python 2 str that the ``latin1`` encoding turns back into the exact bytes);
* ``numeric._frombuffer`` -- arrays pickled by current Python/numpy with protocol 5.

Each is accepted under both the numpy 1 (``numpy.core``) and numpy 2 (``numpy._core``) module
names. Anything else (``os.system``, ``builtins.eval``, ...) raises RobustnasError before it runs.
"""
from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np

from robustnas.errors import RobustnasError

try:  # numpy >= 2
    from numpy._core import multiarray as _multiarray
    from numpy._core import numeric as _numeric
except ImportError:  # numpy 1.x
    from numpy.core import multiarray as _multiarray  # type: ignore[no-redef]
    from numpy.core import numeric as _numeric  # type: ignore[no-redef]

_ALLOWED: dict[tuple[str, str], Any] = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}
for _core in ("numpy.core", "numpy._core"):
    _ALLOWED[(f"{_core}.multiarray", "_reconstruct")] = _multiarray._reconstruct
    _ALLOWED[(f"{_core}.numeric", "_frombuffer")] = _numeric._frombuffer


class _ArrayOnlyUnpickler(pickle.Unpickler):
    def __init__(self, file: Any, path: Path) -> None:
        super().__init__(file, encoding="latin1")
        self._path = path

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise RobustnasError(
                f"{self._path}: refusing to unpickle: it references {module}.{name}, which a dataset "
                "batch never needs (pickles can run code); only dicts, lists and numpy arrays are allowed"
            ) from None


def load_batch_pickle(path: Path) -> dict[str, Any]:
    """Load one pickled dataset batch as a dict with str keys, allowing only array globals."""
    try:
        with open(path, "rb") as file:
            content = _ArrayOnlyUnpickler(file, path).load()
    except RobustnasError:
        raise
    except (
        OSError,
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        TypeError,
        AttributeError,
        IndexError,
        KeyError,
        MemoryError,
        OverflowError,
    ) as error:
        raise RobustnasError(
            f"{path}: not a readable pickle batch (truncated or corrupt?): {error}"
        ) from None
    if not isinstance(content, dict):
        raise RobustnasError(
            f"{path}: expected a pickled dict of 'data' and labels, got {type(content).__name__}"
        )
    return {
        key.decode("latin1") if isinstance(key, bytes) else str(key): value for key, value in content.items()
    }
