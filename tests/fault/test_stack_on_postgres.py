"""The real stack on PostgreSQL, started by the launcher of ``llmproxy up``: every service
its own process, real NATS JetStream, a fresh PostgreSQL database.

* end to end: the official openai SDK and gRPC both get answers; each answer is in the
  usage ledger exactly once and the tenant's spend counter equals the ledger's sum;
* security: a second tenant's key never reads the first tenant's conversation, cached
  answer, usage or recent requests, and gets the same answer as for ids that do not exist.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import openai
import pytest
import pytest_asyncio

from llmproxy.gateway.fake_upstream import ANSWER
from llmproxy.platform.health import check_health
from llmproxy.v1 import common_pb2, gateway_pb2, gateway_pb2_grpc
from tests.fault.harness import MODEL, RunningStack, running_stack
from tests.support.processes import alive

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.nats]


@pytest_asyncio.fixture
async def stack(tmp_path: Path) -> AsyncIterator[RunningStack]:
    async with running_stack(tmp_path) as running:
        yield running


def _sdk(stack: RunningStack, tenant: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=stack.http_url, api_key=stack.keys[tenant], max_retries=0)


def _auth(stack: RunningStack, tenant: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {stack.keys[tenant]}"),)


async def _ask(
    stack: RunningStack, tenant: str, question: str, **llmproxy: str
) -> tuple[str, dict[str, str]]:
    raw = await _sdk(stack, tenant).chat.completions.with_raw_response.create(
        model=MODEL,
        messages=[{"role": "user", "content": question}],
        max_tokens=16,
        timeout=30,
        extra_body={"llmproxy": llmproxy} if llmproxy else None,
    )
    completion = raw.parse()
    return completion.choices[0].message.content or "", dict(raw.headers)


async def _ledger_rows(stack: RunningStack, request_ids: list[str], timeout_s: float = 30) -> int:
    """Wait until each request id has a usage row (the profiler writes them from events)."""
    deadline = time.monotonic() + timeout_s
    while True:
        rows = await stack.query(
            "select request_id, count(*) as n from usage_records "
            "where request_id = any($1::text[]) group by request_id",
            request_ids,
        )
        if len(rows) == len(request_ids) or time.monotonic() > deadline:
            assert all(r["n"] == 1 for r in rows), f"a request recorded twice: {rows}"
            return len(rows)
        await asyncio.sleep(0.2)


async def test_openai_sdk_and_grpc_answer_on_postgres_and_each_answer_is_billed_once(
    stack: RunningStack,
) -> None:
    # every service is its own process, SERVING on gRPC health
    health = await check_health(stack.stack.addresses)
    assert health == {name: "SERVING" for name in stack.stack.addresses} and len(health) == 7
    pids = {stack.stack.process(name).pid for name in stack.stack.addresses}
    assert len(pids) == 7 and all(alive(pid) for pid in pids)

    answer, headers = await _ask(stack, "acme", "What is the capital of France?")
    assert answer == ANSWER
    assert headers["x-llmproxy-model"] == MODEL and int(headers["x-llmproxy-cost-nanousd"]) > 0

    async with grpc.aio.insecure_channel(stack.grpc_address) as channel:
        gateway = gateway_pb2_grpc.GatewayStub(channel)
        reply = await gateway.Ask(
            gateway_pb2.AskRequest(prompt="Name a river."),
            metadata=_auth(stack, "acme"),
            timeout=30,
        )
        assert reply.answer == ANSWER and reply.cost.cost_nanousd > 0

        request_ids = [headers["x-llmproxy-request-id"], reply.request_id]
        assert await _ledger_rows(stack, request_ids) == 2
        usage = await gateway.Usage(
            gateway_pb2.UsageRequest(), metadata=_auth(stack, "acme"), timeout=10
        )
    assert usage.requests == 2
    assert usage.cost_nanousd == int(headers["x-llmproxy-cost-nanousd"]) + reply.cost.cost_nanousd

    # the spend the gateway counted against acme's budget is exactly the ledger's sum
    (spend,) = await stack.query(
        "select coalesce(sum(c.used), 0) as used, coalesce(sum(c.reserved), 0) as reserved "
        "from limit_counters c join usage_limits l on l.id = c.limit_id "
        "where l.tenant_id = 'acme' and l.metric = 'cost_nanousd'"
    )
    (ledger,) = await stack.query(
        "select sum(cost_nanousd) as cost from usage_records where tenant_id = 'acme'"
    )
    assert spend["used"] == ledger["cost"] == usage.cost_nanousd
    assert spend["reserved"] == 0
    # a prompt starts a conversation (a whole message list is stateless); the
    # context service stored its two turns in PostgreSQL from llm.completed
    assert reply.conversation_id and not headers.get("x-llmproxy-conversation-id")
    deadline = time.monotonic() + 20
    while True:
        (turns,) = await stack.query(
            "select count(*) as n from turns where conversation_id = $1", reply.conversation_id
        )
        if turns["n"] >= 2 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    assert turns["n"] == 2


async def test_another_tenant_never_reads_the_first_tenants_conversation_cache_or_usage(
    stack: RunningStack,
) -> None:
    probed: list[str] = []
    question = "What is the capital of France, in one word?"
    answer, first = await _ask(stack, "acme", question)
    request_id = first["x-llmproxy-request-id"]
    assert await _ledger_rows(stack, [request_id]) == 1
    async with grpc.aio.insecure_channel(stack.grpc_address) as channel:
        started = await gateway_pb2_grpc.GatewayStub(channel).Ask(
            gateway_pb2.AskRequest(prompt="Remember the number 42."),
            metadata=_auth(stack, "acme"),
            timeout=30,
        )
    conversation = started.conversation_id
    assert conversation

    # acme's answer is cached for acme (the cache stores it from llm.completed) ...
    deadline = time.monotonic() + 20
    while True:
        _, again = await _ask(stack, "acme", question)
        if again["x-llmproxy-cache"] == "exact_hit" or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.3)
    assert again["x-llmproxy-cache"] == "exact_hit"

    # ... but globex, asking the very same question, is never served acme's entry
    _, theirs = await _ask(stack, "globex", question)
    assert theirs["x-llmproxy-cache"] == "miss" and int(theirs["x-llmproxy-cost-nanousd"]) > 0
    probed.append("cache: same question, other tenant -> miss, answered and billed to globex")

    # acme's conversation is invisible to globex: the same 404 as for an id that never existed
    errors = {}
    for label, conversation_id in (("acme's", conversation), ("unknown", "conv-does-not-exist")):
        with pytest.raises(openai.NotFoundError) as caught:
            await _ask(stack, "globex", "Continue, please.", conversation_id=conversation_id)
        errors[label] = caught.value.message.replace(conversation_id, "<id>")
    assert errors["acme's"] == errors["unknown"]
    async with grpc.aio.insecure_channel(stack.grpc_address) as channel:
        for conversation_id in (conversation, "conv-does-not-exist"):
            with pytest.raises(grpc.aio.AioRpcError) as caught_grpc:
                await gateway_pb2_grpc.GatewayStub(channel).Ask(
                    gateway_pb2.AskRequest(
                        prompt="Which number?",
                        scope=common_pb2.Scope(conversation_id=conversation_id),
                    ),
                    metadata=_auth(stack, "globex"),
                    timeout=30,
                )
            assert caught_grpc.value.code() == grpc.StatusCode.NOT_FOUND
    probed.append("context: acme's conversation with globex's key: 404 / NOT_FOUND as if unknown")

    async with grpc.aio.insecure_channel(stack.grpc_address) as channel:
        gateway = gateway_pb2_grpc.GatewayStub(channel)
        # usage: globex sees its own request only, and nothing of acme's conversation
        mine = await gateway.Usage(
            gateway_pb2.UsageRequest(), metadata=_auth(stack, "globex"), timeout=10
        )
        deadline = time.monotonic() + 20
        while mine.requests < 1 and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            mine = await gateway.Usage(
                gateway_pb2.UsageRequest(), metadata=_auth(stack, "globex"), timeout=10
            )
        assert mine.requests == 1
        assert mine.cost_nanousd == int(theirs["x-llmproxy-cost-nanousd"])
        of_acme = await gateway.Usage(
            gateway_pb2.UsageRequest(
                level=gateway_pb2.USAGE_LEVEL_CONVERSATION,
                scope=common_pb2.Scope(conversation_id=conversation),
            ),
            metadata=_auth(stack, "globex"),
            timeout=10,
        )
        assert of_acme.requests == 0 and of_acme.cost_nanousd == 0
        probed.append("usage: globex's totals hold only globex; acme's conversation -> 0")
        # and acme's own conversation usage is there (the probe above could see it)
        own = await gateway.Usage(
            gateway_pb2.UsageRequest(
                level=gateway_pb2.USAGE_LEVEL_CONVERSATION,
                scope=common_pb2.Scope(conversation_id=conversation),
            ),
            metadata=_auth(stack, "acme"),
            timeout=10,
        )
        assert own.requests >= 1

        # recent requests: globex cannot escalate (re-run) acme's request
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await gateway.Feedback(
                gateway_pb2.FeedbackRequest(request_id=request_id, escalate=True),
                metadata=_auth(stack, "globex"),
                timeout=10,
            )
        assert refused.value.code() == grpc.StatusCode.NOT_FOUND
        probed.append("feedback: escalating acme's request id with globex's key -> NOT_FOUND")

        # a wrong or missing key reads nothing at all
        for metadata in ((), (("authorization", "Bearer llp_notthere_" + "x" * 43),)):
            with pytest.raises(grpc.aio.AioRpcError) as denied:
                await gateway.Usage(gateway_pb2.UsageRequest(), metadata=metadata, timeout=10)
            assert denied.value.code() == grpc.StatusCode.UNAUTHENTICATED
        probed.append("usage without a key or with a forged key -> UNAUTHENTICATED")
    # keys are stored hashed: no column of api_keys holds a key's secret part
    local_key = await asyncio.to_thread(stack.stack.api_key_file.read_text)
    keys = [*stack.keys.values(), local_key.strip()]  # + the key the launcher made
    secrets = {key.split("_", 2)[2] for key in keys}
    assert all(len(s) == 43 for s in secrets)
    rows = await stack.query("select * from api_keys")
    stored = " ".join(str(value) for row in rows for value in row.values())
    assert len(rows) == 3 and not [s for s in secrets if s in stored]
    probed.append("api_keys at rest: no secret part of any key in any column")
    # and no log line of any process of this run holds a key's secret part
    logs = await asyncio.to_thread(
        lambda: {p.name: p.read_text(errors="replace") for p in stack.stack.logs.glob("*.log")}
    )
    assert {"gateway.log", "context.log", "cache.log", "profiler.log"} <= set(logs)
    leaked = [(name, s[:6]) for name, text in logs.items() for s in secrets if s in text]
    assert not leaked, f"API key secrets in logs: {leaked}"
    probed.append(f"logs of {len(logs)} processes: no API key secret")
    print("probed:\n  " + "\n  ".join(probed))
    assert answer == ANSWER
