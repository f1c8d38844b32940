"""Architecture search: strategies (ask/tell), objectives, and the resumable runner.

Importing the package registers every built-in strategy (``robustnas.search.base.names()``).
"""
from robustnas.search import strategies  # noqa: F401  (the classes register themselves, in this order)
from robustnas.search import nsga2  # noqa: F401
