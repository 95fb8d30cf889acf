"""The cascade on the Ask path: a cheap answer that fails the answer check is asked again of
the next model; the reply says so and carries the cost of both calls, each call is
recorded; a good cheap answer, or no cascade asked for, is not escalated. Also the router's
expected-gain rule in the pure selection."""

from __future__ import annotations

import asyncio

from llmproxy.gateway.ask import AskFlow, Caller
from llmproxy.gateway.catalog import load_catalog
from llmproxy.gateway.core import TOKENS_PER_MESSAGE
from llmproxy.gateway.providers.fake import FakeProvider
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


async def _flow(cheap_answer: str, *, rule: str = "confidence"):  # type: ignore[no-untyped-def]
    bus = InMemoryBus()
    seen: list[events_pb2.LlmCompleted] = []

    async def record(envelope: Envelope) -> None:
        seen.append(decode_event(envelope, events_pb2.LlmCompleted))

    await bus.subscribe(LLM_COMPLETED, record, consumer="test")
    providers = {
        CHEAP: FakeProvider(CHEAP, answer=cheap_answer),
        STRONG: FakeProvider(STRONG, answer="The capital of France is Paris."),
    }
    flow = AskFlow(
        catalog=load_catalog(None, environ={"OPENAI_API_KEY": "test"}),
        providers=providers,
        context=Context(),
        bus=bus,
        router=Router(rule),
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
