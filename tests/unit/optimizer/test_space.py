"""The search space: every vector decodes to a valid configuration, equal configurations
share one hash, and the compact parameterisation places boundaries by the spread rule."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from llmproxy.optimizer.pcs.space import Candidate, SearchSpace, canonical_candidate

SIZES = np.geomspace(10, 1e7, 500)


@pytest.mark.parametrize("kind", ["compact", "full"])
def test_every_vector_decodes_to_a_valid_configuration(kind: str) -> None:
    space = SearchSpace.build(kind, SIZES, gpus=64)
    rng = np.random.default_rng(7)
    seen_classes = set()
    for x in rng.random((400, space.dimensions)):
        candidate = space.decode(x)
        config = candidate.config
        seen_classes.add(config.num_classes)
        assert 1 <= config.num_classes <= 6
        assert sum(config.weights) == Fraction(1)
        assert math.isinf(config.thresholds[-1])
        assert list(config.thresholds) == sorted(set(config.thresholds))
        assert candidate.max_job_gpus is None or 1 <= candidate.max_job_gpus <= 64
    assert seen_classes == {1, 2, 3, 4, 5, 6}


def test_compact_space_spans_class_counts_caps_and_weight_decay() -> None:
    space = SearchSpace.build("compact", SIZES, gpus=64)
    one = space.decode([0.0, 0.5, 0.5, 0.5, 0.95])
    assert one.config.num_classes == 1 and one.max_job_gpus is None
    capped = space.decode([0.99, 0.1, 0.5, 1.0, 0.0])
    assert capped.max_job_gpus == 1
    weights = [float(w) for w in capped.config.weights]
    assert weights == sorted(weights, reverse=True)  # geometric decay: small jobs first
    equal = space.decode([0.99, 0.1, 0.5, 0.0, 0.5])
    assert max(equal.config.weights) - min(equal.config.weights) <= Fraction(5, 1000)


def test_compact_boundaries_bound_the_spread_inside_each_class() -> None:
    space = SearchSpace.build("compact", SIZES, gpus=64)
    # spread_u=0.2 -> ratio 10^(0.3+0.94) ~ 17; growth_u=0.5 -> growth 1 (equal spreads)
    candidate = space.decode([0.99, 0.2, 0.5, 0.5, 0.95])
    bounds = candidate.config.thresholds
    assert len(bounds) == 5  # a sixth class would hold no job: not kept
    low = SIZES[0]
    for bound in bounds[:-1]:
        inside = SIZES[(SIZES >= low) & (SIZES <= bound)]
        assert inside.max() / inside.min() <= 10 ** (0.3 + 4.7 * 0.2) * 1.01
        low = SIZES[SIZES > bound][0]


def test_a_boundary_above_every_job_is_not_kept() -> None:
    space = SearchSpace.build("compact", [10.0, 20.0, 40.0], gpus=8)
    candidate = space.decode([0.99, 1.0, 1.0, 0.5, 0.95])
    assert candidate.config.num_classes == 1


def test_equal_configurations_share_a_hash_and_round_trip() -> None:
    a = canonical_candidate([1234.4, 5e6], [0.95, 0.048, 0.002], 8)
    b = canonical_candidate([1233.9, 5.0004e6], [95, 4.8, 0.2], 8)
    assert a == b and a.config_hash == b.config_hash
    assert (
        canonical_candidate([1234.4, 5e6], [0.95, 0.048, 0.002], None).config_hash != a.config_hash
    )
    assert Candidate.from_mapping(a.to_mapping()) == a


def test_bad_vectors_and_spaces_are_refused() -> None:
    with pytest.raises(ValueError, match="compact space takes 5 values"):
        SearchSpace.build("compact", SIZES, 64).decode([0.5] * 4)
    with pytest.raises(ValueError, match="space 'tiny' is not one of compact, full"):
        SearchSpace.build("tiny", SIZES, 64)
    with pytest.raises(ValueError, match="weights for"):
        canonical_candidate([10.0], [1.0], None)
