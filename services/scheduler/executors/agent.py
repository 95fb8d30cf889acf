"""The executor agent: registers with the scheduler, heartbeats with its jobs' progress, and
makes its runner match the assignments each reply carries.

Reports of ended jobs are kept until a heartbeat has delivered them, so a job that ends while
the scheduler is down (or restarting) is reported when it comes back, never lost. A heartbeat
answered NOT_FOUND means the scheduler does not know this executor: it registers again.
"""

from __future__ import annotations

import asyncio
import contextlib

import grpc
import structlog

from llmproxy.scheduler.executors.runner import Runner
from llmproxy.scheduler.live import Assignment
from llmproxy.v1 import scheduler_pb2, scheduler_pb2_grpc

__all__ = ["ExecutorAgent"]

log = structlog.get_logger(__name__)

#: a scheduler restarting or shutting down answers these; try again
_RETRYABLE = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.CANCELLED,
}


class ExecutorAgent:
    def __init__(
        self,
        scheduler_address: str,
        runner: Runner,
        *,
        executor_id: str,
        pool: str,
        gpus: int,
        kind: str,
        rpc_timeout: float = 5.0,
    ) -> None:
        self.address = scheduler_address
        self.runner = runner
        self.executor_id = executor_id
        self.pool = pool
        self.gpus = gpus
        self.kind = kind
        self.rpc_timeout = rpc_timeout
        self.heartbeat_interval = 2.0
        self._stop = asyncio.Event()

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        """Serve until :meth:`stop`; the runner's jobs are stopped on the way out."""
        async with grpc.aio.insecure_channel(self.address) as channel:
            stub = scheduler_pb2_grpc.SchedulerStub(channel)
            try:
                await self._register(stub)
                while not self._stop.is_set():
                    if not await self._beat(stub):
                        await self._sleep(self.heartbeat_interval)
            finally:
                await self.runner.close()

    async def _register(self, stub: scheduler_pb2_grpc.SchedulerStub) -> None:
        while not self._stop.is_set():
            try:
                reply = await stub.RegisterExecutor(
                    scheduler_pb2.RegisterExecutorRequest(
                        executor_id=self.executor_id,
                        pool=self.pool,
                        gpus=self.gpus,
                        kind=self.kind,
                    ),
                    timeout=self.rpc_timeout,
                )
            except grpc.aio.AioRpcError as exc:
                if exc.code() not in _RETRYABLE:
                    raise
                log.warning("scheduler unreachable; retrying registration", code=exc.code().name)
                await self._sleep(self.heartbeat_interval)
                continue
            self.heartbeat_interval = max(reply.heartbeat_interval.ToNanoseconds() / 1e9, 0.05)
            log.info("executor registered", executor=self.executor_id, pool=self.pool)
            return

    async def _beat(self, stub: scheduler_pb2_grpc.SchedulerStub) -> bool:
        """One long-polling heartbeat; False when the scheduler could not be reached.

        The reply is held by the scheduler until something is assigned (or the interval
        passes); if meanwhile a job here ends, the poll is abandoned and the next heartbeat
        carries the news at once."""
        self.runner.changed.clear()
        reports = self.runner.reports()
        request = scheduler_pb2.HeartbeatRequest(
            executor_id=self.executor_id,
            progress=[
                scheduler_pb2.JobProgress(
                    job_id=r.job_id,
                    attained_seconds=r.attained,
                    finished=r.finished,
                    failed=r.failed,
                    error=r.error,
                )
                for r in reports
            ],
        )
        request.wait.FromNanoseconds(int(self.heartbeat_interval * 1e9))
        call = stub.Heartbeat(request, timeout=self.rpc_timeout + self.heartbeat_interval)
        answer = asyncio.ensure_future(call)
        waiters = [
            asyncio.ensure_future(self.runner.changed.wait()),
            asyncio.ensure_future(self._stop.wait()),
        ]
        soon = self.runner.seconds_to_next_end()
        if soon is not None:
            waiters.append(asyncio.ensure_future(asyncio.sleep(soon)))
        try:
            await asyncio.wait([answer, *waiters], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await waiter
        if not answer.done():
            call.cancel()
            answer.cancel()
            with contextlib.suppress(asyncio.CancelledError, grpc.aio.AioRpcError):
                await answer
            return True
        try:
            reply = answer.result()
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                await self._register(stub)
                return True
            if exc.code() in _RETRYABLE:
                log.warning("heartbeat failed; will retry", code=exc.code().name)
                return False
            raise
        self.runner.forget({r.job_id for r in reports if r.finished or r.failed})
        self._reconcile(
            [
                Assignment(a.job_id, tuple(a.gpu_indices), a.command, a.remaining_seconds)
                for a in reply.assignments
            ]
        )
        return True

    def _reconcile(self, assignments: list[Assignment]) -> None:
        wanted = {a.job_id: a for a in assignments}
        for job_id in self.runner.running() - wanted.keys():
            log.info("stopping a job no longer assigned", job=job_id)
            self.runner.stop(job_id)
        running = self.runner.running()
        for job_id, assignment in wanted.items():
            if job_id not in running:
                log.info("starting job", job=job_id, gpus=list(assignment.gpu_indices))
                self.runner.start(assignment)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)
