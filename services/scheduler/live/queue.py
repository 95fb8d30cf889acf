"""The live scheduler's state machine: commands in, job transitions out. No I/O.

The adapter feeds it submissions, cancellations, executor registrations and heartbeats, and a
periodic :meth:`LiveScheduler.expire_executors`; each call returns the :class:`Changes` to
persist, publish and show to watchers. After every change the pool's waiting jobs are started
by the rule of :mod:`.ordering`, and every active job's prediction is recomputed by replaying
that same rule forward (:func:`.ordering.forecast`); a prediction that moved more than the
tolerance is revised, with the reason that moved it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from llmproxy.scheduler.core import WfqConfig

from .model import (
    Assignment,
    EventKind,
    Executor,
    InvalidJobError,
    JobNotFoundError,
    JobState,
    LiveJob,
    Prediction,
    Progress,
    SubmitSpec,
    Transition,
    UnknownExecutorError,
    UnknownPoolError,
)
from .ordering import Forecast, RunningJob, StartPlanner, WaitingJob

__all__ = ["Changes", "LiveScheduler", "PoolState", "Tolerance"]


@dataclass(frozen=True, slots=True)
class Tolerance:
    """How far a prediction may drift before it is revised (and announced)."""

    #: core seconds
    absolute: float = 1.0
    #: fraction of the time left until the old predicted completion
    relative: float = 0.02


@dataclass(slots=True)
class Changes:
    """What one command changed: final job versions to store, transitions to announce in
    order, executors to store, and the pool configuration when it changed."""

    jobs: dict[str, LiveJob] = field(default_factory=dict)
    transitions: list[Transition] = field(default_factory=list)
    executors: dict[str, Executor] = field(default_factory=dict)
    configs: dict[str, WfqConfig] = field(default_factory=dict)
    #: per-job GPU cap of each pool in ``configs`` (0 = none)
    caps: dict[str, int] = field(default_factory=dict)

    def record(self, job: LiveJob, kind: EventKind | None = None, reason: str = "") -> None:
        self.jobs[job.job_id] = job
        if kind is not None:
            self.transitions.append(Transition(job, kind, reason))

    def merge(self, other: Changes) -> None:
        self.jobs.update(other.jobs)
        self.transitions.extend(other.transitions)
        self.executors.update(other.executors)
        self.configs.update(other.configs)
        self.caps.update(other.caps)


class _JobTable(dict[str, LiveJob]):
    """The active jobs by id, counting them per (pool, running) as they change, so the
    queue's length is known without a scan."""

    def __init__(self, jobs: Iterable[LiveJob] = ()) -> None:
        super().__init__()
        self.counts: dict[tuple[str, bool], int] = {}
        for job in jobs:
            self[job.job_id] = job

    def _count(self, job: LiveJob, step: int) -> None:
        key = (job.pool, job.state is JobState.RUNNING)
        self.counts[key] = self.counts.get(key, 0) + step

    def __setitem__(self, job_id: str, job: LiveJob) -> None:
        old = self.get(job_id)
        if old is not None:
            self._count(old, -1)
        self._count(job, 1)
        super().__setitem__(job_id, job)

    def __delitem__(self, job_id: str) -> None:
        self._count(self[job_id], -1)
        super().__delitem__(job_id)


@dataclass(slots=True)
class _Tail:
    """A pool's forecast as of its last settle, kept so that a job joining at the end of the
    queue is predicted by resuming it instead of replaying the whole queue. Valid while
    nothing in the pool changed but such submissions, and until ``valid_until``: then a
    running job could overrun its believed finish (a fresh forecast would move it), or a
    prediction kept within the tolerance would count as moved (the relative tolerance shrinks
    as its time nears)."""

    forecast: Forecast
    made_at: float
    valid_until: float
    #: (tag, seq) of the last waiting job: a new job must sort after it
    last: tuple[float, int]


@dataclass(frozen=True, slots=True)
class PoolState:
    pool: str
    #: GPUs of live executors
    capacity: int
    allocated: int
    queued: int
    running: int
    config: WfqConfig
    executors: tuple[Executor, ...]


