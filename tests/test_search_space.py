"""Space: NB201 over its 6,466 classes, DARTS/ARNAS genotypes as they are, the flat encoding."""
from __future__ import annotations

import random

import pytest

from robustnas.errors import RobustnasError
from robustnas.spaces import get as get_space
from robustnas.spaces.darts import DartsGenotype
from robustnas.spaces.nb201 import NB201Arch, unique_indices


def test_nb201_samples_are_uniform_over_the_classes():
    space, rng = get_space("nb201"), random.Random(0)
    drawn = [space.sample(rng) for _ in range(3000)]
    representatives = set(int(i) for i in unique_indices())
    assert all(arch.index in representatives for arch in drawn)
    # a uniform cell lands in a class with a `none`-cut output edge far more often than 1 in 6,466 classes do
    share = sum(arch.index == 0 for arch in drawn) / len(drawn)
    assert share < 0.003
    assert len(space.population()) == 6466 and space.population()[0].index == 0


def test_nb201_mutation_leaves_the_class_and_keys_are_representatives():
    space, rng = get_space("nb201"), random.Random(1)
    arch = space.canonical("|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|")
    assert arch.index == arch.isomorph_index and space.key(arch) == str(arch)
    for _ in range(50):
        child = space.mutate(arch, rng)
        assert child != arch and child.index == child.isomorph_index


@pytest.mark.parametrize("name, params", [("nb201", 6), ("darts", 24), ("arnas", 36)])
def test_flat_encoding_round_trips(name, params):
    space, rng = get_space(name), random.Random(2)
    choices = space.choices()
    assert len(choices) == params
    for _ in range(20):
        arch = space.sample(rng)
        encoded = space.encode(arch)
        assert all(encoded[key] in choices[key] for key in choices)
        decoded = space.decode(encoded)
        assert space.encode(decoded) == encoded
        if name == "nb201":
            assert decoded == arch
        else:  # the same pairs per node, lower input first
            for cell in arch.CELLS:
                pairs, back = getattr(arch, cell), getattr(decoded, cell)
                for at in range(0, len(pairs), 2):
                    assert sorted(pairs[at : at + 2], key=lambda p: p[1]) == list(back[at : at + 2])


def test_darts_genotypes_are_kept_as_given():
    space = get_space("darts")
    genotype = DartsGenotype.parse("DARTS_V2")
    assert space.canonical(genotype) is genotype and space.key(genotype) == str(genotype)


def test_encoding_errors_are_one_line():
    space = get_space("darts")
    with pytest.raises(RobustnasError, match="lacks normal_node2_inputs"):
        space.decode({})
    with pytest.raises(RobustnasError, match="too large to enumerate"):
        space.population()
    other_concat = DartsGenotype.parse("DARTS_V2").to_json() | {"normal_concat": [2, 3]}
    with pytest.raises(RobustnasError, match="keeps the default concat"):
        space.encode(DartsGenotype.from_json(other_concat))
