"""Two cache replicas sharing a database and a bus stay consistent.

Runs on the in-memory bus and on a real nats-server (JetStream BROADCAST consumers), with
the deterministic word-hash embedder (the real model is exercised by bench/cache).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import grpc
import pytest

from llmproxy.cache.engine import CACHE_STORED, Question, ResponseCache
from llmproxy.cache.keys import ScopeKey
from llmproxy.cache.memory import CacheMemory
from llmproxy.cache.servicer import CacheServicer
from llmproxy.platform.bus.jetstream import JetStreamBus
from llmproxy.platform.bus.memory import InMemoryBus
from llmproxy.platform.bus.port import Delivery, EventBus
from llmproxy.platform.bus.subjects import CACHE_INVALIDATE, LLM_COMPLETED, LLM_FEEDBACK
from llmproxy.platform.db import create_engine, session_factory
from llmproxy.platform.embeddings import DIMENSIONS, WordHashEmbedder
from llmproxy.platform.events import new_event_meta, publish_event
from llmproxy.platform.grpc_boundary import BoundaryInterceptor
from llmproxy.v1 import cache_pb2, cache_pb2_grpc, common_pb2, events_pb2

SCOPE = ScopeKey("acme", "bot", "objective:cost", "You are a helpful assistant.", "")
PROMPT = "how do I reset my account password"
PARAPHRASE = "how can I reset my account password"


async def eventually(check: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


@dataclass
class Cluster:
    replicas: list[ResponseCache]
    buses: list[EventBus]

    async def ask(self, replica: int, prompt: str, scope: ScopeKey = SCOPE):  # type: ignore[no-untyped-def]
        return await self.replicas[replica].lookup(Question(scope, prompt, threshold=0.8))


async def start_replica(
    stack: AsyncExitStack,
    bus: EventBus,
    sessions,
    name: str,  # type: ignore[no-untyped-def]
) -> ResponseCache:
    cache = ResponseCache(
        CacheMemory(dimensions=DIMENSIONS),
        sessions,
        bus,
        WordHashEmbedder(),
        source=name,
    )
    for subject, handler in (
        (CACHE_STORED, cache.on_stored),
        (CACHE_INVALIDATE, cache.on_invalidate),
    ):
        sub = await bus.subscribe(
            subject,
            handler,
            consumer=f"{subject.replace('.', '-')}-{name}",
            delivery=Delivery.BROADCAST,
        )
        stack.push_async_callback(sub.stop)
    await cache.rebuild()
    for subject, handler, consumer in (
        (LLM_COMPLETED, cache.on_completed, "cache-store"),
        (LLM_FEEDBACK, cache.on_feedback, "cache-feedback"),
    ):
        sub = await bus.subscribe(subject, handler, consumer=consumer)
        stack.push_async_callback(sub.stop)
    return cache


@pytest.fixture(params=["memory", pytest.param("nats", marks=pytest.mark.nats)])
async def cluster(
    request: pytest.FixtureRequest, sqlite_db_url: str, nats_url: str
) -> AsyncIterator[Cluster]:
    engine = create_engine(sqlite_db_url)
    sessions = session_factory(engine)
    async with AsyncExitStack() as stack:
        stack.push_async_callback(engine.dispose)
        if request.param == "memory":
            shared = InMemoryBus()
            stack.push_async_callback(shared.close)
            buses: list[EventBus] = [shared, shared]
        else:
            buses = []
            for i in range(2):
                bus = await JetStreamBus.connect(nats_url, name=f"cache-{i}", instance_id=f"r{i}")
                stack.push_async_callback(bus.close)
                buses.append(bus)
        replicas = [await start_replica(stack, buses[i], sessions, f"r{i}") for i in range(2)]
        yield Cluster(replicas, buses)


def completed(
    token: str, *, answer: str = "Open Settings > Security.", error: bool = False
) -> events_pb2.LlmCompleted:
    return events_pb2.LlmCompleted(
        meta=new_event_meta("gateway"),
        request_id="req-1",
        scope=common_pb2.Scope(tenant_id="acme", app_id="bot", conversation_id="conv-1"),
        choice=common_pb2.ModelChoice(model="small"),
        usage=common_pb2.TokenUsage(input_tokens=12, output_tokens=6),
        cost=common_pb2.Cost(cost_nanousd=3000),
        user_prompt=PROMPT,
        answer=answer,
        error=error,
        cache_key=token,
    )


async def test_an_answer_stored_from_llm_completed_reaches_every_replica(cluster: Cluster) -> None:
    miss = await cluster.ask(0, PROMPT)
    assert miss.hit is None and miss.token
    await publish_event(cluster.buses[0], LLM_COMPLETED, completed(miss.token))
    await eventually(lambda: all(len(r.memory) == 1 for r in cluster.replicas))

    exact = await cluster.ask(1, PROMPT)
    semantic = await cluster.ask(1, PARAPHRASE)
    assert exact.hit is not None and exact.hit.entry.answer == "Open Settings > Security."
    assert semantic.hit is not None and semantic.hit.kind.value == "semantic"
    other_tenant = ScopeKey("globex", "bot", SCOPE.model_class, SCOPE.system_prompt, "")
    assert (await cluster.ask(1, PROMPT, other_tenant)).hit is None


async def test_feedback_wrong_removes_the_entry_on_all_replicas(cluster: Cluster) -> None:
    miss = await cluster.ask(0, PROMPT)
    await publish_event(cluster.buses[0], LLM_COMPLETED, completed(miss.token))
    await eventually(lambda: all(len(r.memory) == 1 for r in cluster.replicas))

    feedback = events_pb2.LlmFeedback(
        meta=new_event_meta("gateway"),
        request_id="req-1",
        scope=common_pb2.Scope(tenant_id="acme"),
        kind=events_pb2.FEEDBACK_KIND_WRONG,
    )
    await publish_event(cluster.buses[1], LLM_FEEDBACK, feedback)
    await eventually(lambda: all(len(r.memory) == 0 for r in cluster.replicas))
    assert (await cluster.ask(0, PROMPT)).hit is None
    assert (await cluster.ask(1, PARAPHRASE)).hit is None


async def test_failed_and_refused_answers_are_never_cached(cluster: Cluster) -> None:
    token = (await cluster.ask(0, PROMPT)).token
    await publish_event(cluster.buses[0], LLM_COMPLETED, completed(token, error=True))
    await publish_event(
        cluster.buses[0], LLM_COMPLETED, completed(token, answer="I'm sorry, but I can't help.")
    )
    await asyncio.sleep(0.3)
    assert all(len(r.memory) == 0 for r in cluster.replicas)


async def test_a_restarted_replica_rebuilds_from_the_database(
    cluster: Cluster, sqlite_db_url: str
) -> None:
    token = (await cluster.ask(0, PROMPT)).token
    await publish_event(cluster.buses[0], LLM_COMPLETED, completed(token))
    await eventually(lambda: len(cluster.replicas[0].memory) == 1)
    engine = create_engine(sqlite_db_url)
    try:
        fresh = ResponseCache(
            CacheMemory(dimensions=DIMENSIONS),
            session_factory(engine),
            cluster.buses[0],
            WordHashEmbedder(),
        )
        assert await fresh.rebuild() == 1
        hit = (await fresh.lookup(Question(SCOPE, PARAPHRASE, threshold=0.8))).hit
        assert hit is not None and hit.entry.prompt == PROMPT
    finally:
        await engine.dispose()


async def serve(cache: ResponseCache) -> tuple[grpc.aio.Server, str]:
    server = grpc.aio.server(interceptors=[BoundaryInterceptor()])
    cache_pb2_grpc.add_CacheServicer_to_server(CacheServicer(cache), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, f"127.0.0.1:{port}"


def scope_key(tenant: str = "acme") -> cache_pb2.CacheScopeKey:
    return cache_pb2.CacheScopeKey(
        scope=common_pb2.Scope(tenant_id=tenant, app_id="bot"),
        model_class="objective:cost",
        system_prompt="You are a helpful assistant.",
    )


async def test_grpc_store_lookup_invalidate_and_bad_input(cluster: Cluster) -> None:
    from llmproxy.cache.client import GrpcCacheClient
    from llmproxy.platform.errors import InvalidArgumentError

    server, address = await serve(cluster.replicas[0])
    try:
        async with grpc.aio.insecure_channel(address) as channel:
            client = GrpcCacheClient(channel, timeout_s=5)
            stored = await client.store(
                cache_pb2.CacheStoreRequest(
                    key=scope_key(),
                    prompt="turn on dark mode",
                    answer="Settings > Display > Dark.",
                    model="small",
                    request_id="r1",
                )
            )
            assert stored.stored and stored.entry_id
            await eventually(lambda: len(cluster.replicas[1].memory) == 1)

            off = await client.lookup(
                cache_pb2.CacheLookupRequest(key=scope_key(), prompt="turn off dark mode")
            )
            assert off.report.outcome == common_pb2.CACHE_OUTCOME_MISS and off.cache_key
            on = await client.lookup(
                cache_pb2.CacheLookupRequest(key=scope_key(), prompt="Turn on dark mode!")
            )
            assert on.report.outcome == common_pb2.CACHE_OUTCOME_EXACT_HIT
            assert on.report.matched_prompt == "turn on dark mode" and on.answer
            probe = await client.lookup(
                cache_pb2.CacheLookupRequest(key=scope_key("globex"), prompt="turn on dark mode")
            )
            assert probe.report.outcome == common_pb2.CACHE_OUTCOME_MISS and not probe.answer
            empty = await client.lookup(cache_pb2.CacheLookupRequest(key=scope_key(), prompt=" "))
            assert empty.report.outcome == common_pb2.CACHE_OUTCOME_BYPASSED and not empty.cache_key
            private = await client.lookup(
                cache_pb2.CacheLookupRequest(
                    key=scope_key(),
                    prompt="my salary is 90k, plan my taxes",
                    policy=common_pb2.CachePolicy(no_store=True),
                )
            )
            assert not private.cache_key

            with pytest.raises(InvalidArgumentError, match="similarity_threshold"):
                await client.lookup(
                    cache_pb2.CacheLookupRequest(
                        key=scope_key(),
                        prompt="hi",
                        policy=common_pb2.CachePolicy(similarity_threshold=1.5),
                    )
                )
            with pytest.raises(InvalidArgumentError, match="tenant_id"):
                await client.lookup(cache_pb2.CacheLookupRequest(prompt="hi"))

            # another tenant cannot invalidate acme's entry by its id
            foreign = await client.invalidate(
                cache_pb2.CacheInvalidateRequest(tenant_id="globex", entry_id=stored.entry_id)
            )
            assert foreign.removed == 0 and len(cluster.replicas[1].memory) == 1
            removed = await client.invalidate(
                cache_pb2.CacheInvalidateRequest(tenant_id="acme", app_id="bot")
            )
            assert removed.removed == 1
            await eventually(lambda: all(len(r.memory) == 0 for r in cluster.replicas))
            stats = await client.stats(cache_pb2.CacheStatsRequest(tenant_id="acme"))
            assert stats.exact_hits == 1 and stats.entries == 0
    finally:
        await server.stop(None)


async def test_expired_entries_are_swept_from_memory_and_database(cluster: Cluster) -> None:
    clock = [datetime.now(UTC)]
    cache = cluster.replicas[0]
    cache._now = lambda: clock[0]
    token = (await cluster.ask(0, PROMPT)).token
    await publish_event(cluster.buses[0], LLM_COMPLETED, completed(token))
    await eventually(lambda: len(cache.memory) == 1)
    clock[0] += timedelta(days=2)
    assert (await cluster.ask(0, PROMPT)).hit is None
    assert await cache.sweep() == 1
    assert await cache.rebuild() == 0
