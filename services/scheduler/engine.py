"""The live scheduler's async shell: drives the pure :class:`LiveScheduler`, persists every
change before anyone hears of it, publishes ``job.*`` events, feeds watchers, applies
``policy.updated`` and notices lost executors.

One lock orders all commands, so the database always holds the core's state as of the last
command; if a write fails the core is reloaded from the database and the caller gets
UNAVAILABLE (nothing half-applied survives). The scheduler is a single writer: run one
replica per database.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeVar

import structlog
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from llmproxy.platform.bus.port import Envelope, EventBus
from llmproxy.platform.bus.subjects import (
    JOB_COMPLETED,
    JOB_ESTIMATED,
    JOB_PREEMPTED,
    JOB_STARTED,
    JOB_SUBMITTED,
)
from llmproxy.platform.db.models import ProcessedEvent
from llmproxy.platform.errors import (
    InvalidArgumentError,
    LLMProxyError,
    NotFoundError,
    UnavailableError,
)
from llmproxy.platform.events import decode_event, new_event_meta
from llmproxy.scheduler.convert import job_to_proto
from llmproxy.scheduler.core import ConfigError, WfqConfig
from llmproxy.scheduler.live import (
    TERMINAL_STATES,
    Assignment,
    Changes,
    EventKind,
    InvalidJobError,
    JobKind,
    JobNotFoundError,
    JobState,
    LiveJob,
    LiveScheduler,
    PoolState,
    Progress,
    SubmitSpec,
    UnknownExecutorError,
    UnknownPoolError,
)
from llmproxy.scheduler.metrics import record_changes
from llmproxy.scheduler.repository import SchedulerRepository
from llmproxy.scheduler.sizing import SizeEstimator
from llmproxy.scheduler.timebase import TimeBase
from llmproxy.v1 import events_pb2

T = TypeVar("T")
P = ParamSpec("P")


def uncancellable(
    method: Callable[P, Coroutine[Any, Any, T]],
) -> Callable[P, Awaitable[T]]:
    """Run a command to its end even if its caller goes away: a gRPC client that cancels
    (or a long poll that is abandoned) must not stop a command between the core's change and
    its write to the database."""

    @functools.wraps(method)
    async def run(*args: P.args, **kwargs: P.kwargs) -> T:
        return await asyncio.shield(asyncio.ensure_future(method(*args, **kwargs)))

    return run


__all__ = ["POLICY_CONSUMER", "SchedulerEngine", "SubmitRequest", "wfq_config_from_proto"]

log = structlog.get_logger(__name__)

#: durable consumer of ``policy.updated``
POLICY_CONSUMER = "scheduler-policy"

SUBJECTS = {
    EventKind.SUBMITTED: JOB_SUBMITTED,
    EventKind.ESTIMATED: JOB_ESTIMATED,
    EventKind.STARTED: JOB_STARTED,
    EventKind.PREEMPTED: JOB_PREEMPTED,
    EventKind.COMPLETED: JOB_COMPLETED,
}
#: sizes above this (GPU-seconds, about 30 GPU-years) are taken for a mistake
MAX_SIZE_SECONDS = 1e9


@dataclass(frozen=True, slots=True)
class SubmitRequest:
    pool: str
    demand: int
    #: GPU-seconds; None: estimate it from the features
    size: float | None
    kind: JobKind = JobKind.GPU
    owner: str = ""
    features: Mapping[str, str] = field(default_factory=dict)
    command: str = ""
    idempotency_key: str = ""
    #: fair-sharing flow and its weight (see :class:`~llmproxy.scheduler.live.SubmitSpec`)
    share: str = ""
    share_weight: float = 0.0


def _invalid(exc: InvalidJobError) -> InvalidArgumentError:
    return InvalidArgumentError(str(exc), field=exc.field)


def wfq_config_from_proto(message: events_pb2.WfqConfig) -> WfqConfig:
    """A core configuration from the event's classes; ConfigError names what is wrong."""
    bounds = [c.size_boundary_seconds for c in message.classes]
    weights = [c.weight for c in message.classes]
    if any(not w > 0 for w in weights):
        raise ConfigError("weights", f"must all be > 0: {weights}")
    total = sum(weights)
    # weights arrive as doubles; normalise their sum to exactly 1 as the core requires
    return WfqConfig.from_mapping(
        {
            "thresholds": bounds,
            "weights": [w / total for w in weights],
            "clip_demand_factor": message.clip_demand_factor or None,
            "delta": message.delta or None,
        }
    )


