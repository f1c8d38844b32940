"""Shared fixtures: the development data in ../shared/data.

Tests that need the real data skip with a clear reason where it is absent (a user's machine),
but under CI=true its absence is a failure, so CI always runs them.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _require(path: Path) -> Path:
    if path.exists():
        return path
    message = f"development data not found at {path} (clone the repository next to ../shared)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message + " -- required under CI=true")
    pytest.skip(message)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Root of ../shared/data (skip where absent, fail under CI=true)."""
    return _require(SHARED_DATA)


@pytest.fixture(scope="session")
def nb201_data(shared_data: Path) -> Path:
    return _require(shared_data / "nb201")


@pytest.fixture(scope="module")
def one_thread():
    """Tiny tensors: a second OpenMP thread on a busy machine costs more than it saves (restored).

    Use with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
