"""The cascade on the Ask path: a cheap answer that fails the answer check is asked again of
the next model; the reply says so and carries the cost of both calls, each call is
recorded; a good cheap answer, or no cascade asked for, is not escalated. AskStream does
the same, holding the cheap text back until it passed the check; an escalated request is
one ask in the metrics. Also the router's expected-gain rule in the pure selection."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from prometheus_client import REGISTRY

from llmproxy.gateway.ask import AskFlow, Caller
from llmproxy.gateway.catalog import load_catalog
from llmproxy.gateway.core import TOKENS_PER_MESSAGE
from llmproxy.gateway.limits import LimitRule
from llmproxy.gateway.providers.fake import FakeProvider
from llmproxy.gateway.providers.port import ChatRequest, StreamEvent
from llmproxy.gateway.reservations import InMemoryLimitStore, LimitGuard
from llmproxy.gateway.selection import Preferences, RouterAdvice, select_model
from llmproxy.platform.bus.memory import InMemoryBus
from llmproxy.platform.bus.port import Envelope
from llmproxy.platform.bus.subjects import LLM_COMPLETED
from llmproxy.platform.events import decode_event
from llmproxy.platform.tokens import count_tokens
from llmproxy.v1 import common_pb2, context_pb2, events_pb2, gateway_pb2

CHEAP, STRONG = "gpt-4o-mini", "gpt-4o"


class Context:
    async def build(
        self, request: context_pb2.BuildContextRequest
    ) -> context_pb2.BuildContextReply:
        return context_pb2.BuildContextReply(
            messages=[common_pb2.Message(role=common_pb2.ROLE_USER, content=request.prompt)],
            report=common_pb2.ContextReport(strategy=common_pb2.CONTEXT_STRATEGY_NONE),
        )


class Router:
    """A router sure the cheap model is right (so the cascade starts there)."""

    def __init__(self, rule: str = "confidence") -> None:
        self.rule = rule

    async def advise(self, prompt: str) -> RouterAdvice:
        threshold = 0.5 if self.rule == "confidence" else 0.2
        return RouterAdvice("v1", threshold, {CHEAP: 0.9, STRONG: 0.95}, rule=self.rule)


class WatchedProvider(FakeProvider):
    """Notes when it has streamed its whole answer (tells live deltas from held-back ones)."""

    streamed_all = False

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        async for event in super().stream(request):
            yield event
        self.streamed_all = True


async def _flow(  # type: ignore[no-untyped-def]
    cheap_answer: str, *, rule: str = "confidence", limits: LimitGuard | None = None
):
    bus = InMemoryBus()
    seen: list[events_pb2.LlmCompleted] = []

    async def record(envelope: Envelope) -> None:
        seen.append(decode_event(envelope, events_pb2.LlmCompleted))

    await bus.subscribe(LLM_COMPLETED, record, consumer="test")
    providers = {
        CHEAP: WatchedProvider(CHEAP, answer=cheap_answer),
        STRONG: WatchedProvider(STRONG, answer="The capital of France is Paris."),
    }
    flow = AskFlow(
        catalog=load_catalog(None, environ={"OPENAI_API_KEY": "test"}),
        providers=providers,
        context=Context(),
        bus=bus,
        router=Router(rule),
        limits=limits,
    )
    return flow, providers, seen


def _ask(cascade: bool = True) -> gateway_pb2.AskRequest:
    return gateway_pb2.AskRequest(
        prompt="What is the capital of France?",
        preferences=common_pb2.Preferences(
            allowed_models=[CHEAP, STRONG], allow_cascade=cascade
        ),
    )


async def _events(flow: AskFlow, seen: list[events_pb2.LlmCompleted], count: int) -> None:
    await flow.drain()
    for _ in range(100):
        if len(seen) >= count:
            return
        await asyncio.sleep(0.01)


async def test_a_cheap_answer_that_gives_up_is_escalated_and_both_calls_are_billed() -> None:
    flow, providers, seen = await _flow("I don't know.")
    reply = await flow.ask(_ask(), Caller("acme", "web"))
    assert reply.answer == "The capital of France is Paris."
    assert reply.choice.model == STRONG and reply.choice.escalated
    assert reply.choice.policy == "cascade:v1"
    assert "could not answer" in reply.choice.reason and CHEAP in reply.choice.reason
    assert len(providers[CHEAP].requests) == len(providers[STRONG].requests) == 1
    await _events(flow, seen, 2)
    cheap, strong = seen
    assert cheap.request_id == strong.request_id == reply.request_id
    assert (cheap.choice.model, strong.choice.model) == (CHEAP, STRONG)
    assert cheap.answer == "I don't know." and not cheap.error
    assert cheap.cost.cost_nanousd > 0 and strong.cost.cost_nanousd > 0
    # the reply carries what both calls cost; the ledger gets each call once
    assert reply.cost.cost_nanousd == cheap.cost.cost_nanousd + strong.cost.cost_nanousd
    assert reply.cost.saved_nanousd == reply.cost.reference_cost_nanousd - reply.cost.cost_nanousd
    assert reply.usage.output_tokens == cheap.usage.output_tokens + strong.usage.output_tokens


async def test_an_empty_cheap_answer_is_escalated_under_the_gain_rule_too() -> None:
    flow, _providers, _seen = await _flow("   ", rule="gain")
    reply = await flow.ask(_ask(), Caller("acme", "web"))
    assert reply.choice.model == STRONG and reply.choice.escalated
    assert "empty" in reply.choice.reason


async def test_a_good_cheap_answer_is_not_escalated() -> None:
    flow, providers, seen = await _flow("Paris.")
    reply = await flow.ask(_ask(), Caller("acme", "web"))
    assert (reply.answer, reply.choice.model, reply.choice.escalated) == ("Paris.", CHEAP, False)
    assert providers[STRONG].requests == []
    await _events(flow, seen, 1)
    assert [e.choice.model for e in seen] == [CHEAP]
    assert reply.cost.cost_nanousd == seen[0].cost.cost_nanousd


async def test_without_a_cascade_a_weak_answer_is_returned_as_is() -> None:
    flow, providers, _seen = await _flow("I don't know.")
    reply = await flow.ask(_ask(cascade=False), Caller("acme", "web"))
    assert (reply.answer, reply.choice.model) == ("I don't know.", CHEAP)
    assert reply.choice.policy == "router:v1" and not reply.choice.escalated
    assert providers[STRONG].requests == []


async def test_max_cost_that_cannot_pay_for_both_calls_keeps_the_cheap_answer() -> None:
    flow, providers, _seen = await _flow("I don't know.")
    request = _ask()
    request.generation.max_tokens = 100
    tokens = count_tokens(request.prompt) + TOKENS_PER_MESSAGE
    # the strong model alone fits max_cost (so it is an eligible escalation), the cheap
    # call's cost plus the strong one's does not
    request.preferences.max_cost_nanousd = flow.catalog.models[STRONG].price.cost_nanousd(
        tokens, 100
    )
    reply = await flow.ask(request, Caller("acme", "web"))
    assert reply.choice.model == CHEAP and providers[STRONG].requests == []


# -- AskStream: the cheap text is held back until it passed the check ------------------------


def _asks(outcome: str) -> float:
    """llmproxy_ask_requests_total{outcome} now (0 before its first count)."""
    value = REGISTRY.get_sample_value("llmproxy_ask_requests_total", {"outcome": outcome})
    return value or 0.0


def _sample(name: str, labels: dict[str, str]) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def _stream(  # type: ignore[no-untyped-def]
    flow: AskFlow, providers, request: gateway_pb2.AskRequest
) -> tuple[list[gateway_pb2.AskChunk], list[str], list[bool]]:
    """The chunks, the deltas' texts, and per delta whether the cheap model had finished."""
    chunks, deltas, cheap_done = [], [], []
    async for chunk in flow.ask_stream(request, Caller("acme", "web")):
        chunks.append(chunk)
        if chunk.WhichOneof("kind") == "delta":
            deltas.append(chunk.delta)
            cheap_done.append(providers[CHEAP].streamed_all)
    return chunks, deltas, cheap_done