class _ReloadingLock:
    """The engine's lock. After a write failed and the core could not be reloaded (the
    database is still away), the next holder reloads it first, or gets UnavailableError:
    no command runs on a core the database does not match (an executor's report of a
    finished job, accepted by a stale core and never stored, would be lost)."""

    def __init__(self, engine: SchedulerEngine) -> None:
        self._engine = engine
        self._lock = asyncio.Lock()
        self.stale = False

    async def __aenter__(self) -> None:
        await self._lock.acquire()
        if not self.stale:
            return
        try:
            await self._engine._restore()
        except BaseException as exc:
            self._lock.release()
            raise UnavailableError(
                "the scheduler's database is unreachable; retry in a few seconds"
            ) from exc
        self.stale = False

    async def __aexit__(self, *exc: object) -> None:
        self._lock.release()


class SchedulerEngine:
    def __init__(
        self,
        core: LiveScheduler,
        repository: SchedulerRepository,
        bus: EventBus | None,
        timebase: TimeBase,
        *,
        source: str = "scheduler",
        sizes: SizeEstimator | None = None,
        id_factory: Callable[[], str] = lambda: uuid.uuid4().hex,
    ) -> None:
        self.core = core
        self.repository = repository
        self.bus = bus
        self.time = timebase
        self.sizes = sizes or SizeEstimator()
        self._source = source
        self._new_id = id_factory
        self._lock = _ReloadingLock(self)
        self._watchers: dict[str, set[asyncio.Queue[LiveJob]]] = defaultdict(set)
        # set when an executor's assignments change (wakes its long-polling heartbeat)
        self._wakeups: dict[str, asyncio.Event] = {}
        self._outbox: asyncio.Queue[tuple[str, bytes, str]] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._reachable = asyncio.Event()

    # ------------------------------------------------------------------ life
    async def start(self, *, expiry_interval: float) -> None:
        """Load the persisted queue, then start the publisher and the executor watchdog."""
        async with self._lock:
            await self._restore()
        await self.sizes.fit(await self.repository.completed())
        self._tasks.append(asyncio.create_task(self._publish_loop(), name="scheduler-events"))
        self._tasks.append(
            asyncio.create_task(self._expiry_loop(expiry_interval), name="scheduler-expiry")
        )

    async def stop(self, drain_timeout: float = 5.0) -> None:
        for task in self._tasks[1:]:
            task.cancel()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._outbox.join(), drain_timeout)
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    async def _restore(self) -> None:
        state = await self.repository.load()
        self.core = LiveScheduler(
            executor_timeout=self.core.executor_timeout,
            default_config=self.core.default_config,
            tolerance=self.core.tolerance,
        )
        changes = self.core.restore(
            state.jobs,
            state.executors,
            state.configs,
            next_seq=state.next_seq,
            now=self.time.now(),
            caps=state.caps,
        )
        await self._commit(changes)
        log.info(
            "scheduler state loaded", active_jobs=len(state.jobs), executors=len(state.executors)
        )

    # ------------------------------------------------------------------ commands
    @uncancellable
    async def submit(self, request: SubmitRequest) -> LiveJob:
        if request.size is not None and not (
            math.isfinite(request.size) and 0 < request.size <= MAX_SIZE_SECONDS
        ):
            raise InvalidArgumentError(
                f"size_seconds must be > 0 and at most {MAX_SIZE_SECONDS:g} GPU-seconds "
                f"(0 = estimate it), got {request.size!r}",
                field="size_seconds",
            )
        async with self._lock:
            key = request.idempotency_key
            if key:
                existing = self.core.find_by_idempotency_key(
                    key
                ) or await self.repository.find_by_idempotency_key(key)
                if existing is not None:
                    return existing
            size, uncertainty = request.size, 0.0
            if size is None:
                estimate = self.sizes.estimate(request.features, request.demand)
                size, uncertainty = estimate.size, estimate.uncertainty
            try:
                spec = SubmitSpec(
                    job_id=self._new_id(),
                    pool=request.pool,
                    demand=request.demand,
                    size=size,
                    kind=request.kind,
                    owner=request.owner,
                    size_uncertainty=uncertainty,
                    size_estimated=request.size is None,
                    features=dict(request.features),
                    command=request.command,
                    idempotency_key=key,
                    share=request.share,
                    share_weight=request.share_weight,
                )
                changes = self._apply(lambda: self.core.submit(spec, self.time.now()))
            except InvalidJobError as exc:
                raise _invalid(exc) from None
            await self._commit(changes)
            return changes.jobs[spec.job_id]

    async def get(self, job_id: str) -> LiveJob:
        job = self.core.find_job(job_id) or await self.repository.get(job_id)
        if job is None:
            raise NotFoundError(f"unknown job {job_id!r}")
        return job

    async def list_jobs(
        self,
        *,
        pool: str = "",
        states: Sequence[JobState] = (),
        owner: str = "",
        limit: int = 100,
    ) -> list[LiveJob]:
        return await self.repository.list_jobs(pool=pool, states=states, owner=owner, limit=limit)

    @uncancellable
    async def cancel(self, job_id: str) -> LiveJob:
        async with self._lock:
            if self.core.find_job(job_id) is None:
                job = await self.repository.get(job_id)
                if job is None:
                    raise NotFoundError(f"unknown job {job_id!r}")
                if job.state is JobState.CANCELLED:
                    return job
                raise InvalidArgumentError(
                    f"job {job_id!r} already ended ({job.state.value}); nothing to cancel",
                    field="job_id",
                )
            changes = self._apply(lambda: self.core.cancel(job_id, self.time.now()))
            await self._commit(changes)
            return changes.jobs[job_id]

    async def watch(self, job_id: str) -> AsyncIterator[LiveJob]:
        """The job now, then each new version of it until it ends."""
        queue: asyncio.Queue[LiveJob] = asyncio.Queue()
        self._watchers[job_id].add(queue)
        try:
            job = await self.get(job_id)
            yield job
            while job.state not in TERMINAL_STATES:
                job = await queue.get()
                yield job
        finally:
            self._watchers[job_id].discard(queue)
            if not self._watchers[job_id]:
                del self._watchers[job_id]

    @uncancellable
    async def register_executor(self, executor_id: str, pool: str, gpus: int, kind: str) -> None:
        async with self._lock:
            try:
                changes = self._apply(
                    lambda: self.core.register_executor(
                        executor_id, pool, gpus, kind, self.time.now()
                    )
                )
            except InvalidJobError as exc:
                raise _invalid(exc) from None
            await self._commit(changes)

    async def heartbeat(
        self, executor_id: str, progress: Sequence[Progress], *, wait: float = 0.0
    ) -> list[Assignment]:
        """Record progress and return the executor's assignments. With ``wait`` > 0 and
        nothing new to run, hold the reply up to ``wait`` wall seconds until something is
        assigned to it or taken from it (a long poll)."""
        wakeup = self._wakeups.setdefault(executor_id, asyncio.Event())
        assignments = await self._record_heartbeat(executor_id, progress, wakeup)
        running = {p.job_id for p in progress if not (p.finished or p.failed)}
        if wait > 0 and {a.job_id for a in assignments} == running:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(wakeup.wait(), wait)
            assignments = self.core.assignments(executor_id, self.time.now())
        return assignments

    @uncancellable
    async def _record_heartbeat(
        self, executor_id: str, progress: Sequence[Progress], wakeup: asyncio.Event
    ) -> list[Assignment]:
        async with self._lock:
            wakeup.clear()
            changes, assignments = self._apply(
                lambda: self.core.heartbeat(executor_id, progress, self.time.now())
            )
            await self._commit(changes)
        ended = sum(1 for t in changes.transitions if t.job.state is JobState.COMPLETED)
        if ended and self.sizes.completed(ended):
            await self.sizes.fit(await self.repository.completed())
        return assignments

    @uncancellable
    async def expire_executors(self) -> None:
        async with self._lock:
            changes = self.core.expire_executors(self.time.now())
            if changes.executors:
                await self._commit(changes)

    def pool_state(self, pool: str) -> tuple[PoolState, list[LiveJob]]:
        try:
            return self.core.pool_state(pool), self.core.active_jobs(pool)
        except UnknownPoolError as exc:
            raise NotFoundError(str(exc).strip('"')) from None

    @uncancellable
    async def on_policy_updated(self, envelope: Envelope) -> None:
        """Apply a WFQ configuration live; queued and running jobs stay, predictions are
        revised with reason "configuration changed". A malformed configuration is logged
        and dropped (redelivering it would not make it valid)."""
        event = decode_event(envelope, events_pb2.PolicyUpdated)
        if event.WhichOneof("policy") != "wfq":
            return
        try:
            config = wfq_config_from_proto(event.wfq)
        except ConfigError as exc:
            log.warning(
                "ignored invalid WFQ configuration", policy_id=event.policy_id, error=str(exc)
            )
            return
        cap = event.wfq.max_job_gpus
        if cap < 0:
            log.warning(
                "ignored invalid WFQ configuration", policy_id=event.policy_id,
                error=f"max_job_gpus must be >= 0 (0 = no cap), got {cap}",
            )  # fmt: skip
            return
        pool = event.scheduler_pool or None
        async with self._lock:
            if await self._already_handled(envelope.event_id):
                return
            changes = self.core.set_config(pool, config, self.time.now(), max_job_gpus=cap)
            policy_ids = dict.fromkeys(changes.configs, event.policy_id)
            await self._commit(
                changes, policy_ids=policy_ids, claim=(POLICY_CONSUMER, envelope.event_id)
            )
        log.info(
            "WFQ configuration applied",
            policy_id=event.policy_id,
            pool=pool or "*",
            max_job_gpus=cap or None,
        )

    # ------------------------------------------------------------------ internals
    def _apply(self, command: Callable[[], T]) -> T:
        try:
            return command()
        except JobNotFoundError as exc:
            raise NotFoundError(f"unknown job {exc.job_id!r}") from None
        except (UnknownPoolError, UnknownExecutorError) as exc:
            raise NotFoundError(str(exc).strip('"')) from None

    async def _already_handled(self, event_id: str) -> bool:
        async with self.repository._sessions() as session:
            row = await session.scalar(
                select(ProcessedEvent).where(
                    ProcessedEvent.consumer == POLICY_CONSUMER, ProcessedEvent.event_id == event_id
                )
            )
        return row is not None

    async def _commit(
        self,
        changes: Changes,
        *,
        policy_ids: Mapping[str, str] | None = None,
        claim: tuple[str, str] | None = None,
    ) -> None:
        """Persist, then tell watchers and queue the events. Called under the lock."""
        if not (changes.jobs or changes.executors or changes.configs):
            return
        try:
            await self.repository.save(changes, policy_ids=policy_ids, claim=claim)
        except (SQLAlchemyError, OSError, LLMProxyError) as exc:
            log.error("persisting scheduler changes failed; reloading", error=str(exc))
            # until the reload succeeds no command may run on the half-applied core
            self._lock.stale = True
            with contextlib.suppress(Exception):
                await self._restore()
                self._lock.stale = False
            raise UnavailableError(f"the scheduler's database failed: {exc}") from exc
        record_changes(self.core, changes)
        for transition in changes.transitions:
            event = events_pb2.JobEvent(
                meta=new_event_meta(self._source, now=self.time.to_wall(self.time.now())),
                job=job_to_proto(transition.job, self.time),
                reason=transition.reason,
            )
            self._outbox.put_nowait(
                (SUBJECTS[transition.kind], event.SerializeToString(), event.meta.event_id)
            )
        for job in changes.jobs.values():
            for queue in self._watchers.get(job.job_id, ()):
                queue.put_nowait(job)
        for transition in changes.transitions:
            if transition.kind is EventKind.STARTED:
                self._wake(transition.job.executor_id)
            elif transition.job.state is JobState.CANCELLED:
                for executor_id in list(self._wakeups):
                    self._wake(executor_id)

    def _wake(self, executor_id: str) -> None:
        event = self._wakeups.get(executor_id)
        if event is not None:
            event.set()

    async def _publish_loop(self) -> None:
        while True:
            subject, data, event_id = await self._outbox.get()
            try:
                if self.bus is not None:
                    for attempt in range(5):
                        try:
                            await self.bus.publish(subject, data, event_id=event_id)
                            break
                        except UnavailableError:
                            await asyncio.sleep(0.2 * 2**attempt)
                    else:
                        log.error("dropped a job event after retries", subject=subject)
            except Exception:
                log.exception("publishing a job event failed", subject=subject)
            finally:
                self._outbox.task_done()

    def serving(self) -> None:
        """Called on every RPC: the first one shows that executors can reach us again."""
        if not self._reachable.is_set():
            self.core.grant_grace(self.time.now())
            self._reachable.set()

    async def _expiry_loop(self, interval: float) -> None:
        # after a restart, executors' silence counts from when we are reachable again, or
        # jobs that ran fine while we were down would be requeued and run twice
        await self._reachable.wait()
        while True:
            await asyncio.sleep(interval)
            try:
                await self.expire_executors()
            except Exception:
                log.exception("executor expiry failed")
