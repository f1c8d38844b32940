"""Conformance checks for what users plug into robustnas; each raises AssertionError saying what is wrong."""
from robustnas.testing.attacks import check_attack

__all__ = ["check_attack"]
