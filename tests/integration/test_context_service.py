"""The Context gRPC service over a real database, as a caller sees it (status codes included).

Tenant isolation and erasure run on both backends (``db_url``); the rest on SQLite.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import grpc
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from llmproxy.context.repository import ConversationRepository
from llmproxy.context.servicer import ContextServicer
from llmproxy.context.strategies import ContextDefaults, Strategy
from llmproxy.platform.bus.subjects import CACHE_INVALIDATE
from llmproxy.platform.db import create_engine
from llmproxy.platform.db.engine import session_factory
from llmproxy.platform.db.models import Conversation, Turn
from llmproxy.platform.embeddings import Embedder, TextEmbedder, WordHashEmbedder
from llmproxy.platform.grpc_boundary import BoundaryInterceptor
from llmproxy.platform.tokens import count_tokens
from llmproxy.v1 import common_pb2, context_pb2, context_pb2_grpc, events_pb2

USER, ASSISTANT = common_pb2.ROLE_USER, common_pb2.ROLE_ASSISTANT


@dataclass
class PublishedEvents:
    """Records what the service publishes (only ``publish`` of the bus port is used)."""

    events: list[tuple[str, bytes]] = field(default_factory=list)

    async def publish(
        self, subject: str, data: bytes, *, event_id: str, headers: Mapping[str, str] | None = None
    ) -> None:
        self.events.append((subject, data))


@dataclass
class Running:
    stub: context_pb2_grpc.ContextStub
    sessions: async_sessionmaker[AsyncSession]
    bus: PublishedEvents


@asynccontextmanager
async def context_service(
    url: str,
    *,
    embedder: TextEmbedder | None = None,
    defaults: ContextDefaults | None = None,
) -> AsyncIterator[Running]:
    """The servicer behind a real gRPC server with the production boundary interceptor."""
    engine = create_engine(url)
    sessions = session_factory(engine)
    bus = PublishedEvents()
    server = grpc.aio.server(interceptors=[BoundaryInterceptor()])
    context_pb2_grpc.add_ContextServicer_to_server(
        ContextServicer(
            sessions,
            count_tokens,
            embedder=embedder,
            defaults=defaults,
            bus=bus,  # type: ignore[arg-type]
        ),
        server,
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield Running(context_pb2_grpc.ContextStub(channel), sessions, bus)
    finally:
        await channel.close()
        await server.stop(None)
        await engine.dispose()


def scope(tenant: str = "acme", conversation_id: str = "") -> common_pb2.Scope:
    return common_pb2.Scope(tenant_id=tenant, app_id="app", conversation_id=conversation_id)


def policy(strategy: int, **fields: int) -> common_pb2.ContextPolicy:
    return common_pb2.ContextPolicy(strategy=strategy, **fields)


async def new_conversation(
    stub: context_pb2_grpc.ContextStub, turns: list[tuple[int, str]], tenant: str = "acme"
) -> str:
    built = await stub.BuildContext(
        context_pb2.BuildContextRequest(
            scope=scope(tenant), prompt="hello", policy=policy(common_pb2.CONTEXT_STRATEGY_FULL)
        )
    )
    for start in range(0, len(turns), 2):  # one exchange per request, as the gateway appends
        await stub.AppendTurns(
            context_pb2.AppendTurnsRequest(
                scope=scope(tenant, built.conversation_id),
                turns=[
                    context_pb2.Turn(role=role, content=text)
                    for role, text in turns[start : start + 2]
                ],
                request_id=f"r{start}",
            )
        )
    return built.conversation_id


async def rows(sessions: async_sessionmaker[AsyncSession], model: type, **where: str) -> int:
    async with sessions() as session:
        query = select(func.count()).select_from(model)
        for name, value in where.items():
            query = query.where(getattr(model, name) == value)
        return int(await session.scalar(query) or 0)


async def status_of(call: object) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    return caught.value.code(), caught.value.details() or ""


# --- tenant isolation and erasure, on both backends ------------------------------------


async def test_another_tenants_conversation_is_not_found_exactly_like_an_unknown_one(
    db_url: str,
) -> None:
    async with context_service(db_url, embedder=WordHashEmbedder()) as svc:
        mine = await new_conversation(svc.stub, [(USER, "my secret"), (ASSISTANT, "noted")])
        ref = context_pb2.ConversationRef(scope=scope("intruder", mine))
        unknown = context_pb2.ConversationRef(scope=scope("acme", "no-such-id"))
        calls = {
            "get": (svc.stub.GetConversation(ref), svc.stub.GetConversation(unknown)),
            "reset": (svc.stub.ResetConversation(ref), svc.stub.ResetConversation(unknown)),
            "delete": (svc.stub.DeleteConversation(ref), svc.stub.DeleteConversation(unknown)),
            "build": (
                svc.stub.BuildContext(
                    context_pb2.BuildContextRequest(scope=scope("intruder", mine), prompt="hi")
                ),
                svc.stub.BuildContext(
                    context_pb2.BuildContextRequest(scope=scope("acme", "no-such-id"), prompt="hi")
                ),
            ),
            "append": (
                svc.stub.AppendTurns(
                    context_pb2.AppendTurnsRequest(
                        scope=scope("intruder", mine), turns=[context_pb2.Turn(role=USER)]
                    )
                ),
                svc.stub.AppendTurns(
                    context_pb2.AppendTurnsRequest(
                        scope=scope("acme", "no-such-id"), turns=[context_pb2.Turn(role=USER)]
                    )
                ),
            ),
        }
        for name, (foreign, missing) in calls.items():
            foreign_code, foreign_text = await status_of(foreign)
            missing_code, missing_text = await status_of(missing)
            assert foreign_code == missing_code == grpc.StatusCode.NOT_FOUND, name
            assert foreign_text.replace(mine, "ID") == missing_text.replace("no-such-id", "ID")
        # and the owner still has everything
        mine_ref = context_pb2.ConversationRef(scope=scope("acme", mine))
        owned = await svc.stub.GetConversation(mine_ref)
        assert [t.content for t in owned.turns] == ["my secret", "noted"]


async def test_erasing_a_conversation_removes_its_turns_summary_embeddings_and_cached_answers(
    db_url: str,
) -> None:
    async with context_service(db_url, embedder=WordHashEmbedder()) as svc:
        doomed = await new_conversation(svc.stub, [(USER, "my IBAN is X"), (ASSISTANT, "ok")])
        kept = await new_conversation(svc.stub, [(USER, "unrelated"), (ASSISTANT, "ok")])
        async with svc.sessions.begin() as session:
            assert await ConversationRepository(session).save_summary(
                tenant_id="acme",
                conversation_id=doomed,
                summary="IBAN X",
                upto_seq=1,
                expected_upto_seq=0,
                expected_reset_at=None,
            )
        async with svc.sessions() as session:
            embedded = await session.scalar(
                select(func.count()).where(
                    Turn.conversation_id == doomed, Turn.embedding.is_not(None)
                )
            )
        assert embedded == 2

        reply = await svc.stub.DeleteConversation(
            context_pb2.ConversationRef(scope=scope("acme", doomed))
        )

        assert reply.turns_deleted == 2
        assert await rows(svc.sessions, Turn, conversation_id=doomed) == 0
        assert await rows(svc.sessions, Conversation, id=doomed) == 0  # the summary lived here
        assert await rows(svc.sessions, Turn, conversation_id=kept) == 2
        ((subject, data),) = svc.bus.events
        invalidate = events_pb2.CacheInvalidate.FromString(data)
        assert subject == CACHE_INVALIDATE
        assert (invalidate.tenant_id, invalidate.conversation_id) == ("acme", doomed)
        code, _ = await status_of(
            svc.stub.GetConversation(context_pb2.ConversationRef(scope=scope("acme", doomed)))
        )
        assert code == grpc.StatusCode.NOT_FOUND


# --- bad input -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("context_policy", "bound"),
    [
        (policy(common_pb2.CONTEXT_STRATEGY_LAST_K, k=0), "k must be between 1 and 1000"),
        (policy(common_pb2.CONTEXT_STRATEGY_RELEVANT, k=5000), "between 1 and 1000 for relevant"),
        (policy(common_pb2.CONTEXT_STRATEGY_TOKEN_BUDGET, token_budget=8), "between 16 and"),
        (policy(99), "unknown context strategy 99"),
    ],
)
async def test_out_of_range_policies_are_invalid_argument_naming_the_bound_and_create_nothing(
    sqlite_db_url: str, context_policy: common_pb2.ContextPolicy, bound: str
) -> None:
    async with context_service(sqlite_db_url, embedder=WordHashEmbedder()) as svc:
        code, details = await status_of(
            svc.stub.BuildContext(
                context_pb2.BuildContextRequest(scope=scope(), prompt="hi", policy=context_policy)
            )
        )
        assert code == grpc.StatusCode.INVALID_ARGUMENT and bound in details
        assert await rows(svc.sessions, Conversation) == 0


async def test_a_prompt_over_the_budget_is_cut_from_the_front_and_flagged_or_refused(
    sqlite_db_url: str,
) -> None:
    long_prompt = "start " + "filler " * 200 + "the real question at the end"
    async with context_service(sqlite_db_url) as svc:
        cut = await svc.stub.BuildContext(
            context_pb2.BuildContextRequest(
                scope=scope(),
                prompt=long_prompt,
                policy=policy(common_pb2.CONTEXT_STRATEGY_TOKEN_BUDGET, token_budget=32),
            )
        )
        assert cut.report.truncated and cut.report.tokens_sent <= 32
        assert cut.messages[-1].content.endswith("the real question at the end")
        code, details = await status_of(
            svc.stub.BuildContext(
                context_pb2.BuildContextRequest(
                    scope=scope(),
                    prompt=long_prompt,
                    policy=common_pb2.ContextPolicy(
                        strategy=common_pb2.CONTEXT_STRATEGY_TOKEN_BUDGET,
                        token_budget=32,
                        reject_oversized_turn=True,
                    ),
                )
            )
        )
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "token_budget of 32" in details


async def test_a_long_conversation_is_fitted_to_the_models_window_whole_turns_oldest_first(
    sqlite_db_url: str,
) -> None:
    turns = [(USER if i % 2 == 0 else ASSISTANT, f"turn {i}: " + "word " * 40) for i in range(20)]
    async with context_service(sqlite_db_url) as svc:
        conversation = await new_conversation(svc.stub, turns)
        built = await svc.stub.BuildContext(
            context_pb2.BuildContextRequest(
                scope=scope(conversation_id=conversation),
                system_prompt="be brief",
                prompt="what did we say last?",
                policy=policy(common_pb2.CONTEXT_STRATEGY_FULL),
                context_window=600,
                max_output_tokens=200,
            )
        )
        report = built.report
        assert report.tokens_sent <= 400 < report.tokens_full_history
        assert report.turns_dropped_for_window == 20 - report.turns_sent > 0
        sent = [m.content for m in built.messages[1:-1]]
        assert sent[-1].startswith("turn 19:")  # the newest turns stay, oldest go first
        assert all(text.endswith("word ") for text in sent)  # no turn cut in half
        assert built.messages[0].content == "be brief"
        code, details = await status_of(
            svc.stub.BuildContext(
                context_pb2.BuildContextRequest(
                    scope=scope(conversation_id=conversation),
                    prompt="hi",
                    context_window=600,
                    max_output_tokens=-1,
                )
            )
        )
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "max_output_tokens" in details


# --- relevant with the real embedder ----------------------------------------------------

FACTS = [
    (USER, "My sister Alice moved to Lyon last spring."),
    (ASSISTANT, "Lyon is a lovely city."),
    (USER, "Can you recommend a good pasta recipe?"),
    (ASSISTANT, "Try carbonara: eggs, pecorino, guanciale and pepper."),
    (USER, "What's the capital of Australia?"),
    (ASSISTANT, "Canberra."),
    (USER, "How many legs does a spider have?"),
    (ASSISTANT, "Eight."),
    (USER, "Recommend a sci-fi novel."),
    (ASSISTANT, "Try 'The Left Hand of Darkness'."),
]


async def test_relevant_sends_the_turn_that_holds_the_needed_fact_and_reports_the_saving(
    sqlite_db_url: str,
) -> None:
    async with context_service(sqlite_db_url, embedder=Embedder()) as svc:
        conversation = await new_conversation(svc.stub, FACTS)
        built = await svc.stub.BuildContext(
            context_pb2.BuildContextRequest(
                scope=scope("acme", conversation),
                system_prompt="be brief",
                prompt="Which city does my sister live in now?",
                policy=policy(common_pb2.CONTEXT_STRATEGY_RELEVANT, k=2),
            )
        )
        contents = [m.content for m in built.messages]
        assert FACTS[0][1] in contents and contents[0] == "be brief"
        assert contents[-2] == FACTS[-1][1]  # the last turn always comes along
        assert built.report.strategy == common_pb2.CONTEXT_STRATEGY_RELEVANT
        assert built.report.turns_sent == 3 and built.report.turns_total == 10
        assert built.report.tokens_sent < built.report.tokens_full_history / 2


async def test_turns_stored_without_an_embedding_get_one_when_relevant_first_needs_it(
    sqlite_db_url: str,
) -> None:
    async with context_service(sqlite_db_url, embedder=None) as svc:
        conversation = await new_conversation(svc.stub, FACTS[:4])
    async with svc.sessions() as session:
        assert await session.scalar(select(func.count()).where(Turn.embedding.is_not(None))) == 0
    async with context_service(sqlite_db_url, embedder=WordHashEmbedder()) as svc:
        built = await svc.stub.BuildContext(
            context_pb2.BuildContextRequest(
                scope=scope("acme", conversation),
                prompt="sister Alice",
                policy=policy(common_pb2.CONTEXT_STRATEGY_RELEVANT, k=1),
            )
        )
        assert [m.content for m in built.messages][:-1] == [FACTS[0][1], FACTS[3][1]]
        async with svc.sessions() as session:
            stored = await session.scalar(select(func.count()).where(Turn.embedding.is_not(None)))
        assert stored == 3  # every earlier turn; the last one is always sent anyway


async def test_relevant_is_refused_clearly_where_embeddings_are_off(sqlite_db_url: str) -> None:
    async with context_service(sqlite_db_url, embedder=None) as svc:
        code, details = await status_of(
            svc.stub.BuildContext(
                context_pb2.BuildContextRequest(
                    scope=scope(), prompt="hi", policy=policy(common_pb2.CONTEXT_STRATEGY_RELEVANT)
                )
            )
        )
        assert code == grpc.StatusCode.FAILED_PRECONDITION and "embeddings" in details


async def test_a_request_naming_no_strategy_gets_its_apps_default(sqlite_db_url: str) -> None:
    defaults = ContextDefaults(strategy=Strategy.FULL, app_strategies={"app": Strategy.LAST_K})
    async with context_service(sqlite_db_url, defaults=defaults) as svc:
        conversation = await new_conversation(svc.stub, FACTS)
        with_default = await svc.stub.BuildContext(
            context_pb2.BuildContextRequest(
                scope=scope("acme", conversation), prompt="hi", policy=common_pb2.ContextPolicy(k=2)
            )
        )
        assert with_default.report.strategy == common_pb2.CONTEXT_STRATEGY_LAST_K
        assert with_default.report.turns_sent == 2
