"""Conformance checks for a registered search strategy: ``check_strategy(name)``.

A strategy conforms when its declaration (name, summary, options) matches its constructor, its
command-line options refuse bad input in one line, it keeps the ask/tell protocol, it asks the
same architectures for the same seed and values, and a search killed after some evaluations and
resumed on its store ends exactly as an uninterrupted one. The objective is a cheap function of
the architecture's key (with some undefined and some infeasible architectures, as real
objectives have), so the checks take about a second per strategy.
"""
from __future__ import annotations

import math
import tempfile
import zlib
from pathlib import Path
from typing import Any

from robustnas.errors import RobustnasError
from robustnas.search._base import Strategy, describe_options, get, make_strategy, parse_options, strategy_options
from robustnas.search._run import search
from robustnas.spaces import Arch, Space
from robustnas.spaces import get as get_space
from robustnas.store import Store

SEED = 3
BUDGET = 60  # distinct architectures: past the first ask of the built-in strategies' defaults
KILLED_AFTER = 53  # evaluations before the search is killed
OBJECTIVES = 2  # values per evaluation for a multi-objective strategy


class Killed(Exception):
    """The objective's stand-in for a killed process."""


class KeyObjective:
    """A deterministic objective of the architecture's key; ``stop_after`` evaluations, then Killed.

    About one architecture in seven has an undefined (-inf) value, one in eleven is infeasible.
    """

    def __init__(self, space: Space, objectives: int, stop_after: int | None = None) -> None:
        self.space = space
        self.names = [f"key{i}" for i in range(objectives)]
        self.stop_after = stop_after
        self.calls = 0

    def config(self) -> dict[str, Any]:
        return {"objective": "check_strategy", "names": self.names}

    def feasible(self, arch: Arch) -> bool:
        return _hash(self.space.key(arch)) % 11 != 0

    def __call__(self, arch: Arch) -> tuple[float, ...]:
        if self.stop_after is not None and self.calls >= self.stop_after:
            raise Killed
        self.calls += 1
        return self.values(arch)

    def values(self, arch: Arch) -> tuple[float, ...]:
        key = self.space.key(arch)
        if _hash(key) % 7 == 0:
            return (-math.inf,) * len(self.names)
        return tuple(_hash(f"{name}:{key}") / 2**32 for name in self.names)


def check_strategy(name: str, space: str = "nb201") -> None:
    """Check the registered strategy ``name`` on ``space``; AssertionError names the first failure."""
    search_space = get_space(space)
    _check_declaration(name)
    _check_bad_options(name)
    if get(name).differentiable:
        _check_training(name, space)
        return
    first = _drive(name, search_space)
    _expect(first == _drive(name, search_space), name, "asked other architectures for the same seed and values")
    _check_replay(name, search_space)


def _check_declaration(name: str) -> None:
    """A summary and options as the command line needs them: each option a keyword of the constructor
    whose default is a number or text that reads back from its spelling."""
    strategy = get(name)
    summary = getattr(strategy, "summary", "")
    _expect(bool(summary.strip()) and "\n" not in summary, name, "needs a one-line summary for --help")
    try:
        options = strategy_options(strategy)
    except TypeError as error:
        raise AssertionError(f"{name}: {error}") from None
    for option in options:
        spelled = str(option.default)
        readable = option.type in (int, float, str) and option.type(spelled) == option.default
        _expect(readable, name, f"option {option.name}={spelled} does not parse back (defaults are int, float or str)")
    defaults = [f"{option.name}={option.default}" for option in options]
    _expect(parse_options(name, defaults) == {}, name, "options spelled at their defaults must parse to {}")


def _check_bad_options(name: str) -> None:
    """An unknown key, a text without '=' and an unparsable value: one line naming the options."""
    unparsable = [f"{option.name}=not-a-number" for option in strategy_options(get(name)) if option.type is not str]
    for text in ["no_such_option=1", "no_equals_sign", *unparsable]:
        try:
            parse_options(name, [text])
        except RobustnasError as error:
            message = str(error)
            _expect("\n" not in message and describe_options(name) in message, name,
                    f"--strategy-option {text}: the error must be one line naming the options, got {message!r}")
        else:
            raise AssertionError(f"{name}: --strategy-option {text} was accepted")


def _drive(name: str, space: Space) -> list[list[str]]:
    """Ask and tell (the protocol, checked) until BUDGET architectures are told; the keys asked."""
    objectives = _objectives(name)
    strategy = make_strategy(name, space, SEED, objectives=objectives)
    objective = KeyObjective(space, objectives)
    asked: list[list[str]] = []
    while sum(map(len, asked)) < BUDGET:
        archs = strategy.ask()
        _expect(isinstance(archs, list), name, f"ask() returned {type(archs).__name__}, not a list")
        if not archs:
            break  # nothing left to propose
        for arch in archs:
            _expect(space.parse(space.key(arch)) == arch, name, f"asked {arch!r}, not a canonical {space.name} arch")
            _check_tell(strategy, arch, objective.values(arch))
        asked.append([space.key(arch) for arch in archs])
    if not strategy.multi_objective:
        _check_best(strategy, objective, [space.parse(key) for batch in asked for key in batch])
    return asked


