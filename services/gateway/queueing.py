"""Queues of capacity-limited backends: a request for a model with ``capacity_slots`` > 0 in
the catalog waits for a slot granted by the scheduler (weighted fair queueing per tenant),
and its caller learns the predicted completion before the answer.

Each gateway replica is the executor of its own queue per limited model: pool
``llm:<model>@<replica>`` with the model's slots divided among ``replicas``. The executor id
is stable (``gateway-<replica>-<model>``, the replica being host and gRPC port by default),
so a restarted replica takes its pool back; the requests its previous run left in the queue
(their callers are gone) are cancelled before it serves.

The scheduler must never cost an answer: while it is unreachable (or the queue is not yet
registered) requests are served without a queue; each such request is logged and counted
in ``llmproxy_queue_bypassed_total{model, reason}``.

:func:`service_seconds` (pure) sizes a request: the time to the first token plus the
predicted output tokens x the time per token, from the profiler's profile of the model when
it has enough requests, else from the catalog's prior.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

import structlog
from prometheus_client import Counter, Histogram

from llmproxy.gateway.catalog import Catalog, ModelSpec
from llmproxy.gateway.core import QUOTE_OUTPUT_TOKENS
from llmproxy.gateway.selection import ModelProfile
from llmproxy.platform.errors import DeadlineExceededError, LLMProxyError
from llmproxy.scheduler.client import LlmRequestQueue, Ticket
from llmproxy.v1 import common_pb2

__all__ = [
    "Admission",
    "RequestQueues",
    "predicted_output_tokens",
    "queue_backend",
    "service_seconds",
]

log = structlog.get_logger(__name__)

BYPASSED = Counter(
    "llmproxy_queue_bypassed_total",
    "Requests to a capacity-limited model served without its queue",
    ["model", "reason"],
)
QUEUED = Counter("llmproxy_queue_admitted_total", "Requests admitted to a queue", ["model"])
WAITED = Histogram(
    "llmproxy_queue_wait_seconds",
    "Time requests waited for a slot of a capacity-limited model",
    ["model"],
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300),
)

#: a profile is trusted for sizes once it has measured this many requests
MIN_PROFILE_REQUESTS = 20


def predicted_output_tokens(max_tokens: int | None, output_budget: int) -> int:
    """What the answer is expected to be long: the caller's max_tokens, else a typical answer
    (as quotes assume), never above the request's output budget."""
    return max(1, min(max_tokens or QUOTE_OUTPUT_TOKENS, output_budget))


def service_seconds(
    model: ModelSpec, profile: ModelProfile | None, output_tokens: int
) -> tuple[float, float]:
    """``(fixed seconds, seconds per output token)`` of one request to ``model``: measured
    (p50 time to first token and per token) when the profile has enough requests, else the
    catalog's prior."""
    if (
        profile is not None
        and profile.requests >= MIN_PROFILE_REQUESTS
        and profile.time_per_output_token_p50_s > 0
    ):
        return max(profile.ttft_p50_s, 0.0), profile.time_per_output_token_p50_s
    return model.first_token_ms / 1000, 1 / max(model.output_tokens_per_s, 1e-9)


def queue_backend(model: str, replica: str) -> str:
    """The scheduler backend name of ``model``'s queue on ``replica`` (pool ``llm:<it>``)."""
    return f"{model}@{replica}"


@dataclass(slots=True)
class Admission:
    """A request admitted to a model's queue: its ticket and what became of it."""

    model: str
    queue: LlmRequestQueue
    ticket: Ticket
    accepted_at: datetime
    admitted: float = field(default_factory=time.monotonic)
    granted: bool = False
    ended: bool = False

    def eta(self) -> common_pb2.Eta:
        """The caller's ETA: the scheduler's predicted start and completion, queued."""
        eta = common_pb2.Eta(queued=True)
        eta.accepted_at.FromDatetime(self.accepted_at)
        if self.ticket.predicted_start is not None:
            eta.predicted_start.FromDatetime(self.ticket.predicted_start)
        if self.ticket.predicted_completion is not None:
            eta.predicted_completion.FromDatetime(self.ticket.predicted_completion)
        return eta


