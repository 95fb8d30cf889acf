"""Persistence of the live scheduler: rows of ``scheduler_*`` tables <-> core records.

Every command's :class:`~llmproxy.scheduler.live.Changes` is written in one transaction
(jobs upserted in one statement, a prediction row per revision, executors, configurations),
so a restarted scheduler reads back exactly the queue it had.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from llmproxy.platform.db import claim_event
from llmproxy.platform.db.models import (
    SchedulerExecutor,
    SchedulerJob,
    SchedulerPoolConfig,
    SchedulerPrediction,
)
from llmproxy.scheduler.core import WfqConfig
from llmproxy.scheduler.live import (
    ACTIVE_STATES,
    Changes,
    EventKind,
    Executor,
    JobKind,
    JobState,
    LiveJob,
    Prediction,
)
from llmproxy.scheduler.timebase import TimeBase

__all__ = ["SchedulerRepository", "StoredState"]

_JOB_COLUMNS = [c.name for c in SchedulerJob.__table__.columns]
_EXECUTOR_COLUMNS = [c.name for c in SchedulerExecutor.__table__.columns]
#: rows per upsert statement
_UPSERT_CHUNK = 500
#: a job's fair-sharing flow and weight ride in its features' JSON under these keys (no
#: schema change); they are taken out again when the row is read
_SHARE_KEY = "__share"
_SHARE_WEIGHT_KEY = "__share_weight"
#: likewise the demand a job asked for when the pool's GPU cap clipped it, and in a pool's
#: configuration JSON its per-job GPU cap
_REQUESTED_DEMAND_KEY = "__requested_demand"
_CAP_KEY = "max_job_gpus"


#: upsert statements by (dialect, table, key, columns); see SchedulerRepository._upsert
_UPSERTS: dict[tuple[str, str, str, tuple[str, ...]], Any] = {}
_PREDICTION_INSERT = insert(SchedulerPrediction.__table__)


def _features_with_share(job: LiveJob) -> dict[str, Any]:
    features: dict[str, Any] = dict(job.features)
    if job.share:
        features[_SHARE_KEY] = job.share
        features[_SHARE_WEIGHT_KEY] = job.share_weight
    if job.requested_demand:
        features[_REQUESTED_DEMAND_KEY] = job.requested_demand
    return features


class StoredState:
    """What :meth:`SchedulerRepository.load` reads back."""

    def __init__(
        self,
        jobs: list[LiveJob],
        executors: list[Executor],
        configs: dict[str, WfqConfig],
        next_seq: int,
        caps: dict[str, int] | None = None,
    ) -> None:
        self.jobs = jobs
        self.executors = executors
        self.configs = configs
        self.next_seq = next_seq
        #: per-job GPU cap of each pool with a stored configuration (0 = none)
        self.caps = caps or {}


class SchedulerRepository:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], timebase: TimeBase) -> None:
        self._sessions = sessions
        self._time = timebase

    # ------------------------------------------------------------------ reads
    async def load(self) -> StoredState:
        active = [s.value for s in ACTIVE_STATES]
        async with self._sessions() as session:
            jobs: Sequence[SchedulerJob] = (
                await session.scalars(select(SchedulerJob).where(SchedulerJob.state.in_(active)))
            ).all()
            executors: Sequence[SchedulerExecutor] = (
                await session.scalars(select(SchedulerExecutor))
            ).all()
            configs: Sequence[SchedulerPoolConfig] = (
                await session.scalars(select(SchedulerPoolConfig))
            ).all()
            top = await session.scalar(select(func.max(SchedulerJob.seq)))
        return StoredState(
            jobs=[self._job(row) for row in jobs],
            executors=[self._executor(row) for row in executors],
            configs={row.pool: WfqConfig.from_mapping(json.loads(row.config)) for row in configs},
            next_seq=(top or 0) + 1,
            caps={row.pool: int(json.loads(row.config).get(_CAP_KEY) or 0) for row in configs},
        )

    async def get(self, job_id: str) -> LiveJob | None:
        async with self._sessions() as session:
            row = await session.get(SchedulerJob, job_id)
        return None if row is None else self._job(row)

    async def find_by_idempotency_key(self, key: str) -> LiveJob | None:
        async with self._sessions() as session:
            row = await session.scalar(
                select(SchedulerJob).where(SchedulerJob.idempotency_key == key)
            )
        return None if row is None else self._job(row)

    async def list_jobs(
        self,
        *,
        pool: str = "",
        states: Sequence[JobState] = (),
        owner: str = "",
        limit: int = 100,
    ) -> list[LiveJob]:
        query = select(SchedulerJob).order_by(SchedulerJob.seq.desc()).limit(limit)
        if pool:
            query = query.where(SchedulerJob.pool == pool)
        if states:
            query = query.where(SchedulerJob.state.in_([s.value for s in states]))
        if owner:
            query = query.where(SchedulerJob.owner == owner)
        async with self._sessions() as session:
            rows: Sequence[SchedulerJob] = (await session.scalars(query)).all()
        return [self._job(row) for row in rows]

    async def completed(self, limit: int = 5000) -> list[LiveJob]:
        """The latest completed jobs (the size model's training history)."""
        return await self.list_jobs(states=[JobState.COMPLETED], limit=limit)

    # ------------------------------------------------------------------ writes
    async def save(
        self,
        changes: Changes,
        *,
        policy_ids: Mapping[str, str] | None = None,
        claim: tuple[str, str] | None = None,
    ) -> bool:
        """Write ``changes`` in one transaction. With ``claim=(consumer, event_id)`` the event
        is claimed in the same transaction; returns False (and writes nothing) when it was
        handled before."""
        now = self._time.to_wall(self._time.now())
        async with self._sessions() as session, session.begin():
            if claim is not None and not await claim_event(
                session, consumer=claim[0], event_id=claim[1], now=now
            ):
                return False
            if changes.jobs:
                await self._upsert(
                    session, SchedulerJob, [self._job_row(j) for j in changes.jobs.values()], "id"
                )
            revisions = [
                self._prediction_row(t.job)
                for t in changes.transitions
                if t.kind is EventKind.ESTIMATED and t.job.prediction is not None
            ]
            if revisions:
                connection = await session.connection()
                await connection.execute(_PREDICTION_INSERT, revisions)
            if changes.executors:
                await self._upsert(
                    session,
                    SchedulerExecutor,
                    [self._executor_row(e) for e in changes.executors.values()],
                    "id",
                )
            for pool, config in changes.configs.items():
                await self._upsert(
                    session,
                    SchedulerPoolConfig,
                    [
                        {
                            "pool": pool,
                            "config": json.dumps(
                                {**config.to_mapping(), _CAP_KEY: changes.caps.get(pool, 0)}
                            ),
                            "policy_id": (policy_ids or {}).get(pool, ""),
                            "updated_at": now,
                        }
                    ],
                    "pool",
                )
        return True

    async def _upsert(
        self, session: AsyncSession, model: Any, rows: list[dict[str, Any]], key: str
    ) -> None:
        """Insert or update ``rows`` by ``key``: one statement per table, built once and
        executed with the rows as parameters (its compiled form is cached, where building it
        with the rows inlined compiled it afresh on every write)."""
        dialect = session.get_bind().dialect.name
        columns = tuple(rows[0])
        cache_key = (dialect, model.__tablename__, key, columns)
        statement = _UPSERTS.get(cache_key)
        if statement is None:
            insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
            statement = insert(model.__table__)
            statement = statement.on_conflict_do_update(
                index_elements=[key],
                set_={c: statement.excluded[c] for c in columns if c != key},
            )
            _UPSERTS[cache_key] = statement
        connection = await session.connection()
        for first in range(0, len(rows), _UPSERT_CHUNK):
            await connection.execute(statement, rows[first : first + _UPSERT_CHUNK])

    # ------------------------------------------------------------------ mapping
    def _wall(self, core: float | None) -> datetime | None:
        return None if core is None else self._time.to_wall(core)

    def _core(self, wall: datetime | None) -> float | None:
        return None if wall is None else self._time.to_core(wall)

    def _job_row(self, job: LiveJob) -> dict[str, Any]:
        prediction = job.prediction
        first = job.first_prediction
        row = {
            "id": job.job_id,
            "seq": job.seq,
            "pool": job.pool,
            "kind": job.kind.value,
            "state": job.state.value,
            "owner": job.owner,
            "demand": job.demand,
            "size": job.size,
            "size_uncertainty": job.size_uncertainty,
            "size_estimated": job.size_estimated,
            "features": json.dumps(_features_with_share(job), sort_keys=True),
            "command": job.command,
            "idempotency_key": job.idempotency_key or None,
            "class_index": job.class_index,
            "tag_start": job.tag_start,
            "tag_finish": job.tag_finish,
            "submitted_at": self._wall(job.submitted_at),
            "started_at": self._wall(job.started_at),
            "run_started_at": self._wall(job.run_started_at),
            "completed_at": self._wall(job.completed_at),
            "attained": job.attained,
            "actual_size": job.actual_size,
            "executor_id": job.executor_id,
            "gpu_indices": ",".join(str(i) for i in job.gpu_indices),
            "restarts": job.restarts,
            "error": job.error,
            "predicted_start": self._wall(prediction.start) if prediction else None,
            "predicted_completion": self._wall(prediction.completion) if prediction else None,
            "predicted_at": self._wall(prediction.made_at) if prediction else None,
            "prediction_reason": prediction.reason if prediction else None,
            "first_predicted_start": self._wall(first.start) if first else None,
            "first_predicted_completion": self._wall(first.completion) if first else None,
            "first_predicted_at": self._wall(first.made_at) if first else None,
        }
        assert set(row) == set(_JOB_COLUMNS)
        return row

    def _job(self, row: SchedulerJob) -> LiveJob:
        prediction = first = None
        if row.predicted_at is not None:
            prediction = Prediction(
                self._core(row.predicted_start),
                self._core(row.predicted_completion),
                self._time.to_core(row.predicted_at),
                row.prediction_reason or "",
            )
        if row.first_predicted_at is not None:
            first = Prediction(
                self._core(row.first_predicted_start),
                self._core(row.first_predicted_completion),
                self._time.to_core(row.first_predicted_at),
                "submitted",
            )
        features = json.loads(row.features)
        share = features.pop(_SHARE_KEY, "")
        share_weight = float(features.pop(_SHARE_WEIGHT_KEY, 0.0))
        requested_demand = int(features.pop(_REQUESTED_DEMAND_KEY, 0))
        return LiveJob(
            job_id=row.id,
            seq=row.seq,
            pool=row.pool,
            demand=row.demand,
            size=row.size,
            state=JobState(row.state),
            submitted_at=self._time.to_core(row.submitted_at),
            class_index=row.class_index,
            tag_start=row.tag_start,
            tag_finish=row.tag_finish,
            kind=JobKind(row.kind),
            owner=row.owner,
            size_uncertainty=row.size_uncertainty,
            size_estimated=row.size_estimated,
            features=features,
            share=share,
            share_weight=share_weight,
            requested_demand=requested_demand,
            command=row.command,
            idempotency_key=row.idempotency_key or "",
            started_at=self._core(row.started_at),
            run_started_at=self._core(row.run_started_at),
            completed_at=self._core(row.completed_at),
            attained=row.attained,
            actual_size=row.actual_size,
            executor_id=row.executor_id,
            gpu_indices=tuple(int(i) for i in row.gpu_indices.split(",") if i),
            restarts=row.restarts,
            error=row.error,
            prediction=prediction,
            first_prediction=first,
        )

    def _prediction_row(self, job: LiveJob) -> dict[str, Any]:
        prediction = job.prediction
        assert prediction is not None
        return {
            "job_id": job.job_id,
            "made_at": self._time.to_wall(prediction.made_at),
            "predicted_start": self._wall(prediction.start),
            "predicted_completion": self._wall(prediction.completion),
            "reason": prediction.reason,
        }

    def _executor_row(self, executor: Executor) -> dict[str, Any]:
        row = {
            "id": executor.executor_id,
            "pool": executor.pool,
            "gpus": executor.gpus,
            "kind": executor.kind,
            "alive": executor.alive,
            "registered_at": self._time.to_wall(executor.registered_at),
            "last_heartbeat": self._time.to_wall(executor.last_heartbeat),
        }
        assert set(row) == set(_EXECUTOR_COLUMNS)
        return row

    def _executor(self, row: SchedulerExecutor) -> Executor:
        return Executor(
            executor_id=row.id,
            pool=row.pool,
            gpus=row.gpus,
            kind=row.kind,
            alive=row.alive,
            registered_at=self._time.to_core(row.registered_at),
            last_heartbeat=self._time.to_core(row.last_heartbeat),
        )