def _check_tell(strategy: Strategy, arch: Arch, values: tuple[float, ...]) -> None:
    """A NaN is refused with a one-line error and changes nothing; then the values are told."""
    name = strategy.name
    told = values if strategy.multi_objective else values[0]
    nan = (math.nan,) * len(values) if strategy.multi_objective else math.nan
    try:
        strategy.tell(arch, nan)
    except RobustnasError as error:
        _expect("\n" not in str(error), name, f"refused NaN in more than one line: {error}")
    else:
        raise AssertionError(f"{name}: tell() accepted NaN; undefined values are -inf")
    strategy.tell(arch, told)


def _check_best(strategy: Strategy, objective: KeyObjective, told: list[Arch]) -> None:
    """A single-objective strategy's best is the first told architecture of the highest value."""
    top = max(told, key=lambda arch: objective.values(arch)[0])
    expected = (top, objective.values(top)[0])
    _expect(strategy.best == expected, strategy.name, f"best is {strategy.best}, the highest told is {expected}")


def _check_replay(name: str, space: Space) -> None:
    """A search killed after KILLED_AFTER evaluations and resumed on its store ends as an uninterrupted one."""
    objectives = _objectives(name)

    def run(store_file: Path, objective: KeyObjective) -> list[tuple[str, tuple[float, ...], bool]]:
        with Store(store_file) as store:
            outcome = search(make_strategy(name, space, SEED, objectives=objectives), objective, BUDGET, store)
        return [(e.arch, e.values, e.stored) for e in outcome.evaluations]

    with tempfile.TemporaryDirectory() as folder:
        whole = run(Path(folder) / "whole.sqlite", KeyObjective(space, objectives))
        # a strategy may stop early (nothing new to ask): kill it before its end
        killed_after = min(KILLED_AFTER, len(whole) - 1)
        _expect(killed_after > 0, name, "the search evaluated fewer than 2 architectures")
        try:
            run(Path(folder) / "killed.sqlite", KeyObjective(space, objectives, stop_after=killed_after))
        except Killed:
            pass
        else:
            raise AssertionError(f"{name}: the search ended before {killed_after} evaluations the second time")
        resumed_objective = KeyObjective(space, objectives)
        resumed = run(Path(folder) / "killed.sqlite", resumed_objective)
    same = [(arch, values) for arch, values, _ in resumed] == [(arch, values) for arch, values, _ in whole]
    _expect(same, name, f"a search killed after {killed_after} evaluations resumed to other evaluations")
    stored = [stored for _, _, stored in resumed]
    _expect(stored == [True] * killed_after + [False] * (len(whole) - killed_after), name,
            "the resumed search did not read exactly the evaluations stored before the kill")
    _expect(resumed_objective.calls == len(whole) - killed_after, name, "the resumed search recomputed stored values")


# A differentiable strategy trains a tiny supernet on the embedded images instead (a few seconds).
TINY_SEARCH = {"epochs": 2, "channels": 4, "layers": 1, "per_class": 3, "pgd_steps": 1}
TINY_BATCH = 4
KILLED_AT_STEP = 1  # of 3 steps per epoch: the kill falls inside the second epoch


def _check_training(name: str, space: str) -> None:
    """A differentiable strategy (with the options epochs, channels, layers, per_class, pgd_steps)
    killed inside the second epoch of a tiny search and resumed writes the files of an uninterrupted
    run bit for bit (so its first epoch was reproduced from the seed too)."""
    from robustnas.search._gradient_run import run_gradient
    from robustnas.search._run import SearchSettings

    settings = SearchSettings(space, "cifar10", name, seed=SEED, batch_size=TINY_BATCH, options=TINY_SEARCH)
    outputs = ("steps.csv", "alphas.csv", "best_genotype.json")

    def files(folder: Path) -> dict[str, bytes]:
        return {file: (folder / file).read_bytes() for file in outputs}

    def stop(row: dict[str, float]) -> None:
        if row["epoch"] == 1 and row["step"] == KILLED_AT_STEP:
            raise Killed

    with tempfile.TemporaryDirectory() as folder:
        whole, killed = Path(folder) / "whole", Path(folder) / "killed"
        first = run_gradient(settings, whole, progress=False)
        try:
            run_gradient(settings, killed, progress=False, after_step=stop)
        except Killed:
            pass
        else:
            raise AssertionError(f"{name}: the search ended before step {KILLED_AT_STEP} of its second epoch")
        resumed = run_gradient(settings, killed, progress=False)
        _expect(files(whole) == files(killed), name, "a search killed in its second epoch resumed to other results")
        _expect(resumed["best_arch"] == first["best_arch"], name, "the resumed search found another architecture")


def _objectives(name: str) -> int:
    return OBJECTIVES if get(name).multi_objective else 1


def _hash(text: str) -> int:
    return zlib.crc32(text.encode())


def _expect(condition: bool, name: str, problem: str) -> None:
    if not condition:
        raise AssertionError(f"{name}: {problem}")
