"""Conformance checks for plug-ins: every registered space, proxy, attack and strategy must pass
them (the test suite runs them over each registry, the way scikit-learn checks estimators).

    from robustnas.testing import check_space
    check_space("croze-darts")      # AssertionError naming the first broken promise, else None
"""
from robustnas.testing.spaces import check_space

__all__ = ["check_space"]
