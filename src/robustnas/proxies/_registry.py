"""The proxy registry: one function per proxy, registered with what it needs and which way is better.

A proxy is ``fn(ev: Evaluation) -> float``. It reads the network, batch and seed from ``ev`` and
takes shared work (the cross-entropy forward/backward, the input Jacobian, ...) from ``ev``'s
memoised passes, so computing many proxies on one ``Evaluation`` does each pass once (fusion),
while a proxy computed alone runs exactly the same code on a fresh ``Evaluation``.

A proxy that is undefined for an architecture (e.g. the output does not depend on the input)
raises ``ProxyUndefined(reason)``; the engine turns it into NaN with that reason, never an
exception in a long run.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from robustnas.errors import RobustnasError

if TYPE_CHECKING:
    from robustnas.proxies._evaluation import Evaluation


class ProxyUndefined(Exception):
    """The proxy has no value for this network and batch; the message says why."""


@dataclass(frozen=True)
class ProxySpec:
    """A registered proxy and what a user needs to know to use it."""

    name: str
    fn: Callable[["Evaluation"], float]
    needs_data: bool
    needs_labels: bool
    higher_is_better: bool
    passes: float  # time in cross-entropy forward+backward passes of the same network and batch
    cost: str
    summary: str
    uses: frozenset[str] = frozenset()


REGISTRY: dict[str, ProxySpec] = {}


def register(
    name: str,
    *,
    needs_data: bool,
    needs_labels: bool,
    higher_is_better: bool,
    passes: float,
    cost: str,
    uses: tuple[str, ...] = (),
) -> Callable[[Callable[["Evaluation"], float]], Callable[["Evaluation"], float]]:
    """Decorator adding a proxy function to ``REGISTRY`` (its docstring's first line is the summary).

    ``passes`` is the proxy's time computed alone, in units of one cross-entropy forward+backward
    of the same network on the same batch (measured: docs/results/proxy-speed.md); long runs
    estimate their cost from it before they start. ``uses`` names recorders the shared forward pass must install for this proxy (see
    ``Evaluation``): "relu_codes", "layer_outputs", "input_grad".
    """

    def add(fn: Callable[["Evaluation"], float]) -> Callable[["Evaluation"], float]:
        if name in REGISTRY:
            raise RuntimeError(f"proxy {name!r} registered twice")
        summary = (fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else ""
        REGISTRY[name] = ProxySpec(
            name, fn, needs_data, needs_labels, higher_is_better, passes, cost, summary, frozenset(uses)
        )
        return fn

    return add


def resolve(names: str | list[str] | tuple[str, ...]) -> list[str]:
    """Proxy names from ``"all"``, a comma-separated string or a list; unknown names are an error."""
    if isinstance(names, str):
        names = list(REGISTRY) if names.strip() == "all" else [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in names if n not in REGISTRY]
    if unknown or not names:
        raise RobustnasError(
            f"unknown proxy {', '.join(unknown) or '(none given)'}; choose from: all, {', '.join(sorted(REGISTRY))}"
        )
    return list(dict.fromkeys(names))


def list_proxies() -> dict[str, str]:
    """Name -> one-line summary of every registered proxy."""
    return {name: spec.summary for name, spec in REGISTRY.items()}
