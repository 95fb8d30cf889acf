"""The gateway's request path with in-memory ports: what the caller and the bus see."""

from __future__ import annotations

import asyncio

import pytest

from llmproxy.gateway.ask import AskFlow, Caller
from llmproxy.gateway.catalog import load_catalog
from llmproxy.gateway.providers.fake import FakeProvider
from llmproxy.platform.bus.memory import InMemoryBus
from llmproxy.platform.bus.port import Envelope
from llmproxy.platform.bus.subjects import LLM_COMPLETED
from llmproxy.platform.errors import ProviderError, UnavailableError
from llmproxy.platform.events import decode_event
from llmproxy.v1 import cache_pb2, common_pb2, context_pb2, events_pb2, gateway_pb2

LOCAL = "smollm2-135m-instruct"


class FakeContext:
    def __init__(self) -> None:
        self.requests: list[context_pb2.BuildContextRequest] = []

    async def build(
        self, request: context_pb2.BuildContextRequest
    ) -> context_pb2.BuildContextReply:
        self.requests.append(request)
        return context_pb2.BuildContextReply(
            messages=[
                common_pb2.Message(role=common_pb2.ROLE_USER, content="earlier question"),
                common_pb2.Message(role=common_pb2.ROLE_ASSISTANT, content="earlier answer"),
                common_pb2.Message(role=common_pb2.ROLE_USER, content=request.prompt),
            ],
            report=common_pb2.ContextReport(
                strategy=common_pb2.CONTEXT_STRATEGY_FULL,
                tokens_sent=9,
                tokens_full_history=9,
                turns_sent=2,
                turns_total=2,
            ),
            conversation_id=request.scope.conversation_id or "conv-new",
        )


class FakeCache:
    """Hits for prompts it knows; otherwise a miss carrying a key; or fails when told to."""

    def __init__(self, known: dict[str, str] | None = None, fail: bool = False) -> None:
        self.known = known or {}
        self.fail = fail
        self.lookups: list[cache_pb2.CacheLookupRequest] = []

    async def lookup(self, request: cache_pb2.CacheLookupRequest) -> cache_pb2.CacheLookupReply:
        self.lookups.append(request)
        if self.fail:
            raise UnavailableError("cache service is unavailable: connection refused")
        if request.prompt in self.known:
            return cache_pb2.CacheLookupReply(
                report=common_pb2.CacheReport(
                    outcome=common_pb2.CACHE_OUTCOME_SEMANTIC_HIT,
                    similarity=0.97,
                    matched_prompt=request.prompt,
                ),
                answer=self.known[request.prompt],
                model=LOCAL,
                usage=common_pb2.TokenUsage(input_tokens=10, output_tokens=5),
            )
        return cache_pb2.CacheLookupReply(
            report=common_pb2.CacheReport(outcome=common_pb2.CACHE_OUTCOME_MISS),
            cache_key="key-123",
        )


async def _flow(
    provider: FakeProvider, cache: FakeCache | None = None
) -> tuple[AskFlow, InMemoryBus, FakeContext, list[events_pb2.LlmCompleted]]:
    bus, context = InMemoryBus(), FakeContext()
    seen: list[events_pb2.LlmCompleted] = []

    async def record(envelope: Envelope) -> None:
        seen.append(decode_event(envelope, events_pb2.LlmCompleted))

    await bus.subscribe(LLM_COMPLETED, record, consumer="test")
    catalog = load_catalog(None, environ={})
    flow = AskFlow(
        catalog=catalog, providers={LOCAL: provider}, context=context, bus=bus, cache=cache
    )
    return flow, bus, context, seen


async def _settle(flow: AskFlow, seen: list, count: int) -> None:  # type: ignore[type-arg]
    await flow.drain()
    for _ in range(100):
        if len(seen) >= count:
            return
        await asyncio.sleep(0.01)


async def test_ask_sends_the_built_context_and_reports_the_answer_and_its_cost() -> None:
    provider = FakeProvider(LOCAL, answer="Paris is the capital.")
    flow, bus, context, seen = await _flow(provider)
    reply = await flow.ask(
        gateway_pb2.AskRequest(prompt="capital of France?", system_prompt="be brief"),
        Caller("acme", "app1"),
    )
    assert reply.answer == "Paris is the capital."
    assert (reply.choice.model, reply.choice.policy) == (LOCAL, "default")
    assert reply.conversation_id == "conv-new"
    assert reply.usage.output_tokens == 4 and reply.context.turns_sent == 2
    assert reply.cost.cost_nanousd == 0 and reply.cost.saved_nanousd > 0
    # the caller's identity comes from authentication, never from the request body
    assert context.requests[0].scope.tenant_id == "acme"
    assert [m.content for m in provider.requests[0].messages][-1] == "capital of France?"

    await _settle(flow, seen, 1)
    (event,) = seen
    assert event.request_id == reply.request_id and event.meta.event_id
    assert (event.scope.tenant_id, event.scope.conversation_id) == ("acme", "conv-new")
    assert event.user_prompt == "capital of France?" and event.answer == reply.answer
    assert event.usage == reply.usage and not event.error
    await bus.close()


