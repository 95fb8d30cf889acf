"""Completion-time predictions: replay the current state forward, with no future arrivals,
under the same policy, until the job of interest completes."""

from __future__ import annotations

import math

from .cluster import Cluster
from .fair_replay import max_min_completion_time
from .fifo_replay import FifoClassesForecast, fifo_classes_completion_time
from .model import SchedulerError

__all__ = ["CompletionPredictor", "predict_completion_time", "replay_completion_time"]


def predict_completion_time(cluster: Cluster, job_id: int) -> float:
    """Predicted completion time (absolute, seconds) of active job ``job_id``.

    The replay uses believed sizes (as the scheduler knows them) and leaves ``cluster``
    untouched. With exact sizes and no later arrival the prediction is the job's actual
    completion time. Policies that serve weighted classes FIFO inside each class
    (``fifo_class_weights``: FIFO, WFQ-PCS) are replayed by the queue-head algorithm of
    :mod:`.fifo_replay`, max-min fair sharing (``max_min_shares``) by the fair-level replay
    of :mod:`.fair_replay`, both in the fluid model with linear scaling; everything else
    (and those policies with whole GPUs or a speed-up curve) by
    :func:`replay_completion_time`.
    """
    weights = getattr(cluster.policy, "fifo_class_weights", None)
    fluid_linear = cluster.speedup is None and not cluster.config.whole_gpus
    if fluid_linear and getattr(cluster.policy, "max_min_shares", False):
        ids, remaining, demand, _ = cluster.believed_columns()
        return max_min_completion_time(
            now=cluster.now,
            ids=ids,
            remaining=remaining,
            demand=demand,
            capacity=cluster.config.gpus,
            job_id=job_id,
        )
    if weights is None or not fluid_linear:
        return replay_completion_time(cluster, job_id)
    ids, remaining, demand, job_class = cluster.believed_columns()
    return fifo_classes_completion_time(
        now=cluster.now,
        ids=ids,
        remaining=remaining,
        demand=demand,
        job_class=job_class,
        weights=weights,
        capacity=cluster.config.gpus,
        job_id=job_id,
    )


def replay_completion_time(cluster: Cluster, job_id: int) -> float:
    """The straightforward replay, for any policy: a :meth:`Cluster.believed_copy` advanced
    event by event, the policy re-deciding every allocation at each. It stops as soon as the
    job holds its whole demand under a policy that never takes it back
    (``keeps_full_demand``): its end is then known."""
    replay = cluster.believed_copy()
    if not replay.is_active(job_id):
        raise SchedulerError(f"job {job_id} is not active; nothing to predict")
    while True:
        settled = replay.settled_finish_time(job_id)
        if settled is not None:
            return settled
        t = replay.next_event_time()
        if math.isinf(t):
            raise SchedulerError(f"job {job_id} never gets a GPU in the replay")
        for done in replay.advance(t):
            if done.job_id == job_id:
                return done.time


class CompletionPredictor:
    """Predictions for one cluster that reuse one forecast from call to call.

    For FIFO-inside-classes policies with exact sizes (the simulator's usual case) the
    forecast of the previous call is still the cluster's future after an arrival, unless the
    newcomer's class had room in the stretch the forecast already ran; then new jobs are
    admitted to it and a prediction runs it only from where it stopped, so a whole
    simulation's predictions cost about one replay instead of one per job. Anything else
    (estimated sizes, other policies, a job that finished unseen) is predicted afresh by
    :func:`predict_completion_time`, with the same result.
    """

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self._forecast: FifoClassesForecast | None = None
        self._synced = 0

    def predict(self, job_id: int) -> float:
        """Predicted completion time (absolute, seconds) of active job ``job_id``."""
        cluster = self.cluster
        weights = getattr(cluster.policy, "fifo_class_weights", None)
        if (
            weights is None
            or not cluster.exact_sizes
            or cluster.speedup is not None
            or cluster.config.whole_gpus
        ):
            self._forecast = None
            return predict_completion_time(cluster, job_id)
        if not cluster.is_active(job_id):
            raise SchedulerError(f"job {job_id} is not active; nothing to predict")
        if self._forecast is None or not self._admit_new(self._forecast):
            ids, remaining, demand, job_class = cluster.believed_columns()
            self._forecast = FifoClassesForecast.build(
                now=cluster.now,
                ids=ids,
                remaining=remaining,
                demand=demand,
                job_class=job_class,
                weights=weights,
                capacity=cluster.config.gpus,
            )
        self._synced = cluster.submitted
        return self._forecast.completion_time(job_id)

    def _admit_new(self, forecast: FifoClassesForecast) -> bool:
        """Admit the jobs submitted since the last call; False when the forecast cannot take
        them (it must then be rebuilt from the cluster)."""
        count = self.cluster.submitted - self._synced
        if count == 0:
            return True
        ids, arrival, size, demand, job_class = self.cluster.latest_submissions(count)
        if len(ids) < count or any(forecast.knows(i) for i in ids.tolist()):
            return False  # one of them already finished: the forecast never saw it
        return all(
            forecast.admit(i, a, s, d, k)
            for i, a, s, d, k in zip(
                ids.tolist(),
                arrival.tolist(),
                size.tolist(),
                demand.tolist(),
                job_class.tolist(),
                strict=True,
            )
        )
