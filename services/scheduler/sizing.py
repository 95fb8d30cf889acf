"""Sizes for jobs submitted without one: the profiler's job-size regressor
(:mod:`llmproxy.profiler.job_size`), trained here from the scheduler's own completed jobs.

The profiler service does not serve the model yet, so the scheduler fits it itself at start
and again after every ``retrain_every`` completions (in a worker thread).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import structlog

from llmproxy.platform.errors import InvalidArgumentError
from llmproxy.profiler.job_size import (
    JobSizeModel,
    JobSizeSample,
    NotEnoughHistoryError,
    SizeEstimate,
)
from llmproxy.scheduler.live import LiveJob

__all__ = ["SizeEstimator"]

log = structlog.get_logger(__name__)


def _sample(features: Mapping[str, str], demand: int, size: float = 0.0) -> JobSizeSample:
    return JobSizeSample(
        model_name=features.get("model_name", ""),
        user=features.get("user", ""),
        gpu_demand=demand,
        size=size,
    )


class SizeEstimator:
    def __init__(self, *, retrain_every: int = 20) -> None:
        self.retrain_every = retrain_every
        self._model: JobSizeModel | None = None
        self._since_fit = 0
        self._fitting: asyncio.Task[None] | None = None

    @property
    def info(self) -> tuple[int, float]:
        """(jobs learnt from, cross-validated mean absolute % error); (0, 0) without a model."""
        if self._model is None:
            return 0, 0.0
        return self._model.trained_on, self._model.mean_abs_pct_error

    def estimate(self, features: Mapping[str, str], demand: int) -> SizeEstimate:
        if self._model is None:
            raise InvalidArgumentError(
                "size_seconds is 0 and no size estimate can be made yet: the job-size model "
                "needs more completed jobs; give size_seconds",
                field="size_seconds",
            )
        return self._model.estimate(_sample(features, demand))

    async def fit(self, history: list[LiveJob]) -> None:
        samples = [
            _sample(job.features, job.demand, job.actual_size or 0.0)
            for job in history
            if job.actual_size
        ]
        try:
            model = await asyncio.to_thread(JobSizeModel.fit, samples)
        except NotEnoughHistoryError as exc:
            log.info("job-size model not fitted", reason=str(exc))
            return
        self._model = model
        self._since_fit = 0
        log.info(
            "job-size model fitted",
            trained_on=model.trained_on,
            mean_abs_pct_error=round(model.mean_abs_pct_error, 1),
        )

    def completed(self, count: int) -> bool:
        """Count completions; True when it is time to fit again."""
        self._since_fit += count
        return self._since_fit >= self.retrain_every
