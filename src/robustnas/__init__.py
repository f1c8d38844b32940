"""robustnas: find neural network architectures that are both accurate and robust."""
from __future__ import annotations

__version__ = "0.1.0"