async def test_a_streamed_cheap_answer_that_gives_up_streams_only_the_strong_answer() -> None:
    flow, providers, seen = await _flow("I don't know.")
    chunks, deltas, _ = await _stream(flow, providers, _ask())
    kinds = [c.WhichOneof("kind") for c in chunks]
    assert kinds[0] == "accepted" and kinds[-1] == "final"
    assert chunks[0].accepted.choice.model == CHEAP  # what was tried first
    # the caller never sees the cheap model's text, only the strong one's, as it came
    assert deltas == ["The ", "capital ", "of ", "France ", "is ", "Paris. "]
    final = chunks[-1].final
    assert (final.choice.model, final.choice.escalated) == (STRONG, True)
    assert "could not answer" in final.choice.reason
    await _events(flow, seen, 2)
    cheap, strong = seen
    assert cheap.request_id == strong.request_id == final.request_id
    assert (cheap.choice.model, strong.choice.model) == (CHEAP, STRONG)
    assert not cheap.error and not strong.error
    assert final.cost.cost_nanousd == cheap.cost.cost_nanousd + strong.cost.cost_nanousd
    assert final.usage.output_tokens == cheap.usage.output_tokens + strong.usage.output_tokens


async def test_a_good_streamed_cheap_answer_is_sent_once_checked_and_not_escalated() -> None:
    flow, providers, seen = await _flow("Paris is the capital.")
    chunks, deltas, cheap_done = await _stream(flow, providers, _ask())
    assert deltas == ["Paris ", "is ", "the ", "capital. "]
    assert all(cheap_done)  # held back until the whole answer was there to check
    final = chunks[-1].final
    assert (final.choice.model, final.choice.escalated) == (CHEAP, False)
    assert providers[STRONG].requests == []
    await _events(flow, seen, 1)
    assert [e.choice.model for e in seen] == [CHEAP]
    assert final.cost.cost_nanousd == seen[0].cost.cost_nanousd


