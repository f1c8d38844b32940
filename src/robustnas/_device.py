"""The device a run computes on, checked before any work starts."""
from __future__ import annotations

from robustnas.errors import RobustnasError

DEVICES = ("cpu", "cuda")


def require_device(device: str, amp: bool = False) -> None:
    """``cuda`` needs a CUDA device; ``amp`` (mixed precision) needs ``cuda`` (one-line errors)."""
    if amp and device != "cuda":
        raise RobustnasError("--amp needs --device cuda (mixed precision is GPU-only here); drop --amp")
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise RobustnasError("--device cuda: no CUDA device is available here; use --device cpu")
