"""Pure PCS scheduling core: jobs, policies, the event-driven cluster and the predictor.

No I/O, no asyncio, no simulator: the simpy driver, the predictor and the live scheduler
service all drive the same :class:`Cluster`.
"""

from .cluster import Cluster, Completion, SpeedupCurve, amdahl, round_to_whole_gpus
from .model import (
    Allocation,
    ClusterConfig,
    ConfigError,
    Job,
    SchedulerError,
    UnknownJobError,
    WfqConfig,
)
from .policies import (
    POLICY_NAMES,
    ActiveJobs,
    Policy,
    WfqPcs,
    make_policy,
    max_min_fair,
    weighted_water_fill,
)
from .predictor import CompletionPredictor, predict_completion_time, replay_completion_time

__all__ = [
    "POLICY_NAMES",
    "ActiveJobs",
    "Allocation",
    "Cluster",
    "ClusterConfig",
    "Completion",
    "CompletionPredictor",
    "ConfigError",
    "Job",
    "Policy",
    "SchedulerError",
    "SpeedupCurve",
    "UnknownJobError",
    "WfqConfig",
    "WfqPcs",
    "amdahl",
    "make_policy",
    "max_min_fair",
    "predict_completion_time",
    "replay_completion_time",
    "round_to_whole_gpus",
    "weighted_water_fill",
]
