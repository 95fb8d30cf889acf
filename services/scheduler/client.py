"""Clients of the Scheduler for other services; above all the gateway's hook for LLM request
queues on capacity-limited backends.

:class:`LlmRequestQueue` is the backend's executor: it registers the backend as pool
``llm:<backend>`` with its N concurrent slots and keeps heartbeating. Each request is
submitted as a job of ``predicted output tokens x seconds per token`` (:meth:`admit` returns
the ETA at once, to show the caller before the answer), :meth:`wait_turn` resolves when the
scheduler gives the request a slot, and :meth:`finish` reports it done (the actual time feeds
the next predictions)::

    async with LlmRequestQueue(address, backend="local-smollm", slots=4) as queue:
        ticket = await queue.admit(tenant="acme", output_tokens=200, seconds_per_token=0.02)
        send_eta_header(ticket.predicted_completion)
        await queue.wait_turn(ticket)
        try:
            answer = await call_model(...)
        finally:
            await queue.finish(ticket, failed=answer is None)
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType

import grpc

from llmproxy.platform.errors import InvalidArgumentError, LLMProxyError
from llmproxy.platform.grpc_boundary import error_from_rpc
from llmproxy.scheduler.executors.agent import ExecutorAgent
from llmproxy.scheduler.live import Assignment, Progress
from llmproxy.v1 import scheduler_pb2, scheduler_pb2_grpc

__all__ = ["LlmRequestQueue", "Ticket", "llm_pool"]


def llm_pool(backend: str) -> str:
    """The scheduler pool of an LLM backend's request queue."""
    return f"llm:{backend}"


def _time(timestamp: object) -> datetime | None:
    if not getattr(timestamp, "seconds", 0) and not getattr(timestamp, "nanos", 0):
        return None
    return timestamp.ToDatetime(tzinfo=UTC)  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class Ticket:
    """An admitted request: its job id and the ETA the scheduler gave it."""

    job_id: str
    predicted_start: datetime | None
    predicted_completion: datetime | None
    size_seconds: float


class _InlineRunner:
    """The agent's runner for requests the gateway itself serves: "starting" a job grants
    its slot; the job ends when the gateway says so."""

    def __init__(self) -> None:
        self.changed = asyncio.Event()
        self._granted: dict[str, asyncio.Future[None]] = {}
        self._started: dict[str, float] = {}
        self._ended: dict[str, Progress] = {}

    def turn(self, job_id: str) -> asyncio.Future[None]:
        return self._granted.setdefault(job_id, asyncio.get_running_loop().create_future())

    def end(self, job_id: str, *, failed: bool, error: str) -> None:
        started = self._started.get(job_id, time.monotonic())
        attained = time.monotonic() - started
        self._ended[job_id] = Progress(
            job_id, attained, finished=not failed, failed=failed, error=error
        )
        self.changed.set()

    def running(self) -> set[str]:
        return set(self._started)

    def start(self, assignment: Assignment) -> None:
        self._started[assignment.job_id] = time.monotonic()
        future = self.turn(assignment.job_id)
        if not future.done():
            future.set_result(None)

    def stop(self, job_id: str) -> None:
        self._started.pop(job_id, None)
        self._ended.pop(job_id, None)
        future = self._granted.pop(job_id, None)
        if future is not None and not future.done():
            future.set_exception(LLMProxyError(f"request {job_id} was cancelled"))
            future.exception()  # a waiter still gets it; no one waiting is no error

    def reports(self) -> list[Progress]:
        now = time.monotonic()
        return [
            self._ended.get(job_id) or Progress(job_id, now - started)
            for job_id, started in self._started.items()
        ]

    def forget(self, job_ids: set[str]) -> None:
        for job_id in job_ids:
            if job_id in self._ended:
                self._ended.pop(job_id)
                self._started.pop(job_id, None)
                self._granted.pop(job_id, None)

    def seconds_to_next_end(self) -> float | None:
        return None

    async def close(self) -> None:
        for job_id in list(self._granted):
            self.stop(job_id)


