"""How the gateway sizes a request for a capacity-limited model's queue (pure helpers)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from llmproxy.gateway.catalog import ModelSpec, Price
from llmproxy.gateway.core import QUOTE_OUTPUT_TOKENS
from llmproxy.gateway.queueing import (
    MIN_PROFILE_REQUESTS,
    predicted_output_tokens,
    queue_backend,
    service_seconds,
)
from llmproxy.gateway.selection import ModelProfile

MODEL = ModelSpec(
    name="local",
    provider="openai-compatible",
    provider_model="local",
    price=Price(Decimal(0), Decimal(0), Decimal(0)),
    context_window=4096,
    capacity_slots=4,
    first_token_ms=200,
    output_tokens_per_s=50,
)


def test_the_answer_length_is_max_tokens_else_a_typical_answer_within_the_budget() -> None:
    assert predicted_output_tokens(100, 1024) == 100
    assert predicted_output_tokens(None, 1024) == QUOTE_OUTPUT_TOKENS
    assert predicted_output_tokens(None, 50) == 50
    assert predicted_output_tokens(None, 0) == 1


def test_a_profile_with_enough_requests_sizes_the_request_else_the_catalog_prior() -> None:
    measured = ModelProfile(
        model="local",
        requests=MIN_PROFILE_REQUESTS,
        ttft_p50_s=0.05,
        time_per_output_token_p50_s=0.01,
    )
    assert service_seconds(MODEL, measured, 100) == pytest.approx((0.05, 0.01))
    few = ModelProfile(model="local", requests=3, time_per_output_token_p50_s=0.01)
    assert service_seconds(MODEL, few, 100) == pytest.approx((0.2, 0.02))
    assert service_seconds(MODEL, None, 100) == pytest.approx((0.2, 0.02))


def test_each_replica_has_its_own_pool_per_model() -> None:
    assert queue_backend("local", "host-50051") == "local@host-50051"


async def test_until_its_queue_is_registered_a_limited_model_is_served_without_it() -> None:
    from llmproxy.gateway.catalog import Catalog
    from llmproxy.gateway.queueing import BYPASSED, RequestQueues

    catalog = Catalog(models={"local": MODEL}, default_model="local", reference_model="local")
    queues = RequestQueues("127.0.0.1:1", catalog, replica="r1", tenant_weights={"gold": 3})
    assert queues.models == ("local",) and not queues.ready("local")
    assert (queues.weight("gold"), queues.weight("anyone")) == (3, 1.0)
    before = BYPASSED.labels("local", "not_registered")._value.get()
    admitted = await queues.admit(
        MODEL, tenant="acme", request_id="r", output_tokens=10, profile=None
    )
    assert admitted is None
    assert BYPASSED.labels("local", "not_registered")._value.get() == before + 1
    await queues.close()


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"LLMPROXY_QUEUE_TENANT_WEIGHTS": '{"acme": 0}'}, "queue_tenant_weights must be > 0"),
        ({"LLMPROXY_QUEUE_TENANT_WEIGHTS": '{"acme": -2}'}, "queue_tenant_weights must be > 0"),
        ({"LLMPROXY_QUEUE_MAX_WAIT": "20m"}, "reservation_ttl"),
        ({"LLMPROXY_SCHEDULER_ADDR": "no port"}, "scheduler_addr"),
    ],
)
def test_bad_queue_settings_are_refused_naming_the_setting(
    env: dict[str, str], words: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pydantic import ValidationError

    from llmproxy.gateway.service import Settings

    monkeypatch.setenv("LLMPROXY_SCHEDULER_ADDR", "127.0.0.1:50054")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=words):
        Settings()
