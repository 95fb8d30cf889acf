"""Gateway → context → local model → reply → llm.completed → profiler usage row, on
PostgreSQL and real NATS, every service its own process."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import grpc
import pytest
from sqlalchemy import select

from llmproxy.platform.db.engine import create_engine, session_factory
from llmproxy.platform.db.models import Turn, UsageRecord
from llmproxy.v1 import common_pb2, gateway_pb2, gateway_pb2_grpc
from tests.support.services import run_services, service_env

pytestmark = [pytest.mark.nats, pytest.mark.postgres, pytest.mark.model]


async def _rows(url: str, model: type, **where: str) -> list:  # type: ignore[type-arg]
    engine = create_engine(url)
    try:
        async with session_factory(engine)() as session:
            query = select(model)
            for column, value in where.items():
                query = query.where(getattr(model, column) == value)
            return list(await session.scalars(query))
    finally:
        await engine.dispose()


async def _eventually(url: str, model: type, count: int, **where: str) -> list:  # type: ignore[type-arg]
    deadline = time.monotonic() + 20
    while True:
        rows = await _rows(url, model, **where)
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        await asyncio.sleep(0.2)


async def test_ask_answers_from_the_local_model_and_the_profiler_records_usage(
    nats_url: str, postgres_db_url: str, local_model_url: str, tmp_path: Path
) -> None:
    env = service_env(
        NATS_URL=nats_url,
        DATABASE_URL=postgres_db_url,
        LLMPROXY_LOCAL_MODEL_URL=local_model_url,
        # keys are the gateway tests' subject; here the default tenant "local" answers
        LLMPROXY_ALLOW_ANONYMOUS="true",
    )
    services = run_services(["profiler", "context", "gateway"], env, tmp_path)
    try:
        async with grpc.aio.insecure_channel(services["gateway"].address) as channel:
            gateway = gateway_pb2_grpc.GatewayStub(channel)
            first = await gateway.Ask(
                gateway_pb2.AskRequest(
                    prompt="What is the capital of France?",
                    generation=common_pb2.GenerationParams(max_tokens=48),
                ),
                timeout=120,
            )
            assert first.answer.strip()
            assert first.choice.model == "smollm2-135m-instruct"
            assert first.usage.input_tokens > 0 and first.usage.output_tokens > 0
            assert first.latency.ToNanoseconds() > 0
            assert first.conversation_id
            assert first.cost.reference_model == "gpt-4o" and first.cost.saved_nanousd > 0

            usage = await _eventually(postgres_db_url, UsageRecord, 1, request_id=first.request_id)
            assert len(usage) == 1
            row = usage[0]
            assert (row.model, row.tenant_id, row.input_tokens, row.output_tokens) == (
                "smollm2-135m-instruct",
                "local",
                first.usage.input_tokens,
                first.usage.output_tokens,
            )
            turns = await _eventually(
                postgres_db_url, Turn, 2, conversation_id=first.conversation_id
            )
            assert [t.role for t in sorted(turns, key=lambda t: t.seq)] == ["user", "assistant"]

            # The next question in the conversation carries the history.
            second = await gateway.Ask(
                gateway_pb2.AskRequest(
                    prompt="And of Italy?",
                    scope=common_pb2.Scope(conversation_id=first.conversation_id),
                    generation=common_pb2.GenerationParams(max_tokens=32),
                ),
                timeout=120,
            )
            assert second.context.turns_total == 2 and second.context.turns_sent == 2
            assert second.context.tokens_sent == second.context.tokens_full_history > 0

            # Streaming: first what was chosen, then text, then the full metadata.
            chunks = [
                c
                async for c in gateway.AskStream(
                    gateway_pb2.AskRequest(
                        prompt="Say hello.", generation=common_pb2.GenerationParams(max_tokens=16)
                    ),
                    timeout=120,
                )
            ]
            kinds = [c.WhichOneof("kind") for c in chunks]
            assert kinds[0] == "accepted" and kinds[-1] == "final" and "delta" in kinds
            final = chunks[-1].final
            assert final.answer == "".join(
                c.delta for c in chunks if c.WhichOneof("kind") == "delta"
            )
            assert final.usage.output_tokens > 0

            # An unknown conversation is a clear NOT_FOUND, not a new conversation.
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await gateway.Ask(
                    gateway_pb2.AskRequest(
                        prompt="hi", scope=common_pb2.Scope(conversation_id="nope")
                    ),
                    timeout=30,
                )
            assert caught.value.code() == grpc.StatusCode.NOT_FOUND
            assert "unknown conversation 'nope'" in (caught.value.details() or "")
    finally:
        for service in reversed(services.values()):
            # Captured by pytest and shown only when the test fails.
            print(f"--- {service.name} log ---\n{service.log.read_text()[-4000:]}")
            assert service.terminate() == 0
