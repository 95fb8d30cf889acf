"""Tenant isolation, probed through every API with another tenant's ids.

``acme`` creates a conversation, a cached answer, usage rows and a job; ``globex`` then
names each of them through every API that takes an id. Every probe checks two things:

* globex gets exactly the answer an id that never existed gets (same status, same message
  once the id itself is blanked), so ids cannot even be confirmed to exist;
* acme's data is unchanged afterwards (and, as a control, acme itself still reaches it, so
  the probe was not vacuous).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import grpc
import httpx
import pytest

from llmproxy.v1 import (
    cache_pb2,
    cache_pb2_grpc,
    common_pb2,
    context_pb2,
    context_pb2_grpc,
    gateway_pb2,
    gateway_pb2_grpc,
    profiler_pb2,
    profiler_pb2_grpc,
    scheduler_pb2,
    scheduler_pb2_grpc,
)
from tests.security.conftest import SecureStack
from tests.security.probes import probed

UNKNOWN = "00000000-0000-4000-8000-000000000000"


def _outcome(call: Callable[[], Any], secret_id: str) -> tuple[str, str]:
    """(status, message with the probed id blanked) of one call; ("OK", reply) on success."""
    try:
        reply = call()
    except grpc.RpcError as exc:
        code: grpc.StatusCode = exc.code()  # type: ignore[attr-defined]
        return code.name, (exc.details() or "").replace(secret_id, "<id>")  # type: ignore[attr-defined]
    if hasattr(reply, "__iter__") and not hasattr(reply, "ListFields"):
        return _outcome(lambda: list(reply), secret_id)  # a stream: its first failure
    text = str(reply).replace(secret_id, "<id>")
    return "OK", text


def _same_as_unknown(
    probe: Callable[[str], Any], acme_id: str, *, area: str, what: str
) -> tuple[str, str]:
    theirs = _outcome(lambda: probe(acme_id), acme_id)
    unknown = _outcome(lambda: probe(UNKNOWN), UNKNOWN)
    assert theirs == unknown, f"{area}: {what}: acme's id {theirs} vs unknown id {unknown}"
    probed(area, f"{what} with acme's id", f"{theirs[0]}, same as an unknown id")
    return theirs


def _wait(condition: Callable[[], bool], what: str, timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def channels(secure_stack: SecureStack) -> Any:
    opened = {n: grpc.insecure_channel(secure_stack.address(n)) for n in secure_stack.services}
    yield opened
    for channel in opened.values():
        channel.close()


def test_conversations_and_usage_of_another_tenant_are_invisible_and_untouched(
    secure_stack: SecureStack, channels: dict[str, grpc.Channel]
) -> None:
    gateway = gateway_pb2_grpc.GatewayStub(channels["gateway"])
    context = context_pb2_grpc.ContextStub(channels["context"])
    acme = gateway.Ask(
        gateway_pb2.AskRequest(prompt="Remember the number 42."),
        metadata=secure_stack.auth("acme"),
        timeout=30,
    )
    conversation, request_id = acme.conversation_id, acme.request_id
    assert conversation

    def acme_conversation() -> context_pb2.Conversation:
        ref = common_pb2.Scope(tenant_id="acme", conversation_id=conversation)
        return context.GetConversation(context_pb2.ConversationRef(scope=ref), timeout=10)

    _wait(lambda: len(acme_conversation().turns) == 2, "acme's two turns")
    before = acme_conversation()

    def ref(conversation_id: str) -> context_pb2.ConversationRef:
        return context_pb2.ConversationRef(
            scope=common_pb2.Scope(tenant_id="globex", conversation_id=conversation_id)
        )

    area = "context (gRPC)"
    _same_as_unknown(lambda c: context.GetConversation(ref(c), timeout=10), conversation,
                     area=area, what="GetConversation")  # fmt: skip
    _same_as_unknown(lambda c: context.ResetConversation(ref(c), timeout=10), conversation,
                     area=area, what="ResetConversation")  # fmt: skip
    _same_as_unknown(lambda c: context.DeleteConversation(ref(c), timeout=10), conversation,
                     area=area, what="DeleteConversation")  # fmt: skip
    turn = context_pb2.Turn(role=common_pb2.ROLE_USER, content="injected by globex")
    _same_as_unknown(
        lambda c: context.AppendTurns(
            context_pb2.AppendTurnsRequest(scope=ref(c).scope, turns=[turn], request_id=c),
            timeout=10,
        ),
        conversation,
        area=area,
        what="AppendTurns",
    )
    _same_as_unknown(
        lambda c: context.BuildContext(
            context_pb2.BuildContextRequest(scope=ref(c).scope, prompt="Which number?"),
            timeout=10,
        ),
        conversation,
        area=area,
        what="BuildContext",
    )
    after = acme_conversation()
    assert after == before, "globex's calls changed acme's conversation"
    probed(area, "acme's conversation after the five calls", "turns, summary, reset_at unchanged")

    # the gateway: gRPC Ask / AskStream and the HTTP API's conversation_id
    area = "gateway"
    for method in ("Ask", "AskStream"):
        stub_call = getattr(gateway, method)
        _same_as_unknown(
            lambda c, stub_call=stub_call: stub_call(
                gateway_pb2.AskRequest(
                    prompt="Which number?", scope=common_pb2.Scope(conversation_id=c)
                ),
                metadata=secure_stack.auth("globex"),
                timeout=30,
            ),
            conversation,
            area=area,
            what=f"{method} with scope.conversation_id",
        )

    def http_ask(conversation_id: str) -> tuple[int, str]:
        response = httpx.post(
            f"{secure_stack.http_url}/chat/completions",
            json={
                "model": "fake-small",
                "messages": [{"role": "user", "content": "Which number?"}],
                "llmproxy": {"conversation_id": conversation_id},
            },
            headers={"authorization": f"Bearer {secure_stack.keys['globex']}"},
            timeout=30,
        )
        return response.status_code, response.text.replace(conversation_id, "<id>")

    theirs, unknown = http_ask(conversation), http_ask(UNKNOWN)
    assert theirs == unknown and theirs[0] == 404, (theirs, unknown)
    probed(area, "HTTP /v1/chat/completions llmproxy.conversation_id", "404, same as unknown id")
    assert acme_conversation() == before

    # usage: the gateway's Usage by conversation, the profiler's ledger by request id
    _wait(
        lambda: bool(secure_stack.query(
            "select 1 from usage_records where request_id = $1", request_id
        )),
        "acme's usage row",
    )  # fmt: skip
    _same_as_unknown(
        lambda c: gateway.Usage(
            gateway_pb2.UsageRequest(
                level=gateway_pb2.USAGE_LEVEL_CONVERSATION,
                scope=common_pb2.Scope(conversation_id=c),
            ),
            metadata=secure_stack.auth("globex"),
            timeout=10,
        ),
        conversation,
        area="usage",
        what="gateway Usage(level=conversation)",
    )
    own = gateway.Usage(
        gateway_pb2.UsageRequest(
            level=gateway_pb2.USAGE_LEVEL_CONVERSATION,
            scope=common_pb2.Scope(conversation_id=conversation),
        ),
        metadata=secure_stack.auth("acme"),
        timeout=10,
    )
    assert own.requests >= 1  # the control: acme sees it
    profiler = profiler_pb2_grpc.ProfilerStub(channels["profiler"])
    _same_as_unknown(
        lambda r: profiler.ListUsage(
            profiler_pb2.ListUsageRequest(tenant_id="globex", request_id=r), timeout=10
        ),
        request_id,
        area="usage",
        what="profiler ListUsage(request_id)",
    )
    mine = profiler.ListUsage(
        profiler_pb2.ListUsageRequest(tenant_id="acme", request_id=request_id), timeout=10
    )
    assert len(mine.records) == 1
    # and globex's own totals hold nothing of acme's (both have an app named "web")
    totals = gateway.Usage(
        gateway_pb2.UsageRequest(),
        metadata=secure_stack.auth("globex"),
        timeout=10,
    )
    (ledger,) = secure_stack.query(
        "select count(*) as n, coalesce(sum(cost_nanousd), 0) as cost from usage_records "
        "where tenant_id = 'globex'"  # globex has one app
    )
    assert (totals.requests, totals.cost_nanousd) == (ledger["n"], ledger["cost"]), totals
    probed("usage", "globex's own totals", "exactly globex's ledger rows, none of acme's")


def _ask_http(stack: SecureStack, tenant: str, question: str) -> httpx.Response:
    response = httpx.post(
        f"{stack.http_url}/chat/completions",
        json={"model": "fake-small", "messages": [{"role": "user", "content": question}]},
        headers={"authorization": f"Bearer {stack.keys[tenant]}"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return response


def test_cached_answers_and_feedback_of_another_tenant_are_out_of_reach(
    secure_stack: SecureStack, channels: dict[str, grpc.Channel]
) -> None:
    question = "What is the capital of France, said in exactly one word?"
    first = _ask_http(secure_stack, "acme", question)
    request_id = first.headers["x-llmproxy-request-id"]

    def entry() -> dict[str, Any] | None:
        rows = secure_stack.query(
            "select id, key, tenant_id from cache_entries where request_id = $1", request_id
        )
        return rows[0] if rows else None

    _wait(lambda: entry() is not None, "acme's answer in the cache")
    stored = entry()
    assert stored is not None and stored["tenant_id"] == "acme"
    _wait(
        lambda: (
            _ask_http(secure_stack, "acme", question).headers["x-llmproxy-cache"] == "exact_hit"
        ),
        "acme's exact hit",
    )
    # globex asking the very same question is never served acme's entry
    theirs = _ask_http(secure_stack, "globex", question)
    assert theirs.headers["x-llmproxy-cache"] == "miss"
    probed("cache", "same question with globex's key (HTTP)", "miss; answered and billed anew")

    cache = cache_pb2_grpc.CacheStub(channels["cache"])
    area = "cache (gRPC)"
    for target in ("entry_id", "key"):
        _same_as_unknown(
            lambda value, target=target: cache.Invalidate(
                cache_pb2.CacheInvalidateRequest(tenant_id="globex", **{target: value}),
                timeout=10,
            ),
            stored["id" if target == "entry_id" else "key"],
            area=area,
            what=f"Invalidate({target})",
        )

    def globex_stats_match_its_rows() -> bool:
        # globex's own answer is stored in the background (llm.completed): wait until the
        # cache's count and the table agree; acme's entry must never be in globex's count
        stats = cache.Stats(cache_pb2.CacheStatsRequest(tenant_id="globex"), timeout=10)
        (rows,) = secure_stack.query(
            "select count(*) as n from cache_entries where tenant_id = 'globex'"
        )
        return bool(stats.entries == rows["n"])

    _wait(globex_stats_match_its_rows, "globex's cache Stats to count its own entries")
    probed(area, "Stats(tenant=globex)", "counts globex's own entries only")

    gateway = gateway_pb2_grpc.GatewayStub(channels["gateway"])
    area = "feedback"
    for kind in ({"wrong": True}, {"rating": 1}, {"escalate": True}):
        name = next(iter(kind))
        _same_as_unknown(
            lambda r, kind=kind: gateway.Feedback(
                gateway_pb2.FeedbackRequest(request_id=r, **kind),
                metadata=secure_stack.auth("globex"),
                timeout=30,
            ),
            request_id,
            area=area,
            what=f"Feedback({name})",
        )
    time.sleep(1.0)  # the cache consumes llm.feedback: give a wrong removal time to happen
    assert entry() == stored
    again = _ask_http(secure_stack, "acme", question)
    assert again.headers["x-llmproxy-cache"] == "exact_hit"
    probed(area, "acme's entry after globex's 'wrong' and invalidations", "still served (hit)")

    # the control: acme's own "wrong" does remove it, so the probe above could have failed
    gateway.Feedback(
        gateway_pb2.FeedbackRequest(request_id=request_id, wrong=True),
        metadata=secure_stack.auth("acme"),
        timeout=30,
    )
    _wait(lambda: entry() is None, "acme's own 'wrong' to remove the entry")
    probed(area, "control: acme's own 'wrong'", "removes the entry")


def test_jobs_of_another_owner_are_invisible_and_cannot_be_cancelled(
    secure_stack: SecureStack, channels: dict[str, grpc.Channel]
) -> None:
    scheduler = scheduler_pb2_grpc.SchedulerStub(channels["scheduler"])
    scheduler.RegisterExecutor(
        scheduler_pb2.RegisterExecutorRequest(
            executor_id="security-probe", pool="security", gpus=1, kind="simulated"
        ),
        timeout=10,
    )
    job = scheduler.SubmitJob(
        scheduler_pb2.SubmitJobRequest(
            kind=scheduler_pb2.JOB_KIND_GPU,
            pool="security",
            owner="acme",
            gpu_demand=1,
            size_seconds=3600,
        ),
        timeout=10,
    ).job
    area = "jobs (scheduler gRPC)"

    def ref(job_id: str) -> scheduler_pb2.JobRef:
        return scheduler_pb2.JobRef(job_id=job_id, owner="globex")

    _same_as_unknown(lambda j: scheduler.GetJob(ref(j), timeout=10), job.job_id,
                     area=area, what="GetJob(owner=globex)")  # fmt: skip
    _same_as_unknown(lambda j: scheduler.CancelJob(ref(j), timeout=10), job.job_id,
                     area=area, what="CancelJob(owner=globex)")  # fmt: skip
    _same_as_unknown(lambda j: scheduler.WatchJob(ref(j), timeout=10), job.job_id,
                     area=area, what="WatchJob(owner=globex)")  # fmt: skip
    listed = scheduler.ListJobs(scheduler_pb2.ListJobsRequest(owner="globex"), timeout=10)
    assert job.job_id not in {j.job_id for j in listed.jobs}
    probed(area, "ListJobs(owner=globex)", "acme's job not listed")
    now = scheduler.GetJob(scheduler_pb2.JobRef(job_id=job.job_id, owner="acme"), timeout=10)
    assert now.state not in (
        scheduler_pb2.JOB_STATE_CANCELLED,
        scheduler_pb2.JOB_STATE_COMPLETED,
        scheduler_pb2.JOB_STATE_FAILED,
    ), now
    probed(area, "acme's job after globex's cancel", "still active; acme's own ref reads it")
    scheduler.CancelJob(scheduler_pb2.JobRef(job_id=job.job_id, owner="acme"), timeout=10)
