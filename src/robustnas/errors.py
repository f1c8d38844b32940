"""The one error type users see: a one-line message naming the problem and the fix."""
from __future__ import annotations


class RobustnasError(ValueError):
    """Bad input or an unusable file; the CLI prints the message on one line and exits with 2."""


class ArchError(RobustnasError):
    """A malformed architecture or genotype description."""
