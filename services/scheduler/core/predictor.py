"""Completion-time predictions: replay the current state forward, with no future arrivals,
under the same policy, until the job of interest completes."""

from __future__ import annotations

import math

from .cluster import Cluster
from .model import SchedulerError

__all__ = ["predict_completion_time"]


def predict_completion_time(cluster: Cluster, job_id: int) -> float:
    """Predicted completion time (absolute, seconds) of active job ``job_id``.

    The replay runs on :meth:`Cluster.believed_copy` (believed sizes, as the scheduler knows
    them) and leaves ``cluster`` untouched. It stops as soon as the job holds its whole demand
    under a policy that never takes it back (``keeps_full_demand``): its end is then known.
    With exact sizes and no later arrival the prediction is the job's actual completion time.
    """
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
