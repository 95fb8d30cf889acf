"""Searches, evaluations and fronts in the database (adapter: rows <-> plain records)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from llmproxy.optimizer.pcs.space import Candidate
from llmproxy.optimizer.pcs.workload import WorkloadSpec
from llmproxy.platform.db.models import Search, SearchEvaluation, SearchPoint
from llmproxy.platform.errors import NotFoundError

__all__ = ["Evaluation", "SearchRecord", "SearchRepository"]

Clock = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class SearchRecord:
    """A search as stored."""

    search_id: str
    state: str
    algorithm: str
    space: str
    objectives: tuple[str, ...]
    workload: WorkloadSpec
    population: int
    generations: int
    seed: int
    generation: int
    evaluated: int
    error: str | None
    created_at: datetime
    finished_at: datetime | None


@dataclass(frozen=True, slots=True)
class Evaluation:
    """A scored configuration."""

    config_hash: str
    candidate: Candidate
    metrics: dict[str, float]
    evaluated_by: str
    wall_seconds: float
    generation: int = 0
    on_front: bool = False
    #: the presets this point is ("pred", "bal", "jct"; one point may be several)
    presets: tuple[str, ...] = ()
    #: why the evaluation failed (its metrics are NaN then); None: it succeeded
    error: str | None = None

    @property
    def failed(self) -> bool:
        return self.error is not None or self.metrics.get("failed") == 1.0


def _record(row: Search) -> SearchRecord:
    return SearchRecord(
        search_id=row.id,
        state=row.state,
        algorithm=row.algorithm,
        space=row.space,
        objectives=tuple(json.loads(row.objectives)),
        workload=WorkloadSpec.from_mapping(json.loads(row.workload)),
        population=row.population,
        generations=row.generations,
        seed=row.seed,
        generation=row.generation,
        evaluated=row.evaluated,
        error=row.error,
        created_at=row.created_at,
        finished_at=row.finished_at,
    )


#: key of a failed evaluation's error text inside the stored metrics JSON
_ERROR_KEY = "error"


def _metrics(text: str) -> dict[str, float]:
    return {
        k: float("nan") if v is None else float(v)
        for k, v in json.loads(text).items()
        if k != _ERROR_KEY
    }


def _error(text: str) -> str | None:
    value = json.loads(text).get(_ERROR_KEY)
    return None if value is None else str(value)


def _metrics_text(metrics: Mapping[str, float], error: str | None = None) -> str:
    # JSON has no NaN: store null
    data: dict[str, object] = {k: (None if v != v else v) for k, v in metrics.items()}
    if error is not None:
        data[_ERROR_KEY] = error
    return json.dumps(data, sort_keys=True)


class SearchRepository:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], clock: Clock = _utc_now):
        self._sessions = sessions
        self._clock = clock

    @property
    def sessions(self) -> async_sessionmaker[AsyncSession]:
        return self._sessions

    def _insert(self, session: AsyncSession) -> Any:
        return (
            postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
        )

    async def create(
        self,
        *,
        search_id: str,
        algorithm: str,
        space: str,
        objectives: Sequence[str],
        workload: WorkloadSpec,
        population: int,
        generations: int,
        seed: int,
    ) -> SearchRecord:
        row = Search(
            id=search_id,
            state="running",
            algorithm=algorithm,
            space=space,
            objectives=json.dumps(list(objectives)),
            workload=json.dumps(workload.to_mapping(), sort_keys=True),
            workload_key=workload.key,
            population=population,
            generations=generations,
            seed=seed,
            generation=0,
            evaluated=0,
            error=None,
            created_at=self._clock(),
            finished_at=None,
        )
        async with self._sessions.begin() as session:
            session.add(row)
        return _record(row)

    async def get(self, search_id: str) -> SearchRecord:
        async with self._sessions() as session:
            row = await session.get(Search, search_id)
        if row is None:
            raise NotFoundError(f"no search {search_id!r}")
        return _record(row)

    async def recent(self, limit: int = 20) -> list[SearchRecord]:
        async with self._sessions() as session:
            rows: Sequence[Search] = (
                await session.scalars(
                    select(Search).order_by(Search.created_at.desc()).limit(limit)
                )
            ).all()
        return [_record(r) for r in rows]

    async def latest(self) -> SearchRecord:
        found = await self.recent(1)
        if not found:
            raise NotFoundError("no search has been run yet")
        return found[0]

    async def set_progress(self, search_id: str, generation: int) -> int:
        """Record a finished generation; returns the distinct configurations evaluated."""
        async with self._sessions.begin() as session:
            count = await session.scalar(
                select(func.count())
                .select_from(SearchPoint)
                .where(SearchPoint.search_id == search_id)
            )
            await session.execute(
                update(Search)
                .where(Search.id == search_id)
                .values(generation=generation, evaluated=int(count or 0))
            )
        return int(count or 0)

    async def finish(self, search_id: str, *, error: str | None = None) -> None:
        async with self._sessions.begin() as session:
            await session.execute(
                update(Search)
                .where(Search.id == search_id)
                .values(
                    state="failed" if error else "completed",
                    error=error,
                    finished_at=self._clock(),
                )
            )

    async def restart(self, search_id: str) -> None:
        async with self._sessions.begin() as session:
            await session.execute(
                update(Search)
                .where(Search.id == search_id)
                .values(state="running", error=None, finished_at=None)
            )

    # -- evaluations (shared by workload) ------------------------------------------------

    async def evaluations(
        self, workload_key: str, hashes: Iterable[str]
    ) -> dict[str, dict[str, float]]:
        wanted = sorted(set(hashes))
        if not wanted:
            return {}
        found: dict[str, dict[str, float]] = {}
        async with self._sessions() as session:
            for start in range(0, len(wanted), 500):
                rows = await session.execute(
                    select(SearchEvaluation.config_hash, SearchEvaluation.metrics).where(
                        SearchEvaluation.workload_key == workload_key,
                        SearchEvaluation.config_hash.in_(wanted[start : start + 500]),
                    )
                )
                found.update({str(h): _metrics(str(m)) for h, m in rows.all()})
        return found

    async def add_evaluation(
        self,
        workload_key: str,
        candidate: Candidate,
        metrics: Mapping[str, float],
        *,
        evaluated_by: str,
        config_hash: str | None = None,
        error: str | None = None,
    ) -> bool:
        """Store a score; False when this configuration was already stored (kept as is).

        ``error``: the evaluation failed for good (``metrics`` are then NaN); it is stored
        like a score, so no search on this workload runs it again."""
        async with self._sessions.begin() as session:
            insert = self._insert(session)
            result = await session.execute(
                insert(SearchEvaluation)
                .values(
                    workload_key=workload_key,
                    config_hash=config_hash or candidate.config_hash,
                    config=json.dumps(candidate.to_mapping(), sort_keys=True),
                    metrics=_metrics_text(metrics, error),
                    evaluated_by=evaluated_by,
                    wall_seconds=float(metrics.get("wall_seconds", 0.0)),
                    created_at=self._clock(),
                )
                .on_conflict_do_nothing(index_elements=["workload_key", "config_hash"])
            )
        return bool(getattr(result, "rowcount", 0))

    async def evaluators(self, workload_key: str) -> dict[str, int]:
        """How many evaluations each replica/process ran for a workload."""
        async with self._sessions() as session:
            rows = await session.execute(
                select(SearchEvaluation.evaluated_by, func.count())
                .where(SearchEvaluation.workload_key == workload_key)
                .group_by(SearchEvaluation.evaluated_by)
            )
            return {str(name): int(cast(int, count)) for name, count in rows.all()}

    # -- points of a search ---------------------------------------------------------------

    async def add_points(self, search_id: str, generation: int, hashes: Iterable[str]) -> None:
        unique = sorted(set(hashes))
        if not unique:
            return
        async with self._sessions.begin() as session:
            insert = self._insert(session)
            await session.execute(
                insert(SearchPoint)
                .values(
                    [
                        {
                            "search_id": search_id,
                            "config_hash": h,
                            "generation": generation,
                            "on_front": 0,
                            "preset": None,
                        }
                        for h in unique
                    ]
                )
                .on_conflict_do_nothing(index_elements=["search_id", "config_hash"])
            )

    async def set_front(
        self, search_id: str, front: Iterable[str], presets: Mapping[str, str]
    ) -> None:
        members = set(front)
        async with self._sessions.begin() as session:
            await session.execute(
                update(SearchPoint)
                .where(SearchPoint.search_id == search_id)
                .values(on_front=0, preset=None)
            )
            if members:
                await session.execute(
                    update(SearchPoint)
                    .where(SearchPoint.search_id == search_id, SearchPoint.config_hash.in_(members))
                    .values(on_front=1)
                )
            labels: dict[str, list[str]] = {}
            for name, config_hash in presets.items():
                labels.setdefault(config_hash, []).append(name)
            for config_hash, names in labels.items():
                await session.execute(
                    update(SearchPoint)
                    .where(
                        SearchPoint.search_id == search_id, SearchPoint.config_hash == config_hash
                    )
                    .values(preset=",".join(names))
                )

    async def points(self, search_id: str, *, front_only: bool = False) -> list[Evaluation]:
        """The search's evaluated configurations with their scores (generation order)."""
        record = await self.get(search_id)
        query = (
            select(SearchPoint, SearchEvaluation)
            .join(
                SearchEvaluation,
                (SearchEvaluation.config_hash == SearchPoint.config_hash)
                & (SearchEvaluation.workload_key == record.workload.key),
            )
            .where(SearchPoint.search_id == search_id)
            .order_by(SearchPoint.generation, SearchPoint.config_hash)
        )
        if front_only:
            query = query.where(SearchPoint.on_front == 1)
        async with self._sessions() as session:
            rows = cast(
                "list[tuple[SearchPoint, SearchEvaluation]]",
                (await session.execute(query)).all(),
            )
        return [
            Evaluation(
                config_hash=point.config_hash,
                candidate=Candidate.from_mapping(json.loads(evaluation.config)),
                metrics=_metrics(evaluation.metrics),
                evaluated_by=evaluation.evaluated_by,
                wall_seconds=evaluation.wall_seconds,
                generation=point.generation,
                on_front=bool(point.on_front),
                presets=tuple(point.preset.split(",")) if point.preset else (),
                error=_error(evaluation.metrics),
            )
            for point, evaluation in rows
        ]