async def test_a_message_list_is_stateless_and_skips_the_context_service() -> None:
    provider = FakeProvider(LOCAL)
    flow, bus, context, seen = await _flow(provider)
    reply = await flow.ask(
        gateway_pb2.AskRequest(
            messages=[common_pb2.Message(role=common_pb2.ROLE_USER, content="hi")]
        ),
        Caller("acme", "app1"),
    )
    assert not context.requests
    assert reply.context.strategy == common_pb2.CONTEXT_STRATEGY_NONE
    await _settle(flow, seen, 1)
    assert seen[0].user_prompt == ""  # nothing for the context service to remember
    await bus.close()


async def test_a_provider_failure_reaches_the_caller_and_is_recorded_as_an_error() -> None:
    flow, bus, _, seen = await _flow(FakeProvider(LOCAL, fail="model crashed"))
    with pytest.raises(ProviderError, match="model crashed"):
        await flow.ask(gateway_pb2.AskRequest(prompt="hi"), Caller("acme", "app1"))
    await _settle(flow, seen, 1)
    assert seen[0].error and seen[0].error_message == "model crashed"
    await bus.close()


async def test_streaming_yields_the_choice_first_then_text_then_the_full_reply() -> None:
    flow, bus, _, seen = await _flow(FakeProvider(LOCAL, answer="one two three"))
    chunks = [
        c async for c in flow.ask_stream(gateway_pb2.AskRequest(prompt="count"), Caller("t", "a"))
    ]
    assert chunks[0].accepted.choice.model == LOCAL
    assert "".join(c.delta for c in chunks[1:-1]) == "one two three "
    assert chunks[-1].final.answer == "one two three"
    await _settle(flow, seen, 1)
    assert seen[0].answer == "one two three"
    await bus.close()


async def test_a_cache_hit_answers_for_free_without_calling_the_provider() -> None:
    provider = FakeProvider(LOCAL, answer="from the model")
    cache = FakeCache({"capital of France?": "Paris (cached)."})
    flow, bus, _context, seen = await _flow(provider, cache)
    reply = await flow.ask(gateway_pb2.AskRequest(prompt="capital of France?"), Caller("acme", "a"))
    assert reply.answer == "Paris (cached)." and not provider.requests
    assert reply.cache.outcome == common_pb2.CACHE_OUTCOME_SEMANTIC_HIT
    assert reply.cost.cost_nanousd == 0 and reply.cost.saved_nanousd > 0
    assert reply.choice.policy == "cache"
    # looked up in the caller's scope and the conversation's context
    (lookup,) = cache.lookups
    assert lookup.key.scope.tenant_id == "acme" and lookup.key.model_class == LOCAL
    await _settle(flow, seen, 1)
    assert seen[0].cache.outcome == common_pb2.CACHE_OUTCOME_SEMANTIC_HIT
    assert seen[0].user_prompt == "capital of France?" and not seen[0].cache_key
    await bus.close()


async def test_a_miss_calls_the_model_and_hands_the_cache_its_key_in_the_event() -> None:
    provider = FakeProvider(LOCAL, answer="from the model")
    flow, bus, _, seen = await _flow(provider, FakeCache())
    reply = await flow.ask(gateway_pb2.AskRequest(prompt="new question"), Caller("acme", "a"))
    assert reply.answer == "from the model"
    assert reply.cache.outcome == common_pb2.CACHE_OUTCOME_MISS
    await _settle(flow, seen, 1)
    assert seen[0].cache_key == "key-123"
    await bus.close()


async def test_an_unavailable_cache_is_a_miss_never_a_failed_request() -> None:
    provider = FakeProvider(LOCAL, answer="from the model")
    flow, bus, _, _ = await _flow(provider, FakeCache(fail=True))
    reply = await flow.ask(gateway_pb2.AskRequest(prompt="q"), Caller("acme", "a"))
    assert reply.answer == "from the model" and len(provider.requests) == 1
    await bus.close()


async def test_cache_off_skips_the_lookup() -> None:
    cache = FakeCache({"q": "cached"})
    flow, bus, _, _ = await _flow(FakeProvider(LOCAL), cache)
    request = gateway_pb2.AskRequest(
        prompt="q", cache=common_pb2.CachePolicy(mode=common_pb2.CACHE_MODE_OFF)
    )
    reply = await flow.ask(request, Caller("acme", "a"))
    assert not cache.lookups and reply.cache.outcome == common_pb2.CACHE_OUTCOME_BYPASSED
    await bus.close()


async def test_a_streamed_hit_yields_the_cached_answer() -> None:
    flow, bus, _, _ = await _flow(FakeProvider(LOCAL), FakeCache({"q": "cached answer"}))
    chunks = [
        c async for c in flow.ask_stream(gateway_pb2.AskRequest(prompt="q"), Caller("t", "a"))
    ]
    kinds = [c.WhichOneof("kind") for c in chunks]
    assert kinds == ["accepted", "delta", "final"]
    assert chunks[0].accepted.cache.outcome == common_pb2.CACHE_OUTCOME_SEMANTIC_HIT
    assert chunks[-1].final.answer == "cached answer"
    await bus.close()
