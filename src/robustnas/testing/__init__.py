"""Conformance checks that a plug-in (a search strategy, ...) behaves as robustnas needs."""
from robustnas.testing.strategies import check_strategy

__all__ = ["check_strategy"]
