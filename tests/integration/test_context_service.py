"""The Context gRPC service over a real database, as a caller sees it (status codes included).

Tenant isolation and erasure run on both backends (``db_url``); the rest on SQLite.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field

import grpc
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from llmproxy.context.history_cache import HistoryCache, PromptVectors
from llmproxy.context.recorder import TurnRecorder
from llmproxy.context.repository import ConversationRepository
from llmproxy.context.service import App, Settings
from llmproxy.context.servicer import ContextServicer
from llmproxy.context.strategies import ContextDefaults, Strategy
from llmproxy.platform.bus.port import Envelope
from llmproxy.platform.bus.subjects import CACHE_INVALIDATE, LLM_COMPLETED
from llmproxy.platform.db import create_engine
from llmproxy.platform.db.engine import session_factory
from llmproxy.platform.db.models import Conversation, Turn
from llmproxy.platform.embeddings import (
    Embedder,
    TextEmbedder,
    WordHashEmbedder,
    vector_to_bytes,
)
from llmproxy.platform.events import new_event_meta
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
    servicer: ContextServicer


@asynccontextmanager
async def context_service(
    url: str,
    *,
    embedder: TextEmbedder | None = None,
    defaults: ContextDefaults | None = None,
    history_cache: HistoryCache | None = None,
) -> AsyncIterator[Running]:
    """The servicer behind a real gRPC server with the production boundary interceptor."""
    engine = create_engine(url)
    sessions = session_factory(engine)
    bus = PublishedEvents()
    server = grpc.aio.server(interceptors=[BoundaryInterceptor()])
    servicer = ContextServicer(
        sessions,
        count_tokens,
        embedder=embedder,
        defaults=defaults,
        bus=bus,  # type: ignore[arg-type]
        history_cache=history_cache,
    )
    context_pb2_grpc.add_ContextServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield Running(context_pb2_grpc.ContextStub(channel), sessions, bus, servicer)
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


# --- the per-replica history cache --------------------------------------------------------


class CountingEmbedder:
    """WordHashEmbedder that counts the texts it embedded."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self._inner = WordHashEmbedder()

    def embed(self, texts: Sequence[str]):  # type: ignore[no-untyped-def]
        self.texts.extend(texts)
        return self._inner.embed(texts)


async def build(
    stub: context_pb2_grpc.ContextStub,
    conversation: str,
    prompt: str = "what now?",
    strategy: int = common_pb2.CONTEXT_STRATEGY_FULL,
    tenant: str = "acme",
    **fields: int,
) -> context_pb2.BuildContextReply:
    return await stub.BuildContext(
        context_pb2.BuildContextRequest(
            scope=scope(tenant, conversation), prompt=prompt, policy=policy(strategy, **fields)
        )
    )


def sent(reply: context_pb2.BuildContextReply) -> list[str]:
    return [m.content for m in reply.messages[:-1]]


async def append(
    stub: context_pb2_grpc.ContextStub, conversation: str, texts: list[str], request_id: str
) -> None:
    await stub.AppendTurns(
        context_pb2.AppendTurnsRequest(
            scope=scope("acme", conversation),
            turns=[
                context_pb2.Turn(role=USER if i % 2 == 0 else ASSISTANT, content=text)
                for i, text in enumerate(texts)
            ],
            request_id=request_id,
        )
    )


async def test_a_cached_history_sees_turns_appended_through_another_replica(db_url: str) -> None:
    embedder = WordHashEmbedder()
    async with (
        context_service(db_url, embedder=embedder) as a,
        context_service(db_url, embedder=embedder) as b,
    ):
        conversation = await new_conversation(a.stub, FACTS[:4])
        assert sent(await build(a.stub, conversation)) == [text for _, text in FACTS[:4]]
        assert a.servicer.history_cache.turns_held == 4

        await append(b.stub, conversation, ["my dog is called biscuit", "cute"], "later")

        full = await build(a.stub, conversation)
        assert sent(full)[-2:] == ["my dog is called biscuit", "cute"]
        assert full.report.turns_total == 6
        relevant = await build(
            a.stub,
            conversation,
            "what is my dog called",
            common_pb2.CONTEXT_STRATEGY_RELEVANT,
            k=1,
        )
        assert sent(relevant) == ["my dog is called biscuit", "cute"]
        assert a.servicer.history_cache.turns_held == 6


