"""The request path's promises: retries, fallback, limits before spend, honest ledgers."""

from __future__ import annotations

import asyncio

import pytest

from llmproxy.gateway.access import Caller
from llmproxy.gateway.ask import AskFlow, RetryPolicy
from llmproxy.gateway.catalog import parse_catalog
from llmproxy.gateway.limits import LimitExceededError, LimitRule
from llmproxy.gateway.providers.fake import FakeProvider
from llmproxy.gateway.reservations import InMemoryLimitStore, LimitGuard
from llmproxy.platform.bus.memory import InMemoryBus
from llmproxy.platform.bus.port import Envelope
from llmproxy.platform.bus.subjects import LLM_COMPLETED
from llmproxy.platform.errors import InvalidArgumentError, ProviderError
from llmproxy.platform.events import decode_event
from llmproxy.v1 import common_pb2, events_pb2, gateway_pb2

CATALOG = parse_catalog(
    {
        "default_model": "cheap",
        "reference_model": "strong",
        "models": [
            {"name": "cheap", "context_window": 64, "quality": 0.4,
             "price_per_million": {"input": 1, "output": 2}},
            {"name": "backup", "context_window": 4096, "quality": 0.5,
             "price_per_million": {"input": 1, "output": 2}},
            {"name": "strong", "context_window": 4096, "quality": 0.9,
             "price_per_million": {"input": 10, "output": 30}},
        ],
    },
    environ={},
)  # fmt: skip
CALLER = Caller("acme", "acme:web", "k1")


class FlakyProvider(FakeProvider):
    """Fails ``failures`` times with a retryable error, then answers."""

    def __init__(self, name: str, failures: int, *, retryable: bool = True) -> None:
        super().__init__(name, answer="ok")
        self.failures, self.retryable = failures, retryable

    async def complete(self, request):  # type: ignore[no-untyped-def]
        self.requests.append(request)
        if self.failures:
            self.failures -= 1
            raise ProviderError(
                f"{self.name} overloaded", provider=self.name, retryable=self.retryable
            )
        return self._result(request)


async def _flow(providers: dict, limits: LimitGuard | None = None):  # type: ignore[no-untyped-def, type-arg]
    bus, seen, waits = InMemoryBus(), [], []

    async def record(envelope: Envelope) -> None:
        seen.append(decode_event(envelope, events_pb2.LlmCompleted))

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    await bus.subscribe(LLM_COMPLETED, record, consumer="test")
    flow = AskFlow(
        catalog=CATALOG, providers=providers, context=None, bus=bus,  # type: ignore[arg-type]
        limits=limits, retry=RetryPolicy(retries=2, base_delay_s=0.1), sleep=sleep,
        jitter=lambda: 1.0,
    )  # fmt: skip
    return flow, bus, seen, waits


async def _delivered(flow: AskFlow, seen: list, count: int) -> None:  # type: ignore[type-arg]
    """Background work done and ``count`` events handed to the subscriber."""
    await flow.drain()
    for _ in range(100):
        if len(seen) >= count:
            return
        await asyncio.sleep(0.01)


def _ask(text: str = "hello", **kwargs: object) -> gateway_pb2.AskRequest:
    return gateway_pb2.AskRequest(
        messages=[common_pb2.Message(role=common_pb2.ROLE_USER, content=text)], **kwargs
    )


async def test_a_retryable_error_is_retried_with_backoff_then_answers() -> None:
    cheap = FlakyProvider("cheap", failures=2)
    flow, bus, _, waits = await _flow({"cheap": cheap, "backup": FakeProvider("backup")})
    reply = await flow.ask(_ask(), CALLER)
    assert reply.choice.model == "cheap" and len(cheap.requests) == 3
    assert waits == [0.1, 0.2]  # exponential
    await bus.close()


async def test_a_failing_model_falls_back_to_the_next_allowed_and_says_so() -> None:
    cheap = FlakyProvider("cheap", failures=99, retryable=False)
    backup = FakeProvider("backup", answer="from backup")
    flow, bus, seen, waits = await _flow({"cheap": cheap, "backup": backup})
    reply = await flow.ask(
        _ask(preferences=common_pb2.Preferences(allowed_models=["cheap", "backup"])), CALLER
    )
    assert reply.answer == "from backup" and reply.choice.policy == "fallback"
    assert "cheap failed (cheap overloaded)" in reply.choice.reason
    assert len(cheap.requests) == 1 and not waits  # not retryable: no retries
    await _delivered(flow, seen, 1)
    assert [e.choice.model for e in seen] == ["backup"]
    # a pinned model never falls back
    with pytest.raises(ProviderError, match="cheap overloaded"):
        await flow.ask(_ask(preferences=common_pb2.Preferences(pinned_model="cheap")), CALLER)
    await _delivered(flow, seen, 2)
    assert seen[-1].error and seen[-1].cost.cost_nanousd == 0  # recorded, not charged
    await bus.close()


async def test_over_budget_and_oversized_requests_are_refused_before_any_provider_call() -> None:
    store = InMemoryLimitStore([LimitRule("lim_1", "acme", "requests", "minute", 1)])
    provider = FakeProvider("cheap")
    flow, bus, seen, _ = await _flow({"cheap": provider}, LimitGuard(store))
    await flow.ask(_ask(), CALLER)
    with pytest.raises(LimitExceededError, match="requests limit of tenant 'acme'"):
        await flow.ask(_ask(), CALLER)
    with pytest.raises(InvalidArgumentError, match="context window is 64 tokens"):
        await flow.ask(_ask("word " * 100), CALLER)
    assert len(provider.requests) == 1
    await _delivered(flow, seen, 2)
    assert len(seen) == 1  # refusals spend nothing and record nothing
    await bus.close()


async def test_a_money_limit_caps_max_tokens_and_settles_the_real_cost() -> None:
    store = InMemoryLimitStore([LimitRule("lim_1", "acme", "cost_nanousd", "day", 10**9)])
    provider = FakeProvider("backup", answer="two words")
    flow, bus, _, _ = await _flow({"backup": provider}, LimitGuard(store))
    reply = await flow.ask(_ask(preferences=common_pb2.Preferences(pinned_model="backup")), CALLER)
    assert provider.requests[0].max_tokens == 1024  # the reservation's bound, sent upstream
    await flow.drain()
    ((used, reserved),) = store.counters.values()
    assert (used, reserved) == (reply.cost.cost_nanousd, 0)
    await bus.close()


async def test_an_abandoned_stream_releases_its_reservation_and_is_recorded() -> None:
    store = InMemoryLimitStore([LimitRule("lim_1", "acme", "cost_nanousd", "day", 10**9)])
    flow, bus, seen, _ = await _flow(
        {"backup": FakeProvider("backup", answer="a b c d")}, LimitGuard(store)
    )
    stream = flow.ask_stream(
        _ask(preferences=common_pb2.Preferences(pinned_model="backup")), CALLER
    )
    assert (await stream.__anext__()).HasField("accepted")
    assert (await stream.__anext__()).delta == "a "
    await stream.aclose()  # the caller went away
    await _delivered(flow, seen, 1)
    ((used, reserved),) = store.counters.values()
    assert reserved == 0 and used > 0  # the generated token is paid for, the rest released
    assert seen[0].error and seen[0].answer == "a " and seen[0].cost.cost_nanousd == used
    await bus.close()