class RequestQueues:
    """The queues of one gateway replica's capacity-limited models (see the module doc)."""

    def __init__(
        self,
        scheduler_address: str,
        catalog: Catalog,
        *,
        replica: str,
        replicas: int = 1,
        tenant_weights: Mapping[str, float] | None = None,
        max_wait_s: float = 300.0,
        rpc_timeout_s: float = 2.0,
        check_every_s: float = 5.0,
    ) -> None:
        self._address = scheduler_address
        self._replica = replica
        self._weights = dict(tenant_weights or {})
        self._max_wait = max_wait_s
        self._check_every = check_every_s
        self._queues: dict[str, LlmRequestQueue] = {}
        self._ready: set[str] = set()
        self._outstanding: dict[str, Admission] = {}
        self._starting: list[asyncio.Task[None]] = []
        for model in catalog.models.values():
            if model.capacity_slots > 0 and model.available:
                backend = queue_backend(model.name, replica)
                self._queues[model.name] = LlmRequestQueue(
                    scheduler_address,
                    backend=backend,
                    slots=max(1, model.capacity_slots // max(replicas, 1)),
                    executor_id=f"gateway-{replica}-{model.name}",
                    rpc_timeout=rpc_timeout_s,
                )

    @property
    def models(self) -> tuple[str, ...]:
        return tuple(self._queues)

    def ready(self, model: str) -> bool:
        return model in self._ready

    def weight(self, tenant: str) -> float:
        return self._weights.get(tenant, 1.0)

    async def start(self) -> None:
        """Bring the queues up in the background (never blocks the gateway's start: until a
        queue is registered its model is served without it)."""
        for name, queue in self._queues.items():
            self._starting.append(
                asyncio.create_task(self._bring_up(name, queue), name=f"queue-{name}")
            )

    async def _bring_up(self, name: str, queue: LlmRequestQueue) -> None:
        while True:
            try:
                left = await queue.cancel_leftovers()
                if left:
                    log.warning("cancelled requests a previous run left queued", model=name, n=left)
                break
            except LLMProxyError as exc:
                log.warning(
                    "scheduler unreachable; model served without its queue for now",
                    model=name,
                    error=exc.message,
                )
                await asyncio.sleep(self._check_every)
        while True:
            try:
                await queue.start(attempts=50)
                break
            except LLMProxyError as exc:
                log.warning("queue not registered yet", model=name, error=exc.message)
        self._ready.add(name)
        log.info("request queue ready", model=name, pool=queue.pool, executor=queue.executor_id)

    async def close(self) -> None:
        for task in self._starting:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for admission in list(self._outstanding.values()):
            with contextlib.suppress(Exception):
                await self._withdraw(admission)
        for queue in self._queues.values():
            with contextlib.suppress(Exception):
                await queue.close()

    async def admit(
        self,
        model: ModelSpec,
        *,
        tenant: str,
        request_id: str,
        output_tokens: int,
        profile: ModelProfile | None,
        accepted_at: datetime | None = None,
    ) -> Admission | None:
        """Queue a request to ``model``; None when it goes without a queue (the model is not
        limited, or the scheduler cannot be used now: logged and counted)."""
        queue = self._queues.get(model.name)
        if queue is None:
            return None
        if model.name not in self._ready:
            return self._bypass(model.name, "not_registered", "the queue is not registered yet")
        fixed, per_token = service_seconds(model, profile, output_tokens)
        try:
            ticket = await queue.admit(
                tenant=tenant,
                output_tokens=output_tokens,
                seconds_per_token=per_token,
                fixed_seconds=fixed,
                model=model.name,
                request_id=request_id,
                weight=self.weight(tenant),
            )
        except LLMProxyError as exc:
            return self._bypass(model.name, exc.code, exc.message)
        QUEUED.labels(model.name).inc()
        admission = Admission(model.name, queue, ticket, accepted_at or datetime.now(UTC))
        self._outstanding[ticket.job_id] = admission
        return admission

    def _bypass(self, model: str, reason: str, message: str) -> None:
        BYPASSED.labels(model, reason).inc()
        log.warning("serving without the request queue", model=model, reason=message)
        return None

    async def wait_turn(self, admission: Admission) -> None:
        """Return when the request has its slot. Every ``check_every_s`` the scheduler is
        asked about it: if it cannot be reached the request goes ahead without the queue
        (counted); after ``max_wait_s`` it is withdrawn and DeadlineExceededError raised."""
        queue, ticket = admission.queue, admission.ticket
        deadline = admission.admitted + self._max_wait
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    await self._withdraw(admission)
                    raise DeadlineExceededError(
                        f"no slot of {admission.model} came free within {self._max_wait:g} s "
                        "(the model is at capacity; try later)"
                    )
                try:
                    await queue.wait_turn(ticket, max_wait=min(self._check_every, left))
                    admission.granted = True
                    return
                except TimeoutError:
                    pass
                try:
                    await queue.eta(ticket)
                except LLMProxyError as exc:
                    # the scheduler is away: serve now; withdraw the job when it is back
                    self._forget(admission)
                    self._bypass(admission.model, "lost", exc.message)
                    task = asyncio.create_task(self._cancel_later(admission))
                    self._starting.append(task)
                    return
        except asyncio.CancelledError:
            await self._withdraw(admission)
            raise
        finally:
            WAITED.labels(admission.model).observe(time.monotonic() - admission.admitted)

    async def done(self, admission: Admission, *, failed: bool, error: str = "") -> None:
        """The request was answered (or failed): free its slot."""
        if admission.ended:
            return
        if not admission.granted:
            await self._withdraw(admission)
            return
        self._forget(admission)
        await admission.queue.finish(admission.ticket, failed=failed, error=error)

    async def _withdraw(self, admission: Admission) -> None:
        if admission.ended:
            return
        self._forget(admission)
        if admission.granted:
            await admission.queue.finish(admission.ticket, failed=True, error="abandoned")
            return
        try:
            await admission.queue.cancel(admission.ticket)
        except LLMProxyError as exc:
            log.warning(
                "could not withdraw a queued request",
                job=admission.ticket.job_id,
                error=exc.message,
            )

    async def _cancel_later(self, admission: Admission) -> None:
        for _ in range(60):
            try:
                await admission.queue.cancel(admission.ticket)
                return
            except LLMProxyError:
                await asyncio.sleep(self._check_every)

    def _forget(self, admission: Admission) -> None:
        admission.ended = True
        self._outstanding.pop(admission.ticket.job_id, None)
