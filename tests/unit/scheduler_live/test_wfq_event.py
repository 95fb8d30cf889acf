"""WFQ configurations arriving in policy.updated events become core configurations."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest

from llmproxy.scheduler.core import ConfigError
from llmproxy.scheduler.engine import wfq_config_from_proto
from llmproxy.v1 import events_pb2


def event(*classes: tuple[float, float]) -> events_pb2.WfqConfig:
    return events_pb2.WfqConfig(
        classes=[events_pb2.WfqClass(size_boundary_seconds=b, weight=w) for b, w in classes]
    )


def test_weights_are_normalised_and_the_last_class_is_unbounded() -> None:
    config = wfq_config_from_proto(event((3600, 3.0), (math.inf, 1.0)))

    assert config.thresholds == (3600.0, math.inf)
    assert config.weights == (Fraction(3, 4), Fraction(1, 4))
    assert config.class_of(10.0) == 0 and config.class_of(1e6) == 1


@pytest.mark.parametrize(
    ("classes", "field"),
    [
        (((3600, 1.0), (7200, 1.0)), "thresholds"),  # last class bounded
        (((3600, 1.0), (math.inf, 0.0)), "weights"),
        (((7200, 1.0), (3600, 1.0), (math.inf, 1.0)), "thresholds"),
        ((), "thresholds"),
    ],
)
def test_a_bad_configuration_names_the_field(
    classes: tuple[tuple[float, float], ...], field: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        wfq_config_from_proto(event(*classes))
    assert caught.value.field == field