async def test_without_a_cascade_a_streamed_weak_answer_goes_out_live_and_as_is() -> None:
    flow, providers, _seen = await _flow("I don't know.")
    chunks, deltas, cheap_done = await _stream(flow, providers, _ask(cascade=False))
    assert [c.WhichOneof("kind") for c in chunks] == ["accepted", *["delta"] * 3, "final"]
    assert deltas == ["I ", "don't ", "know. "]
    assert not any(cheap_done)  # each delta went out while the model was still streaming
    final = chunks[-1].final
    assert (final.choice.model, final.choice.escalated) == (CHEAP, False)
    assert providers[STRONG].requests == []


async def test_a_failed_streamed_escalation_sends_the_held_cheap_answer() -> None:
    flow, providers, seen = await _flow("I don't know.")
    providers[STRONG].fail = "model overloaded"
    chunks, deltas, _ = await _stream(flow, providers, _ask())
    assert deltas == ["I ", "don't ", "know. "]
    final = chunks[-1].final
    assert (final.choice.model, final.choice.escalated) == (CHEAP, False)
    assert "escalating to gpt-4o failed (model overloaded)" in final.choice.reason
    await _events(flow, seen, 2)
    assert [(e.choice.model, e.error) for e in seen] == [(CHEAP, False), (STRONG, True)]
    assert final.cost.cost_nanousd == seen[0].cost.cost_nanousd


async def test_a_caller_leaving_mid_escalation_settles_both_reservations() -> None:
    store = InMemoryLimitStore([LimitRule("lim_1", "acme", "cost_nanousd", "day", 10**9)])
    flow, _providers, seen = await _flow("I don't know.", limits=LimitGuard(store))
    failed = _asks("failed")
    stream = flow.ask_stream(_ask(), Caller("acme", "web"))
    async for chunk in stream:
        if chunk.WhichOneof("kind") == "delta":
            break  # the first of the strong model's text: the caller hangs up
    await stream.aclose()
    await _events(flow, seen, 2)
    cheap, strong = seen
    assert not cheap.error and strong.error and strong.answer == "The "
    # nothing stays reserved; what both calls generated is counted as used
    assert store.open == {}
    [(used, reserved)] = store.counters.values()
    assert reserved == 0 and used == cheap.cost.cost_nanousd + strong.cost.cost_nanousd > 0
    assert _asks("failed") == failed + 1  # one request, counted once


# -- metrics: an escalated request is one ask --------------------------------------------------


@pytest.mark.parametrize("streamed", [False, True])
async def test_an_escalated_request_counts_as_one_ask_and_both_calls_spend(
    streamed: bool,
) -> None:
    flow, providers, _seen = await _flow("I don't know.")
    answered = _asks("answered")
    timed = _sample("llmproxy_ask_seconds_count", {"outcome": "answered"})
    tokens = {
        model: _sample("llmproxy_tokens_total", {"model": model, "direction": "output"})
        for model in (CHEAP, STRONG)
    }
    if streamed:
        final = (await _stream(flow, providers, _ask()))[0][-1].final
    else:
        final = await flow.ask(_ask(), Caller("acme", "web"))
    assert final.choice.escalated
    assert _asks("answered") == answered + 1
    assert _sample("llmproxy_ask_seconds_count", {"outcome": "answered"}) == timed + 1
    # the tokens are real spend: both models count theirs
    for model, words in ((CHEAP, 3), (STRONG, 6)):
        now = _sample("llmproxy_tokens_total", {"model": model, "direction": "output"})
        assert now == tokens[model] + words


# -- the expected-gain rule of the pure selection -------------------------------------------


def _select(predictions: dict[str, float], threshold: float):  # type: ignore[no-untyped-def]
    catalog = load_catalog(None, environ={"OPENAI_API_KEY": "test"})
    return select_model(
        catalog,
        Preferences(objective="cost", allowed=(CHEAP, STRONG), allow_cascade=True),
        input_tokens=50,
        max_tokens=5,
        router=RouterAdvice("g1", threshold, predictions, rule="gain"),
    )


def test_the_gain_rule_escalates_only_when_the_strong_model_gains_enough() -> None:
    # both models likely wrong, but the strong one much less so: a gain of 0.4
    chosen = _select({CHEAP: 0.3, STRONG: 0.7}, 0.1)
    assert (chosen.model.name, chosen.escalated) == (STRONG, True)
    assert "expected gain +0.40" in chosen.reason
    # cheap model unsure but the strong one no better: stay cheap (confidence would escalate)
    chosen = _select({CHEAP: 0.3, STRONG: 0.35}, 0.1)
    assert (chosen.model.name, chosen.escalated) == (CHEAP, False)
    # a negative threshold escalates even a small expected loss... only when asked to
    assert _select({CHEAP: 0.8, STRONG: 0.78}, -0.05).model.name == STRONG
    assert _select({CHEAP: 0.8, STRONG: 0.78}, 0.0).model.name == CHEAP