class LiveScheduler:
    """Active jobs and executors of every pool. Not thread-safe: one owner drives it."""

    def __init__(
        self,
        *,
        executor_timeout: float,
        default_config: WfqConfig | None = None,
        tolerance: Tolerance = Tolerance(),
    ) -> None:
        if not executor_timeout > 0:
            raise InvalidJobError("executor_timeout", f"must be > 0, got {executor_timeout}")
        self.executor_timeout = executor_timeout
        self.default_config = default_config or WfqConfig.single_class()
        self.tolerance = tolerance
        self._jobs = _JobTable()
        self._executors: dict[str, Executor] = {}
        self._configs: dict[str, WfqConfig] = {}
        # per-job GPU cap of each pool (the optimizer's max_job_gpus); 0 = none
        self._caps: dict[str, int] = {}
        self.default_cap = 0
        self._next_seq = 1
        # WFQ virtual time per pool, and the latest finish tag per (pool, flow): a flow is a
        # size class (its index) or a share (its name, e.g. "tenant:acme")
        self._virtual: dict[str, float] = {}
        self._last_tag: dict[tuple[str, int | str], float] = {}
        # active jobs by idempotency key, and each pool's resumable forecast
        self._by_key: dict[str, str] = {}
        self._tails: dict[str, _Tail] = {}

    # ------------------------------------------------------------------ restore
    def restore(
        self,
        jobs: Iterable[LiveJob],
        executors: Iterable[Executor],
        configs: Mapping[str, WfqConfig],
        *,
        next_seq: int,
        now: float,
        caps: Mapping[str, int] | None = None,
    ) -> Changes:
        """Load the persisted state after a restart. Live executors get a fresh heartbeat
        deadline (they could not reach a stopped scheduler); nothing is requeued."""
        self._jobs = _JobTable(job for job in jobs if job.active)
        self._by_key = {
            j.idempotency_key: j.job_id for j in self._jobs.values() if j.idempotency_key
        }
        self._tails.clear()
        self._configs = dict(configs)
        self._caps = {pool: cap for pool, cap in (caps or {}).items() if cap > 0}
        self._virtual.clear()
        self._last_tag.clear()
        for job in self.active_jobs():
            if job.state is JobState.RUNNING:
                self._virtual[job.pool] = max(self._virtual.get(job.pool, 0.0), job.tag_start)
            key = (job.pool, self._flow_of(job.class_index, job.share))
            self._last_tag[key] = max(self._last_tag.get(key, 0.0), job.tag_finish)
        self._next_seq = max(next_seq, max((j.seq for j in self._jobs.values()), default=0) + 1)
        changes = Changes()
        for executor in executors:
            if executor.alive:
                executor = dataclasses.replace(
                    executor, last_heartbeat=max(executor.last_heartbeat, now)
                )
                changes.executors[executor.executor_id] = executor
            self._executors[executor.executor_id] = executor
        for pool in self.pools():
            changes.merge(self._settle(pool, now, "scheduler restarted"))
        return changes

    # ------------------------------------------------------------------ queries
    def pools(self) -> tuple[str, ...]:
        return tuple(sorted({e.pool for e in self._executors.values()}))

    def config(self, pool: str) -> WfqConfig:
        return self._configs.get(pool, self.default_config)

    def cap(self, pool: str) -> int:
        """Most GPUs one job of ``pool`` may run on (larger demands are clipped); 0 = none."""
        return self._caps.get(pool, 0) if pool in self._configs else self.default_cap

    @staticmethod
    def _clip(requested: int, cap: int) -> tuple[int, int]:
        """(demand, requested_demand) of a job asking for ``requested`` GPUs under ``cap``."""
        if cap and requested > cap:
            return cap, requested
        return requested, 0

    def job(self, job_id: str) -> LiveJob:
        try:
            return self._jobs[job_id]
        except KeyError:
            raise JobNotFoundError(job_id) from None

    def find_job(self, job_id: str) -> LiveJob | None:
        return self._jobs.get(job_id)

    def find_by_idempotency_key(self, key: str) -> LiveJob | None:
        if not key:
            return None
        job = self._jobs.get(self._by_key.get(key, ""))
        return job if job is not None and job.idempotency_key == key else None

    def active_jobs(self, pool: str | None = None) -> list[LiveJob]:
        jobs = [j for j in self._jobs.values() if pool is None or j.pool == pool]
        return sorted(jobs, key=lambda j: j.seq)

    def job_counts(self, pool: str) -> tuple[int, int]:
        """(waiting, running) active jobs of ``pool``, without a scan."""
        counts = self._jobs.counts
        return counts.get((pool, False), 0), counts.get((pool, True), 0)

    def executor(self, executor_id: str) -> Executor:
        try:
            return self._executors[executor_id]
        except KeyError:
            raise UnknownExecutorError(executor_id) from None

    def pool_state(self, pool: str) -> PoolState:
        if pool not in self.pools():
            raise UnknownPoolError(pool, self.pools())
        executors = tuple(
            sorted(
                (e for e in self._executors.values() if e.pool == pool),
                key=lambda e: e.executor_id,
            )
        )
        jobs = self.active_jobs(pool)
        running = [j for j in jobs if j.state is JobState.RUNNING]
        return PoolState(
            pool=pool,
            capacity=sum(e.gpus for e in executors if e.alive),
            allocated=sum(j.demand for j in running),
            queued=len(jobs) - len(running),
            running=len(running),
            config=self.config(pool),
            executors=executors,
        )

    def assignments(self, executor_id: str, now: float) -> list[Assignment]:
        """The jobs ``executor_id`` must be running now (anything else it runs, it stops)."""
        return [
            Assignment(j.job_id, j.gpu_indices, j.command, j.believed_remaining(now))
            for j in self.active_jobs()
            if j.state is JobState.RUNNING and j.executor_id == executor_id
        ]

    # ------------------------------------------------------------------ commands
    def submit(self, spec: SubmitSpec, now: float) -> Changes:
        """Queue a new job; its first prediction comes with it."""
        if spec.job_id in self._jobs:
            raise InvalidJobError("job_id", f"job {spec.job_id!r} already exists")
        pool_executors = [e for e in self._executors.values() if e.pool == spec.pool]
        if not pool_executors:
            raise UnknownPoolError(spec.pool, self.pools())
        largest = max(e.gpus for e in pool_executors)
        demand, requested = self._clip(spec.demand, self.cap(spec.pool))
        if demand > largest:
            raise InvalidJobError(
                "gpu_demand",
                f"{spec.demand} GPUs exceed the largest executor of pool {spec.pool!r} "
                f"({largest} GPUs); a job runs on one executor",
            )
        klass = self.config(spec.pool).class_of(spec.size)
        tag_start, tag_finish = self._tags(
            spec.pool, klass, spec.size, spec.share, spec.share_weight
        )
        job = LiveJob(
            job_id=spec.job_id,
            seq=self._next_seq,
            pool=spec.pool,
            demand=demand,
            requested_demand=requested,
            size=spec.size,
            state=JobState.QUEUED,
            submitted_at=now,
            class_index=klass,
            tag_start=tag_start,
            tag_finish=tag_finish,
            kind=spec.kind,
            owner=spec.owner,
            size_uncertainty=spec.size_uncertainty,
            size_estimated=spec.size_estimated,
            features=dict(spec.features),
            command=spec.command,
            idempotency_key=spec.idempotency_key,
            share=spec.share,
            share_weight=spec.share_weight if spec.share else 0.0,
        )
        self._next_seq += 1
        self._jobs[job.job_id] = job
        if job.idempotency_key:
            self._by_key[job.idempotency_key] = job.job_id
        changes = Changes()
        changes.record(job, EventKind.SUBMITTED, "submitted")
        predicted = self._extend_forecast(job, now)
        if predicted is None:
            changes.merge(self._settle(spec.pool, now, "job submitted", {job.job_id: "submitted"}))
            return changes
        # the same prediction a full settle gives it, without replaying the queue ahead
        prediction = Prediction(predicted[0], predicted[1], now, "submitted")
        job = dataclasses.replace(job, prediction=prediction, first_prediction=prediction)
        self._jobs[job.job_id] = job
        changes.record(job, EventKind.ESTIMATED, "submitted")
        return changes

    def cancel(self, job_id: str, now: float) -> Changes:
        job = self.job(job_id)
        done = dataclasses.replace(
            job, state=JobState.CANCELLED, completed_at=now, executor_id="", gpu_indices=()
        )
        self._forget(job)
        changes = Changes()
        changes.record(done, EventKind.COMPLETED, "cancelled")
        changes.merge(self._settle(job.pool, now, "job cancelled"))
        return changes

    def register_executor(
        self, executor_id: str, pool: str, gpus: int, kind: str, now: float
    ) -> Changes:
        """Add an executor, or take back one that restarted: the jobs it held are gone with
        its old process, so they go back to the queue."""
        if not executor_id:
            raise InvalidJobError("executor_id", "must not be empty")
        if not pool:
            raise InvalidJobError("pool", "must not be empty")
        if gpus < 1:
            raise InvalidJobError("gpus", f"an executor needs at least 1 GPU or slot, got {gpus}")
        changes = Changes()
        old = self._executors.get(executor_id)
        if old is not None:
            changes.merge(self._requeue_from(executor_id, now, f"executor {executor_id} restarted"))
        executor = Executor(
            executor_id=executor_id,
            pool=pool,
            gpus=gpus,
            kind=kind,
            alive=True,
            registered_at=now if old is None else old.registered_at,
            last_heartbeat=now,
        )
        self._executors[executor_id] = executor
        changes.executors[executor_id] = executor
        forced = {job_id: f"executor {executor_id} restarted" for job_id in changes.jobs}
        changes.merge(self._settle(pool, now, "capacity changed", forced))
        if old is not None and old.pool != pool:
            changes.merge(self._settle(old.pool, now, "capacity changed"))
        return changes

    def heartbeat(
        self, executor_id: str, progress: Sequence[Progress], now: float
    ) -> tuple[Changes, list[Assignment]]:
        """Record an executor's progress; returns the changes and its assignments.

        Reports on jobs no longer assigned to it (cancelled, or requeued while it was out of
        touch) are ignored: such a job already runs elsewhere or not at all, never twice."""
        executor = self.executor(executor_id)
        changes = Changes()
        revived = not executor.alive
        executor = dataclasses.replace(executor, alive=True, last_heartbeat=now)
        self._executors[executor_id] = executor
        changes.executors[executor_id] = executor
        ended = False
        for report in progress:
            job = self._jobs.get(report.job_id)
            if job is None or job.state is not JobState.RUNNING or job.executor_id != executor_id:
                continue
            if report.finished or report.failed:
                assert job.run_started_at is not None
                done = dataclasses.replace(
                    job,
                    state=JobState.COMPLETED if report.finished else JobState.FAILED,
                    completed_at=now,
                    attained=max(report.attained, 0.0),
                    actual_size=job.demand * (now - job.run_started_at),
                    error=report.error if report.failed else "",
                )
                self._forget(job)
                changes.record(
                    done, EventKind.COMPLETED, "failed" if report.failed else "completed"
                )
                ended = True
            elif report.attained != job.attained:
                job = dataclasses.replace(job, attained=max(report.attained, 0.0))
                self._jobs[job.job_id] = job
                changes.record(job)
        if ended or revived or self._overdue(executor.pool, now):
            reason = "job ended" if ended else "executor back" if revived else "job overran"
            changes.merge(self._settle(executor.pool, now, reason))
        return changes, self.assignments(executor_id, now)

    def grant_grace(self, now: float) -> None:
        """Count every live executor's silence from ``now`` (when a restarted scheduler
        becomes reachable again: executors could not heartbeat while it was away)."""
        for executor in list(self._executors.values()):
            if executor.alive and executor.last_heartbeat < now:
                self._executors[executor.executor_id] = dataclasses.replace(
                    executor, last_heartbeat=now
                )

    def expire_executors(self, now: float) -> Changes:
        """Mark executors silent for longer than the timeout as lost; requeue their jobs."""
        changes = Changes()
        for executor in list(self._executors.values()):
            if not executor.alive or now - executor.last_heartbeat <= self.executor_timeout:
                continue
            lost = dataclasses.replace(executor, alive=False)
            self._executors[executor.executor_id] = lost
            changes.executors[executor.executor_id] = lost
            reason = f"executor {executor.executor_id} lost"
            requeued = self._requeue_from(executor.executor_id, now, reason)
            changes.merge(requeued)
            changes.merge(
                self._settle(
                    executor.pool, now, "executor lost", dict.fromkeys(requeued.jobs, reason)
                )
            )
        return changes

    def set_config(
        self, pool: str | None, config: WfqConfig, now: float, *, max_job_gpus: int = 0
    ) -> Changes:
        """Switch the WFQ configuration of ``pool`` (None: every pool, and the default), and
        its per-job GPU cap (``max_job_gpus``, 0 = none).

        Running jobs keep running (on the GPUs they hold); waiting jobs get their demand
        clipped to the cap (or given back, up to what they asked for, when the cap rises or
        goes); every active job is re-classed by its believed size under the new boundaries
        and its prediction revised with reason "configuration changed"."""
        if max_job_gpus < 0:
            raise InvalidJobError("max_job_gpus", f"must be >= 0, got {max_job_gpus}")
        pools = [pool] if pool else list(self.pools())
        if pool is None:
            self.default_config = config
            self.default_cap = max_job_gpus
            self._configs.clear()
            self._caps.clear()
        changes = Changes()
        for name in pools:
            self._configs[name] = config
            self._caps[name] = max_job_gpus
            changes.configs[name] = config
            changes.caps[name] = max_job_gpus
            for key in [k for k in self._last_tag if k[0] == name]:
                del self._last_tag[key]
            # running jobs keep their tags; waiting ones are tagged again, in submission
            # order, under the new classes and weights
            active = self.active_jobs(name)
            for job in active:
                klass = config.class_of(job.size)
                if job.state is JobState.RUNNING:
                    key = (name, self._flow_of(klass, job.share))
                    self._last_tag[key] = max(self._last_tag.get(key, 0.0), job.tag_finish)
                    if klass != job.class_index:
                        job = dataclasses.replace(job, class_index=klass)
                        self._jobs[job.job_id] = job
                        changes.record(job)
            for job in active:
                if job.state is JobState.RUNNING:
                    continue
                klass = config.class_of(job.size)
                tag_start, tag_finish = self._tags(
                    name, klass, job.size, job.share, job.share_weight
                )
                demand, requested = self._clip(job.requested_demand or job.demand, max_job_gpus)
                job = dataclasses.replace(
                    job,
                    class_index=klass,
                    tag_start=tag_start,
                    tag_finish=tag_finish,
                    demand=demand,
                    requested_demand=requested,
                )
                self._jobs[job.job_id] = job
                changes.record(job)
            changes.merge(self._settle(name, now, "configuration changed", force_all=True))
        return changes

    # ------------------------------------------------------------------ internals
    def _forget(self, job: LiveJob) -> None:
        """Drop a job that left the system."""
        del self._jobs[job.job_id]
        if job.idempotency_key and self._by_key.get(job.idempotency_key) == job.job_id:
            del self._by_key[job.idempotency_key]
        self._tails.pop(job.pool, None)

    def _extend_forecast(
        self, job: LiveJob, now: float
    ) -> tuple[float | None, float | None] | None:
        """``job``'s predicted (start, completion) by resuming its pool's forecast, when that
        gives exactly what a full settle would (see :class:`_Tail`); else None."""
        tail = self._tails.get(job.pool)
        if tail is None or not (tail.made_at <= now <= tail.valid_until):
            return None
        key = (job.tag_finish, job.seq)
        if key <= tail.last or job.demand > tail.forecast.planner.largest:
            return None
        tail.last = key
        return tail.forecast.extend(
            WaitingJob(job.job_id, job.seq, job.tag_finish, job.demand, job.size)
        )

    @staticmethod
    def _flow_of(klass: int, share: str) -> int | str:
        """The WFQ flow of a job: its share when it has one, else its size class."""
        return share if share else klass

    def _tags(
        self, pool: str, klass: int, size: float, share: str = "", share_weight: float = 0.0
    ) -> tuple[float, float]:
        """WFQ tags of a job joining its flow of ``pool`` now: class ``klass`` with the
        class's weight, or ``share`` (when given) with ``share_weight``."""
        flow = self._flow_of(klass, share)
        weight = share_weight if share else float(self.config(pool).weights[klass])
        start = max(self._virtual.get(pool, 0.0), self._last_tag.get((pool, flow), 0.0))
        finish = start + size / weight
        self._last_tag[(pool, flow)] = finish
        return start, finish

    def _requeue_from(self, executor_id: str, now: float, reason: str) -> Changes:
        changes = Changes()
        for job in self.active_jobs():
            if job.state is JobState.RUNNING and job.executor_id == executor_id:
                job = dataclasses.replace(
                    job,
                    state=JobState.PREEMPTED,
                    executor_id="",
                    gpu_indices=(),
                    run_started_at=None,
                    attained=0.0,
                    restarts=job.restarts + 1,
                )
                self._jobs[job.job_id] = job
                changes.record(job, EventKind.PREEMPTED, reason)
        return changes

    def _live_executors(self, pool: str) -> dict[str, int]:
        return {
            e.executor_id: e.gpus for e in self._executors.values() if e.pool == pool and e.alive
        }

    def _running(self, jobs: Iterable[LiveJob], now: float) -> list[RunningJob]:
        return [
            RunningJob(
                j.job_id,
                j.executor_id,
                j.demand,
                now + j.believed_remaining(now) / j.demand,
            )
            for j in jobs
            if j.state is JobState.RUNNING
        ]

    def _waiting(self, jobs: Iterable[LiveJob]) -> list[WaitingJob]:
        return [
            WaitingJob(j.job_id, j.seq, j.tag_finish, j.demand, j.size)
            for j in jobs
            if j.state is not JobState.RUNNING
        ]

    def _overdue(self, pool: str, now: float) -> bool:
        for job in self._jobs.values():
            if job.pool == pool and job.state is JobState.RUNNING and job.prediction is not None:
                completion = job.prediction.completion
                if completion is not None and now > completion + self.tolerance.absolute:
                    return True
        return False

    def _start_jobs(self, pool: str, now: float, changes: Changes) -> None:
        jobs = self.active_jobs(pool)
        executors = self._live_executors(pool)
        used: dict[str, set[int]] = {name: set() for name in executors}
        for job in jobs:
            if job.state is JobState.RUNNING and job.executor_id in used:
                used[job.executor_id].update(job.gpu_indices)
        planner = StartPlanner(
            executors,
            self._waiting(jobs),
            self._running(jobs, now),
        )
        while (started := planner.pop_next()) is not None:
            waiting, executor_id = started
            taken = used[executor_id]
            indices = tuple(
                [i for i in range(executors[executor_id]) if i not in taken][: waiting.demand]
            )
            taken.update(indices)
            job = self._jobs[waiting.job_id]
            job = dataclasses.replace(
                job,
                state=JobState.RUNNING,
                executor_id=executor_id,
                gpu_indices=indices,
                started_at=job.started_at if job.started_at is not None else now,
                run_started_at=now,
                attained=0.0,
            )
            self._jobs[job.job_id] = job
            self._virtual[pool] = max(self._virtual.get(pool, 0.0), job.tag_start)
            changes.record(job, EventKind.STARTED, f"started on {executor_id}")

    def _settle(
        self,
        pool: str,
        now: float,
        reason: str,
        forced: Mapping[str, str] | None = None,
        *,
        force_all: bool = False,
    ) -> Changes:
        """Start what can start, then revise the predictions that moved."""
        self._tails.pop(pool, None)
        changes = Changes()
        self._start_jobs(pool, now, changes)
        jobs = self.active_jobs(pool)
        waiting = self._waiting(jobs)
        replay = Forecast(now, self._live_executors(pool), self._running(jobs, now), waiting)
        replay.run()
        predicted = replay.result
        forced = forced or {}
        # until when this forecast stays exact (see _Tail)
        valid_until = replay.first_finish
        for job in jobs:
            start, completion = predicted.get(job.job_id, (None, None))
            if job.state is JobState.RUNNING:
                start = job.run_started_at
            why = forced.get(job.job_id, reason)
            if not (force_all or job.job_id in forced or self._moved(job, start, completion, now)):
                if job.prediction is not None:
                    stale = self._stale_at(job.prediction, start, completion)
                    valid_until = min(valid_until, stale)
                continue
            prediction = Prediction(start, completion, now, why)
            job = dataclasses.replace(
                job,
                prediction=prediction,
                first_prediction=job.first_prediction or prediction,
            )
            self._jobs[job.job_id] = job
            changes.record(job, EventKind.ESTIMATED, why)
        if waiting and replay.complete and self.tolerance.absolute > 0 and valid_until >= now:
            last = max((w.tag, w.seq) for w in waiting)
            self._tails[pool] = _Tail(replay, now, valid_until, last)
        return changes

    def _stale_at(self, old: Prediction, start: float | None, completion: float | None) -> float:
        """When a prediction kept despite a drift above the absolute tolerance would count as
        moved (the allowed drift, relative to the time left, shrinks as time passes)."""
        relative = self.tolerance.relative
        if relative <= 0:
            return math.inf
        at = math.inf
        for before, after in ((old.start, start), (old.completion, completion)):
            if before is None or after is None:
                continue
            drift = abs(after - before)
            if drift > self.tolerance.absolute:
                at = min(at, before - drift / relative)
        return at

    def _moved(
        self, job: LiveJob, start: float | None, completion: float | None, now: float
    ) -> bool:
        old = job.prediction
        if old is None:
            return True
        for before, after in ((old.start, start), (old.completion, completion)):
            if (before is None) != (after is None):
                return True
            if before is None or after is None:
                continue
            allowed = max(self.tolerance.absolute, self.tolerance.relative * max(before - now, 0.0))
            if abs(after - before) > allowed:
                return True
        return False
