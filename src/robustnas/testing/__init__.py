"""Conformance checks for plug-ins: every registered space, proxy, attack and strategy must pass them;
the test suite runs them over each registry, the way scikit-learn checks estimators. Each raises
AssertionError naming the first broken promise.

    from robustnas.testing import check_space
    check_space("croze-darts")
"""
from robustnas.testing._attacks import check_attack
from robustnas.testing._proxies import check_proxy
from robustnas.testing._spaces import check_space
from robustnas.testing._strategies import check_strategy

__all__ = ["check_attack", "check_proxy", "check_space", "check_strategy"]
