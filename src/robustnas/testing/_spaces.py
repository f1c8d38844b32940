"""Conformance checks every registered search space must pass (``check_space``).

    from robustnas.testing import check_space
    check_space("darts")                 # raises AssertionError naming the first broken promise
    check_space(MySpace(), sizes={"width": 4})

The checks hold a space to the promises the rest of robustnas relies on: every encoding reads back
to the same architecture, keys are canonical and stable, random moves are deterministic per seed
and never change their input, the flat (Optuna) encoding round-trips and every assignment of it
decodes, networks return logits for the asked class count, a supernet (where the space has one)
discretises to an architecture of the space, and bad input is a one-line ``RobustnasError``. ``sizes`` makes the network check fast (e.g. ``{"C": 4, "layers": 5}``).
"""
from __future__ import annotations

import json
import random
from typing import Any

from robustnas.errors import RobustnasError
from robustnas.spaces import REGISTRY, Space, get

SAMPLES = 8
BAD_INPUTS: tuple[Any, ...] = ("not an architecture", "{\"space\": \"none of these\"}", {"cells": 3}, 3.5, None)


def check_space(space: str | Space, sizes: dict[str, Any] | None = None, samples: int = SAMPLES) -> None:
    """Run every check on ``space`` (a registered name or a Space instance)."""
    space = get(space)
    for check in (
        check_attributes, check_round_trips, check_determinism, check_moves, check_flat_encoding,
        check_population, check_published, check_bad_input,
    ):  # fmt: skip
        check(space, samples)
    check_network(space, sizes or {})
    check_supernet(space, sizes or {})


def _archs(space: Space, count: int, seed: int = 0) -> list[Any]:
    rng = random.Random(seed)
    return [space.sample(rng) for _ in range(count)]


def check_attributes(space: Space, samples: int = SAMPLES) -> None:
    """Name, label, summary and sizes are set; the registry answers the name with this space."""
    for attribute in ("name", "label", "summary", "default_sizes"):
        assert getattr(space, attribute, None) not in (None, ""), f"{type(space).__name__} lacks {attribute}"
    assert isinstance(space.default_sizes, dict), f"{space.name}: default_sizes must be a dict"
    if space.name in REGISTRY:
        assert REGISTRY[space.name] is space, f"{space.name}: the registry holds another space of that name"
    assert "json" in space.formats and "string" in space.formats, f"{space.name}: formats must include string and json"


def check_round_trips(space: Space, samples: int = SAMPLES) -> None:
    """str, record, JSON and key read back to the same architecture; canonical is idempotent."""
    for arch in _archs(space, samples, seed=1) + [space.random_arch(random.Random(s)) for s in range(samples)]:
        text = str(arch)
        assert space.parse(text) == arch, f"{space.name}: parse(str(arch)) != arch for {text}"
        assert space.parse(space.record(arch)) == arch, f"{space.name}: parse(record(arch)) != arch for {text}"
        assert json.loads(json.dumps(space.record(arch))) == space.record(arch), f"{space.name}: record is not JSON"
        from_json = space.parse(json.loads(space.convert(arch, "json")))
        assert from_json == arch, f"{space.name}: convert(arch, 'json') does not read back for {text}"
        assert space.convert(arch, "string") == text, f"{space.name}: convert(arch, 'string') != str(arch)"
        canonical = space.canonical(arch)
        assert space.canonical(canonical) == canonical, f"{space.name}: canonical is not idempotent for {text}"
        key = space.key(arch)
        assert isinstance(key, str) and "\n" not in key, f"{space.name}: a key must be one line of text"
        assert space.key(space.parse(key)) == key, f"{space.name}: key(parse(key)) != key for {key}"
        assert hash(arch) == hash(space.parse(text)), f"{space.name}: equal architectures hash differently"


def check_determinism(space: Space, samples: int = SAMPLES) -> None:
    """The same seed gives the same samples and mutations; random moves use only the given rng."""
    assert space.samples(samples, 5) == space.samples(samples, 5), f"{space.name}: samples(n, seed) not deterministic"
    assert _archs(space, samples, 7) == _archs(space, samples, 7), f"{space.name}: sample(rng) not deterministic"
    parents = _archs(space, samples, 9)
    first = [space.mutate(arch, random.Random(3)) for arch in parents]
    assert first == [space.mutate(arch, random.Random(3)) for arch in parents], f"{space.name}: mutate not deterministic"
    state = random.getstate()
    _archs(space, 2, 11)
    assert random.getstate() == state, f"{space.name}: sampling used the global random module, not the given rng"


def check_moves(space: Space, samples: int = SAMPLES) -> None:
    """Samples and mutations are canonical; a mutation differs from its parent and leaves it as it was."""
    rng = random.Random(13)
    for arch in _archs(space, samples, 13):
        assert space.canonical(arch) == arch, f"{space.name}: sample() returned a non-canonical {arch}"
        assert space.admissible(arch), f"{space.name}: sample() returned {arch}, outside the space (admissible)"
        before = str(arch)
        child = space.mutate(arch, rng)
        assert str(arch) == before, f"{space.name}: mutate changed its parent {before}"
        assert child != arch and space.canonical(child) == child, f"{space.name}: mutate gave {child} from {arch}"
        assert space.admissible(child), f"{space.name}: mutate gave {child}, outside the space (admissible)"
        try:
            neighbours = space.neighbours(arch)
        except RobustnasError:
            continue  # the space offers no neighbour list
        assert neighbours and all(n != arch for n in neighbours), f"{space.name}: neighbours must differ from {arch}"


