"""Every registered proxy keeps the contract of robustnas.testing.check_proxy; the check catches a
proxy that breaks it."""
from __future__ import annotations

import pytest
import torch

from robustnas.proxies import REGISTRY, list_proxies, register
from robustnas.testing import check_proxy

pytestmark = pytest.mark.usefixtures("one_thread")


def test_the_registry_is_full_on_import():
    assert len(REGISTRY) == 16 and list(list_proxies())[:3] == ["params", "flops", "l2_norm"]
    assert all(summary and "\n" not in summary for summary in list_proxies().values())


@pytest.mark.parametrize("name", list(REGISTRY))
def test_every_registered_proxy_keeps_the_contract(name):
    check_proxy(name)


@pytest.fixture
def careless():
    """A proxy that trains the network it is given (registered for one test)."""

    @register("careless", needs_data=True, needs_labels=True, higher_is_better=True, passes=1.0, cost="one SGD step")
    def careless(ev):
        """Loss after one in-place SGD step on the model itself."""
        loss = torch.nn.functional.cross_entropy(ev.model(ev.x), ev.y)
        loss.backward()
        with torch.no_grad():
            for p in ev.model.parameters():
                p -= 0.1 * p.grad
        return float(loss.detach())

    yield "careless"
    REGISTRY.pop("careless")


def test_a_proxy_that_changes_the_model_fails_the_check(careless):
    with pytest.raises(AssertionError, match="careless: changed the model's weights and buffers"):
        check_proxy(careless)
