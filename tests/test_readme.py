"""The README's "Extending robustnas" examples run as written: each registers one entry, which then
passes its conformance check and works through the command line; the registries are restored."""
from __future__ import annotations

import json
import re
import sys
import types
from pathlib import Path

import pytest

from robustnas import spaces
from robustnas.attacks import _registry as attacks
from robustnas.cli import main
from robustnas.proxies import REGISTRY as PROXIES
from robustnas.search import _base as strategies

README = Path(__file__).parents[1] / "README.md"


def examples() -> list[str]:
    section = README.read_text(encoding="utf-8").split("## Extending robustnas", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.S)


@pytest.fixture
def registries():
    """Every registry as it was before the test, restored afterwards."""
    saved = [(registry, dict(registry)) for registry in (spaces.REGISTRY, PROXIES, attacks.REGISTRY, strategies.REGISTRY)]
    yield
    for registry, before in saved:
        registry.clear()
        registry.update(before)


def test_the_readme_shows_one_example_per_kind():
    assert len(examples()) == 4


def test_the_examples_run_and_plug_into_the_command_line(registries, monkeypatch, tmp_path, capsys):
    for number, code in enumerate(examples()):
        module = types.ModuleType(f"readme_example_{number}")  # dataclasses look their module up
        monkeypatch.setitem(sys.modules, module.__name__, module)
        exec(compile(code, str(README), "exec"), module.__dict__)
    assert "chain" in spaces.names() and "weight_count" in PROXIES
    assert "grey" in attacks.REGISTRY and "hill-climb" in strategies.names()
    out = tmp_path / "search"
    argv = ["search", "--space", "chain", "--strategy", "hill-climb", "--strategy-option", "pool=3",
            "--objective", "weight_count", "--budget", "10", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    result = json.loads((out / "result.json").read_text())
    # weight_count is the parameter count without biases: the 3x3 convs maximise it
    assert result["best_arch"] == "0-0-0" and result["best_value"]["weight_count"] == 3 * 8 * 9 + 3 * 8 * 8 * 9 + 8 * 10