class LlmRequestQueue:
    def __init__(
        self,
        address: str,
        *,
        backend: str,
        slots: int,
        executor_id: str | None = None,
        rpc_timeout: float = 5.0,
    ) -> None:
        if slots < 1:
            raise InvalidArgumentError(f"slots must be at least 1, got {slots}", field="slots")
        self.address = address
        self.pool = llm_pool(backend)
        self.slots = slots
        self.rpc_timeout = rpc_timeout
        self._runner = _InlineRunner()
        self._agent = ExecutorAgent(
            address,
            self._runner,
            executor_id=executor_id or f"gateway-{backend}-{uuid.uuid4().hex[:8]}",
            pool=self.pool,
            gpus=slots,
            kind="llm",
        )
        self._channel: grpc.aio.Channel | None = None
        self._agent_task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> LlmRequestQueue:
        await self.start()
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def executor_id(self) -> str:
        return self._agent.executor_id

    async def start(self, *, attempts: int = 100) -> None:
        """Register the backend's slots and wait until the scheduler knows them (LLMProxyError
        after ``attempts`` checks; the agent keeps trying to register in the background)."""
        if self._channel is None:
            self._channel = grpc.aio.insecure_channel(self.address)
        if self._agent_task is None:
            self._agent_task = asyncio.create_task(self._agent.run(), name=f"llm-queue-{self.pool}")
        stub = scheduler_pb2_grpc.SchedulerStub(self._channel)
        for _ in range(attempts):
            with contextlib.suppress(grpc.aio.AioRpcError):
                state = await stub.GetClusterState(
                    scheduler_pb2.ClusterStateRequest(pool=self.pool), timeout=self.rpc_timeout
                )
                if any(e.executor_id == self._agent.executor_id for e in state.executors):
                    return
            if self._agent_task.done():
                self._agent_task.result()
            await asyncio.sleep(0.05)
        raise LLMProxyError(f"the scheduler at {self.address} never registered {self.pool}")

    async def close(self) -> None:
        self._agent.stop()
        if self._agent_task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._agent_task, 10)
        if self._channel is not None:
            await self._channel.close()

    @property
    def _stub(self) -> scheduler_pb2_grpc.SchedulerStub:
        if self._channel is None:
            raise LLMProxyError("the LLM request queue is not started")
        return scheduler_pb2_grpc.SchedulerStub(self._channel)

    async def cancel_leftovers(self) -> int:
        """Cancel every active job of this queue's pool: requests a previous run of this
        executor admitted and never finished (their callers left with that process). Call
        before :meth:`start`. Returns how many were cancelled."""
        if self._channel is None:
            self._channel = grpc.aio.insecure_channel(self.address)
        try:
            listed = await self._stub.ListJobs(
                scheduler_pb2.ListJobsRequest(
                    pool=self.pool,
                    states=[
                        scheduler_pb2.JOB_STATE_QUEUED,
                        scheduler_pb2.JOB_STATE_RUNNING,
                        scheduler_pb2.JOB_STATE_PREEMPTED,
                    ],
                    limit=1000,
                ),
                timeout=self.rpc_timeout,
            )
            for job in listed.jobs:
                with contextlib.suppress(grpc.aio.AioRpcError):
                    await self._stub.CancelJob(
                        scheduler_pb2.JobRef(job_id=job.job_id), timeout=self.rpc_timeout
                    )
        except grpc.aio.AioRpcError as exc:
            raise error_from_rpc(exc, peer=f"the scheduler at {self.address}") from exc
        return len(listed.jobs)

    async def admit(
        self,
        *,
        tenant: str,
        output_tokens: int,
        seconds_per_token: float,
        model: str = "",
        request_id: str = "",
        fixed_seconds: float = 0.0,
        weight: float = 1.0,
    ) -> Ticket:
        """Submit one request; returns its ETA at once. ``request_id`` makes it idempotent.

        Its size is ``fixed_seconds + output_tokens x seconds_per_token`` (e.g. the time to
        the first token, then the generation). Requests of one tenant form one WFQ flow of
        weight ``weight``, so a tenant with a burst cannot starve the others."""
        if output_tokens < 1 or not seconds_per_token > 0:
            raise InvalidArgumentError(
                "output_tokens must be >= 1 and seconds_per_token > 0, got "
                f"{output_tokens} and {seconds_per_token}",
                field="output_tokens",
            )
        if not (fixed_seconds >= 0 and weight > 0):
            raise InvalidArgumentError(
                f"fixed_seconds must be >= 0 and weight > 0, got {fixed_seconds} and {weight}",
                field="weight",
            )
        request = scheduler_pb2.SubmitJobRequest(
            kind=scheduler_pb2.JOB_KIND_LLM_REQUEST,
            pool=self.pool,
            owner=tenant,
            gpu_demand=1,
            size_seconds=fixed_seconds + output_tokens * seconds_per_token,
            features=scheduler_pb2.JobFeatures(model_name=model, user=tenant),
            idempotency_key=f"llm:{request_id}" if request_id else "",
            share=f"tenant:{tenant}",
            share_weight=weight,
        )
        try:
            job = (await self._stub.SubmitJob(request, timeout=self.rpc_timeout)).job
        except grpc.aio.AioRpcError as exc:
            raise error_from_rpc(exc, peer=f"the scheduler at {self.address}") from exc
        self._runner.turn(job.job_id)
        return Ticket(
            job_id=job.job_id,
            predicted_start=_time(job.prediction.predicted_start),
            predicted_completion=_time(job.prediction.predicted_completion),
            size_seconds=job.size_seconds,
        )

    async def wait_turn(self, ticket: Ticket, max_wait: float | None = None) -> None:
        """Return when the scheduler gives the request a slot."""
        await asyncio.wait_for(asyncio.shield(self._runner.turn(ticket.job_id)), max_wait)

    async def finish(self, ticket: Ticket, *, failed: bool = False, error: str = "") -> None:
        """Report the request answered (or failed); the next heartbeat, sent at once,
        carries it and frees the slot."""
        self._runner.end(ticket.job_id, failed=failed, error=error)

    async def cancel(self, ticket: Ticket) -> None:
        """Withdraw a request that has not been answered (its caller left, or it waited too
        long); a request that holds its slot is ended with :meth:`finish` instead."""
        self._runner.stop(ticket.job_id)
        try:
            await self._stub.CancelJob(
                scheduler_pb2.JobRef(job_id=ticket.job_id), timeout=self.rpc_timeout
            )
        except grpc.aio.AioRpcError as exc:
            raise error_from_rpc(exc, peer=f"the scheduler at {self.address}") from exc

    async def eta(self, ticket: Ticket) -> datetime | None:
        """The current predicted completion (it is revised as the queue changes)."""
        try:
            job = await self._stub.GetJob(
                scheduler_pb2.JobRef(job_id=ticket.job_id), timeout=self.rpc_timeout
            )
        except grpc.aio.AioRpcError as exc:
            raise error_from_rpc(exc, peer=f"the scheduler at {self.address}") from exc
        return _time(job.prediction.predicted_completion)