async def test_a_reset_or_erasure_through_another_replica_is_never_hidden_by_the_cache(
    db_url: str,
) -> None:
    embedder = WordHashEmbedder()
    async with (
        context_service(db_url, embedder=embedder) as a,
        context_service(db_url, embedder=embedder) as b,
    ):
        conversation = await new_conversation(a.stub, FACTS[:4])
        assert len(sent(await build(a.stub, conversation))) == 4  # now held by replica a

        ref = context_pb2.ConversationRef(scope=scope("acme", conversation))
        await b.stub.ResetConversation(ref)
        assert sent(await build(a.stub, conversation)) == []
        await append(b.stub, conversation, ["after the reset", "ok"], "after")
        for strategy in (common_pb2.CONTEXT_STRATEGY_FULL, common_pb2.CONTEXT_STRATEGY_RELEVANT):
            assert sent(await build(a.stub, conversation, strategy=strategy)) == [
                "after the reset",
                "ok",
            ]

        await b.stub.DeleteConversation(ref)
        for strategy in (common_pb2.CONTEXT_STRATEGY_FULL, common_pb2.CONTEXT_STRATEGY_RELEVANT):
            code, _ = await status_of(build(a.stub, conversation, strategy=strategy))
            assert code == grpc.StatusCode.NOT_FOUND
        assert a.servicer.history_cache.get("acme", conversation) is None


async def test_a_reset_or_erasure_on_the_same_replica_drops_its_entry(sqlite_db_url: str) -> None:
    async with context_service(sqlite_db_url, embedder=WordHashEmbedder()) as svc:
        cache = svc.servicer.history_cache
        conversation = await new_conversation(svc.stub, FACTS[:4])
        await build(svc.stub, conversation)
        assert cache.get("acme", conversation) is not None
        ref = context_pb2.ConversationRef(scope=scope("acme", conversation))
        await svc.stub.ResetConversation(ref)
        assert cache.get("acme", conversation) is None
        await build(svc.stub, conversation)
        await svc.stub.DeleteConversation(ref)
        assert cache.get("acme", conversation) is None and cache.turns_held == 0


async def test_another_tenant_is_never_served_from_the_cache(db_url: str) -> None:
    async with context_service(db_url, embedder=WordHashEmbedder()) as svc:
        cache = svc.servicer.history_cache
        mine = await new_conversation(svc.stub, [(USER, "my secret"), (ASSISTANT, "noted")])
        assert sent(await build(svc.stub, mine)) == ["my secret", "noted"]  # held now

        for strategy in (common_pb2.CONTEXT_STRATEGY_FULL, common_pb2.CONTEXT_STRATEGY_RELEVANT):
            foreign = await status_of(build(svc.stub, mine, strategy=strategy, tenant="intruder"))
            unknown = await status_of(
                build(svc.stub, "no-such-id", strategy=strategy, tenant="intruder")
            )
            assert foreign[0] == unknown[0] == grpc.StatusCode.NOT_FOUND
            assert foreign[1].replace(mine, "ID") == unknown[1].replace("no-such-id", "ID")
        assert cache.get("intruder", mine) is None
        assert sent(await build(svc.stub, mine)) == ["my secret", "noted"]  # the owner's intact


