"""On-disk cache of decoded image archives, so JPEG/PNG folders and zips are decoded only once.

Location: ``$ROBUSTNAS_CACHE`` or ``~/.cache/robustnas``. An entry is two files in ``decoded/``
named by a hash of the source's absolute path, size and mtime plus what was read from it: the
pixels as ``.npy`` (memory-mapped on a hit, so a cached load costs milliseconds) and the labels,
provenance and class names as ``.meta.npz``, written last so that it marks a complete entry.
A changed or moved source gets a new key and is decoded afresh.
"""
from __future__ import annotations

import hashlib
import os
import warnings
import zipfile
from pathlib import Path
from typing import Callable

import numpy as np

from robustnas._files import atomic_write

CACHE_ENV = "ROBUSTNAS_CACHE"
_FORMAT_VERSION = "1"  # bump when the decoded content for the same key would change


def cache_dir() -> Path:
    """Root of the user cache (``$ROBUSTNAS_CACHE`` or ``~/.cache/robustnas``)."""
    configured = os.environ.get(CACHE_ENV, "").strip()
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "robustnas"


def cached_images(label: str, key: str, build: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The arrays stored under ``key`` (``images`` memory-mapped read-only), else build and store them.

    ``build`` returns a dict with an ``images`` array and small arrays. An unreadable entry is
    rebuilt; an unwritable cache only costs a warning.
    """
    digest = hashlib.sha256(f"{_FORMAT_VERSION}|{key}".encode()).hexdigest()[:24]
    folder, name = cache_dir() / "decoded", f"{label}-{digest}"
    pixels, meta = folder / f"{name}.npy", folder / f"{name}.meta.npz"
    if meta.is_file() and pixels.is_file():
        try:
            with np.load(meta, allow_pickle=False) as stored:
                arrays = {name: stored[name] for name in stored.files}
            arrays["images"] = np.load(pixels, mmap_mode="r", allow_pickle=False)
            return arrays
        except (OSError, ValueError, EOFError, zipfile.BadZipFile):
            pass
    arrays = build()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_write(pixels) as handle:
            np.save(handle, arrays["images"])
        with atomic_write(meta) as handle:
            np.savez(handle, **{field: value for field, value in arrays.items() if field != "images"})
    except OSError as error:
        warnings.warn(f"could not write the decoded-image cache {folder / name}: {error}", stacklevel=2)
    return arrays
