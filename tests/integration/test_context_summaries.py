"""Turns remembered from ``llm.completed`` and the rolling summary refreshed behind them."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from llmproxy.context.recorder import TurnRecorder
from llmproxy.context.repository import ConversationRepository
from llmproxy.context.strategies import ContextRequest, PlannedMessage, Strategy, plan_context
from llmproxy.context.summaries import (
    SUMMARY_TASK,
    ProviderSummaryModel,
    SummaryAnswer,
    SummaryRefresher,
)
from llmproxy.context.summary import SummaryPolicy
from llmproxy.gateway.catalog import parse_catalog
from llmproxy.gateway.providers.fake import FakeProvider
from llmproxy.platform.bus.port import Envelope
from llmproxy.platform.bus.subjects import LLM_COMPLETED
from llmproxy.platform.db import create_engine
from llmproxy.platform.db.engine import session_factory
from llmproxy.platform.db.models import Turn
from llmproxy.platform.embeddings import WordHashEmbedder
from llmproxy.platform.events import new_event_meta
from llmproxy.platform.tokens import count_tokens
from llmproxy.v1 import common_pb2, events_pb2
from tests.integration.test_context_service import PublishedEvents

POLICY = SummaryPolicy(keep_recent=2, min_batch=2)
CATALOG = parse_catalog(
    {
        "models": [
            {"name": "big", "price_per_million": {"input": 2.5, "output": 10}},
            {"name": "small", "price_per_million": {"input": 0.15, "output": 0.6}},
        ]
    },
    environ={},
)


def completed(conversation_id: str, n: int, strategy: int) -> Envelope:
    event = events_pb2.LlmCompleted(
        meta=new_event_meta("gateway"),
        request_id=f"req-{n}",
        scope=common_pb2.Scope(tenant_id="acme", app_id="app", conversation_id=conversation_id),
        context=common_pb2.ContextReport(strategy=strategy),
        user_prompt=f"fact number {n} is {n * 7}",
        answer=f"noted {n}",
    )
    return Envelope(LLM_COMPLETED, event.meta.event_id, event.SerializeToString())


async def setup(url: str) -> tuple:  # type: ignore[type-arg]
    engine = create_engine(url)
    sessions = session_factory(engine)
    async with sessions.begin() as session:
        conversation = await ConversationRepository(session).create(
            tenant_id="acme", app_id="app", user_id="", now=datetime.now(UTC)
        )
    return engine, sessions, conversation.id


async def test_replies_under_summary_fold_older_turns_into_a_summary_in_the_background(
    db_url: str,
) -> None:
    engine, sessions, conversation_id = await setup(db_url)
    provider = FakeProvider("small", answer="facts 1 and 2: 7 and 14")
    bus = PublishedEvents()
    refresher = SummaryRefresher(
        sessions,
        ProviderSummaryModel(CATALOG.models["small"], provider, timeout=timedelta(seconds=5)),
        policy=POLICY,
        count_tokens=count_tokens,
        bus=bus,  # type: ignore[arg-type]
    )
    recorder = TurnRecorder(
        sessions, count_tokens, embedder=WordHashEmbedder(), refresher=refresher
    )
    try:
        for n in (1, 2, 3):
            await recorder(completed(conversation_id, n, common_pb2.CONTEXT_STRATEGY_SUMMARY))
        await refresher.drain()

        async with sessions() as session:
            repo = ConversationRepository(session)
            conversation = await repo.get(tenant_id="acme", conversation_id=conversation_id)
            history = await repo.history(conversation, embeddings=True)
        # 6 turns; the newest 2 stay verbatim, the 4 before them were folded
        assert conversation.summary == "facts 1 and 2: 7 and 14"
        assert conversation.summary_upto_seq == 4
        assert all(t.embedding is not None for t in history)
        # one fold after reply 2 (turns 1-2), one after reply 3 (turns 3-4, onto the summary)
        first, second = (r.messages[-1].content for r in provider.requests)
        assert "fact number 1 is 7" in first and "fact number 2" not in first
        assert "fact number 2 is 14" in second and "facts 1 and 2: 7 and 14" in second
        assert "fact number 3" not in first + second

        plan = plan_context(
            ContextRequest(
                strategy=Strategy.SUMMARY,
                system_prompt="",
                prompt="what was fact 1?",
                history=history,
                summary=conversation.summary,
                summary_upto_seq=conversation.summary_upto_seq,
            ),
            count_tokens,
        )
        assert [m.content for m in plan.messages[1:-1]] == ["fact number 3 is 21", "noted 3"]
        assert plan.turns_summarized == 4 and plan.tokens_sent < plan.tokens_full_history

        # the summariser's spend is recorded for the profiler, and remembered as no turn
        assert [subject for subject, _ in bus.events] == [LLM_COMPLETED, LLM_COMPLETED]
        data = bus.events[-1][1]
        spend = events_pb2.LlmCompleted.FromString(data)
        assert spend.task_category == SUMMARY_TASK and not spend.user_prompt
        assert spend.scope.tenant_id == "acme" and spend.choice.model == "small"
        assert (
            spend.cost.cost_nanousd
            == CATALOG.models["small"].price.cost_nanousd(
                spend.usage.input_tokens, spend.usage.output_tokens
            )
            > 0
        )
        await recorder(Envelope(LLM_COMPLETED, spend.meta.event_id, data))
        async with sessions() as session:
            assert len(list(await session.scalars(select(Turn)))) == 6
    finally:
        await refresher.close()
        await engine.dispose()


async def test_replies_under_other_strategies_never_call_the_summariser(sqlite_db_url: str) -> None:
    engine, sessions, conversation_id = await setup(sqlite_db_url)
    provider = FakeProvider("small")
    refresher = SummaryRefresher(
        sessions,
        ProviderSummaryModel(CATALOG.models["small"], provider, timeout=timedelta(seconds=5)),
        policy=POLICY,
        count_tokens=count_tokens,
    )
    recorder = TurnRecorder(sessions, count_tokens, refresher=refresher)
    for n in range(1, 6):
        await recorder(completed(conversation_id, n, common_pb2.CONTEXT_STRATEGY_RELEVANT))
    await refresher.drain()
    assert provider.requests == []
    await engine.dispose()


class GatedModel:
    """A summariser that answers only when the test lets it (to act meanwhile)."""

    def __init__(self) -> None:
        self.called = asyncio.Event()
        self.release = asyncio.Event()

    async def summarize(
        self, messages: Sequence[PlannedMessage], *, max_tokens: int
    ) -> SummaryAnswer:
        self.called.set()
        await self.release.wait()
        return SummaryAnswer("stale summary", "local", "small", 10, 3, 0)


async def test_a_summary_finished_after_erasure_or_reset_is_thrown_away(sqlite_db_url: str) -> None:
    for action in ("erase", "reset"):
        engine, sessions, conversation_id = await setup(sqlite_db_url)
        model = GatedModel()
        refresher = SummaryRefresher(sessions, model, policy=POLICY, count_tokens=count_tokens)
        recorder = TurnRecorder(sessions, count_tokens)
        for n in (1, 2, 3):
            await recorder(completed(conversation_id, n, common_pb2.CONTEXT_STRATEGY_SUMMARY))
        refresher.request("acme", conversation_id)
        await asyncio.wait_for(model.called.wait(), 5)
        async with sessions.begin() as session:
            repo = ConversationRepository(session)
            conversation = await repo.get(tenant_id="acme", conversation_id=conversation_id)
            if action == "erase":
                await repo.delete(conversation)
            else:
                await repo.reset(conversation, now=datetime.now(UTC) + timedelta(seconds=1))
        model.release.set()
        await refresher.drain()
        async with sessions() as session:
            rows = list(await session.scalars(select(Turn)))
            if action == "erase":
                assert rows == []
            else:
                conversation = await ConversationRepository(session).get(
                    tenant_id="acme", conversation_id=conversation_id
                )
                assert conversation.summary is None and conversation.summary_upto_seq is None
        await engine.dispose()