async def test_a_warm_build_reads_only_the_turns_it_does_not_hold(
    sqlite_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[tuple[int, int]] = []  # (after_seq, turns read)
    original = ConversationRepository.read_since

    async def spy(self, **kwargs):  # type: ignore[no-untyped-def]
        head, turns = await original(self, **kwargs)
        reads.append((kwargs["after_seq"], len(turns)))
        return head, turns

    monkeypatch.setattr(ConversationRepository, "read_since", spy)
    async with context_service(sqlite_db_url, embedder=WordHashEmbedder()) as svc:
        conversation = await new_conversation(svc.stub, FACTS)
        reads.clear()
        relevant = common_pb2.CONTEXT_STRATEGY_RELEVANT
        await build(svc.stub, conversation, "sister", relevant)
        await build(svc.stub, conversation, "sister", relevant)
        await append(svc.stub, conversation, ["one more", "and its answer"], "more")
        reply = await build(svc.stub, conversation, "sister", relevant, k=1)
        assert reads == [(0, 10), (10, 0), (10, 2)]
        assert sent(reply) == [FACTS[0][1], "and its answer"]


async def test_turns_embedded_late_are_embedded_once_and_then_held(sqlite_db_url: str) -> None:
    async with context_service(sqlite_db_url, embedder=None) as svc:
        conversation = await new_conversation(svc.stub, FACTS[:6])
    embedder = CountingEmbedder()
    async with context_service(sqlite_db_url, embedder=embedder) as svc:  # type: ignore[arg-type]
        relevant = common_pb2.CONTEXT_STRATEGY_RELEVANT
        first = await build(svc.stub, conversation, "sister Alice", relevant, k=1)
        assert sorted(embedder.texts) == sorted(["sister Alice", *(t for _, t in FACTS[:5])])
        embedder.texts.clear()
        second = await build(svc.stub, conversation, "sister Alice", relevant, k=1)
        assert embedder.texts == ["sister Alice"]  # the prompt only
        assert sent(first) == sent(second) == [FACTS[0][1], FACTS[5][1]]


async def test_the_prompt_embedded_for_the_build_is_stored_with_its_turn_not_embedded_again(
    sqlite_db_url: str,
) -> None:
    embedder = CountingEmbedder()
    prompt_vectors = PromptVectors()
    engine = create_engine(sqlite_db_url)
    sessions = session_factory(engine)
    servicer = ContextServicer(
        sessions, count_tokens, embedder=embedder, prompt_vectors=prompt_vectors
    )
    recorder = TurnRecorder(
        sessions, count_tokens, embedder=embedder, prompt_vectors=prompt_vectors
    )
    try:
        opened = await servicer.BuildContext(
            context_pb2.BuildContextRequest(scope=scope(), prompt="hello"),
            None,  # type: ignore[arg-type]
        )
        conversation = opened.conversation_id
        prompt = "which city does my sister live in"
        await servicer.BuildContext(
            context_pb2.BuildContextRequest(scope=scope("acme", conversation), prompt=prompt),
            None,  # type: ignore[arg-type]
        )
        assert embedder.texts == [prompt]
        event = events_pb2.LlmCompleted(
            meta=new_event_meta("gateway"),
            request_id="r1",
            scope=scope("acme", conversation),
            user_prompt=prompt,
            answer="Lyon",
        )
        await recorder(Envelope(LLM_COMPLETED, event.meta.event_id, event.SerializeToString()))
        assert embedder.texts == [prompt, "Lyon"]  # the answer only
        async with sessions() as session:
            stored = await session.scalar(
                select(Turn.embedding).where(Turn.conversation_id == conversation, Turn.seq == 1)
            )
        assert stored == vector_to_bytes(WordHashEmbedder().embed([prompt])[0])
        assert len(prompt_vectors) == 0
    finally:
        await engine.dispose()


@pytest.mark.nats
async def test_an_erasure_through_one_replica_empties_the_others_cache_over_the_bus(
    nats_url: str, sqlite_db_url: str
) -> None:
    """Two context service replicas as deployed (App, real NATS): the erasure's
    ``cache.invalidate`` broadcast reaches the replica that did not erase, which drops
    what it held of the conversation at once (not only at its next build)."""
    async with AsyncExitStack() as stack:
        replicas = []
        for name in ("context-a", "context-b"):
            app = App(
                Settings(
                    nats_url=nats_url,
                    database_url=sqlite_db_url,
                    instance_id=name,
                    embeddings=False,
                    default_strategy="full",
                    summaries=False,
                )
            )
            server = grpc.aio.server(interceptors=[BoundaryInterceptor()])
            await app.start(server)
            port = server.add_insecure_port("127.0.0.1:0")
            await server.start()
            channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
            stack.push_async_callback(app.stop)
            stack.push_async_callback(server.stop, None)
            stack.push_async_callback(channel.close)
            replicas.append((app, context_pb2_grpc.ContextStub(channel)))
        (a, a_stub), (_, b_stub) = replicas
        assert a.history_cache is not None
        conversation = await new_conversation(a_stub, FACTS[:4])
        await build(a_stub, conversation)
        assert a.history_cache.get("acme", conversation) is not None

        await b_stub.DeleteConversation(
            context_pb2.ConversationRef(scope=scope("acme", conversation))
        )

        deadline = asyncio.get_running_loop().time() + 10
        while a.history_cache.get("acme", conversation) is not None:
            assert asyncio.get_running_loop().time() < deadline, "the broadcast never came"
            await asyncio.sleep(0.05)
        code, _ = await status_of(build(a_stub, conversation))
        assert code == grpc.StatusCode.NOT_FOUND
