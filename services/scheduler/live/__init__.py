"""The live scheduler's pure core: job and executor records, the start rule and its
forecast, and the state machine the service drives (no I/O)."""

from .model import (
    ACTIVE_STATES,
    TERMINAL_STATES,
    WAITING_STATES,
    Assignment,
    EventKind,
    Executor,
    InvalidJobError,
    JobKind,
    JobNotFoundError,
    JobState,
    LiveError,
    LiveJob,
    Prediction,
    Progress,
    SubmitSpec,
    Transition,
    UnknownExecutorError,
    UnknownPoolError,
)
from .ordering import RunningJob, StartPlanner, WaitingJob, forecast
from .queue import Changes, LiveScheduler, PoolState, Tolerance

__all__ = [
    "ACTIVE_STATES",
    "TERMINAL_STATES",
    "WAITING_STATES",
    "Assignment",
    "Changes",
    "EventKind",
    "Executor",
    "InvalidJobError",
    "JobKind",
    "JobNotFoundError",
    "JobState",
    "LiveError",
    "LiveJob",
    "LiveScheduler",
    "PoolState",
    "Prediction",
    "Progress",
    "RunningJob",
    "StartPlanner",
    "SubmitSpec",
    "Tolerance",
    "Transition",
    "UnknownExecutorError",
    "UnknownPoolError",
    "WaitingJob",
    "forecast",
]