def check_flat_encoding(space: Space, samples: int = SAMPLES) -> None:
    """encode gives a choice per parameter; decode(encode(a)) encodes the same; every assignment decodes."""
    choices = space.choices()
    assert choices and all(isinstance(v, tuple) and v for v in choices.values()), f"{space.name}: empty choices"
    for arch in _archs(space, samples, 17):
        try:
            encoded = space.encode(arch)
        except RobustnasError:
            continue  # outside the encoding (e.g. a DARTS genotype with another concat list)
        assert set(encoded) == set(choices), f"{space.name}: encode() keys differ from choices()"
        assert all(encoded[k] in choices[k] for k in choices), f"{space.name}: encode() left the choices"
        assert space.encode(space.decode(encoded)) == encoded, f"{space.name}: decode(encode(a)) encodes differently"
    rng = random.Random(19)
    for _ in range(samples):
        params = {name: rng.choice(values) for name, values in choices.items()}
        decoded = space.decode(params)
        assert space.canonical(decoded) == decoded, f"{space.name}: decode() gave a non-canonical architecture"
    missing = dict(list(params.items())[1:])
    _assert_one_line_error(lambda: space.decode(missing), f"{space.name}: decode() with a missing parameter")


def check_population(space: Space, samples: int = SAMPLES) -> None:
    """An enumerable space lists distinct canonical architectures; others refuse with one line."""
    if not space.enumerable:
        _assert_one_line_error(space.population, f"{space.name}: population() of a non-enumerable space")
        return
    population = space.population()
    keys = [space.key(arch) for arch in population]
    assert population and len(set(keys)) == len(keys), f"{space.name}: population() repeats architectures"
    assert all(space.canonical(a) == a for a in population[:1000]), f"{space.name}: population() not canonical"


def check_published(space: Space, samples: int = SAMPLES) -> None:
    """Published architectures are reachable by name and read back from their string."""
    for name, arch in space.published().items():
        assert space.parse(name) == arch, f"{space.name}: published name {name} does not parse to its architecture"
        assert space.parse(str(arch)) == arch, f"{space.name}: published {name} does not round-trip"


def check_bad_input(space: Space, samples: int = SAMPLES) -> None:
    """Malformed architectures are one-line RobustnasErrors (never a traceback of another type)."""
    for value in BAD_INPUTS:
        _assert_one_line_error(lambda: space.parse(value), f"{space.name}: parse({value!r})")


def check_network(space: Space, sizes: dict[str, Any]) -> None:
    """A network gives [N, classes] logits; the same torch seed builds the same weights."""
    import torch

    arch = _archs(space, 1, 23)[0]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = space.network(arch, 3, **sizes).eval()
        torch.manual_seed(0)
        again = space.network(arch, 3, **sizes)
        with torch.no_grad():
            logits = net(torch.randn(2, 3, 32, 32))
    assert isinstance(net, torch.nn.Module), f"{space.name}: network() must return an nn.Module"
    assert tuple(logits.shape) == (2, 3), f"{space.name}: network() logits have shape {tuple(logits.shape)}, not (2, 3)"
    first, second = net.state_dict(), again.state_dict()
    assert first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first), (
        f"{space.name}: the same torch seed built different weights"
    )


def check_supernet(space: Space, sizes: dict[str, Any]) -> None:
    """A space with ``supernet_sizes`` gives a supernet (logits, alphas apart from the weights) whose
    discretisation is an architecture of the space; one without refuses in one line."""
    import torch

    if space.supernet_sizes is None:
        _assert_one_line_error(lambda: space.supernet(3), f"{space.name}: supernet() of a space without one")
        return
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        supernet = space.supernet(3, **sizes)
        logits = supernet(torch.randn(2, 3, 32, 32))
    assert tuple(logits.shape) == (2, 3), f"{space.name}: supernet logits have shape {tuple(logits.shape)}"
    alphas = {id(p) for p in supernet.arch_parameters()}
    weights = {id(p) for p in supernet.weight_parameters()}
    assert alphas and not alphas & weights, f"{space.name}: the supernet's alphas must be apart from its weights"
    assert alphas | weights == {id(p) for p in supernet.parameters()}, f"{space.name}: a supernet parameter is neither"
    arch = space.discretize(supernet)
    assert space.parse(str(arch)) == arch, f"{space.name}: discretize() gave {arch}, not an architecture of the space"


def _assert_one_line_error(call: Any, what: str) -> None:
    try:
        call()
    except RobustnasError as error:
        assert "\n" not in str(error), f"{what}: the error spans several lines: {error}"
        return
    except Exception as error:  # noqa: BLE001 - the point is to report any other type
        raise AssertionError(f"{what} raised {type(error).__name__}, not a one-line RobustnasError: {error}") from None
    raise AssertionError(f"{what} raised no error")
