"""Domain records of the live scheduler: jobs as the service holds them, executors, the
commands that change them and the transitions those commands produce.

Times are *core seconds*: plain floats on the scheduler's clock (the adapter maps them to
wall-clock timestamps; in an accelerated run one core second is shorter than a wall second).
Sizes are GPU-seconds (work at linear scaling), demands whole GPUs (or slots).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = [
    "ACTIVE_STATES",
    "TERMINAL_STATES",
    "WAITING_STATES",
    "Assignment",
    "EventKind",
    "Executor",
    "InvalidJobError",
    "JobKind",
    "JobNotFoundError",
    "JobState",
    "LiveError",
    "LiveJob",
    "Prediction",
    "Progress",
    "SubmitSpec",
    "Transition",
    "UnknownExecutorError",
    "UnknownPoolError",
]


#: largest weight a share may have (weights are relative; this only catches mistakes)
MAX_SHARE_WEIGHT = 1e6


class LiveError(Exception):
    """Root of the errors the live scheduler core raises."""


class InvalidJobError(LiveError, ValueError):
    """A request is malformed; ``field`` names the offending field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class JobNotFoundError(LiveError, KeyError):
    def __init__(self, job_id: str) -> None:
        super().__init__(f"unknown job {job_id!r}")
        self.job_id = job_id


class UnknownPoolError(LiveError, KeyError):
    def __init__(self, pool: str, known: tuple[str, ...]) -> None:
        names = ", ".join(known) or "none yet"
        super().__init__(
            f"unknown pool {pool!r}: no executor has registered for it (known pools: {names})"
        )
        self.pool = pool


class UnknownExecutorError(LiveError, KeyError):
    def __init__(self, executor_id: str) -> None:
        super().__init__(f"unknown executor {executor_id!r}: register it first")
        self.executor_id = executor_id


class JobKind(enum.Enum):
    GPU = "gpu"
    LLM_REQUEST = "llm_request"


class JobState(enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    #: lost its GPUs (executor lost or restarted) and waits to run again, from the start
    PREEMPTED = "preempted"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


WAITING_STATES = frozenset({JobState.QUEUED, JobState.PREEMPTED})
ACTIVE_STATES = WAITING_STATES | {JobState.RUNNING}
TERMINAL_STATES = frozenset({JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED})


class EventKind(enum.Enum):
    """What a transition announces; the values are the event subjects' last token."""

    SUBMITTED = "submitted"
    ESTIMATED = "estimated"
    STARTED = "started"
    PREEMPTED = "preempted"
    COMPLETED = "completed"  # also failed and cancelled: the job left the system


@dataclass(frozen=True, slots=True)
class Prediction:
    """A predicted start and completion (core seconds); ``None`` when no executor of the pool
    can run the job for now, so no honest time can be given."""

    start: float | None
    completion: float | None
    made_at: float
    reason: str


@dataclass(frozen=True, slots=True)
class SubmitSpec:
    """A validated submission (sizes already estimated when the submitter gave none)."""

    job_id: str
    pool: str
    demand: int
    size: float
    kind: JobKind = JobKind.GPU
    owner: str = ""
    size_uncertainty: float = 0.0
    size_estimated: bool = False
    features: Mapping[str, str] = field(default_factory=dict)
    command: str = ""
    idempotency_key: str = ""
    #: fair-sharing flow (e.g. ``tenant:acme``): jobs of a pool with the same share are one
    #: WFQ flow of weight ``share_weight``, instead of their size class's flow
    share: str = ""
    share_weight: float = 0.0

    def __post_init__(self) -> None:
        if not self.job_id:
            raise InvalidJobError("job_id", "must not be empty")
        if not self.pool:
            raise InvalidJobError("pool", "must not be empty")
        if self.demand < 1:
            raise InvalidJobError("gpu_demand", f"must be at least 1, got {self.demand}")
        if not (self.size > 0 and math.isfinite(self.size)):
            raise InvalidJobError("size_seconds", f"must be finite and > 0, got {self.size!r}")
        if self.size_uncertainty < 0 or not math.isfinite(self.size_uncertainty):
            raise InvalidJobError(
                "size_uncertainty", f"must be finite and >= 0, got {self.size_uncertainty!r}"
            )
        if self.share and not (
            math.isfinite(self.share_weight) and 0 < self.share_weight <= MAX_SHARE_WEIGHT
        ):
            raise InvalidJobError(
                "share_weight",
                f"must be > 0 and at most {MAX_SHARE_WEIGHT:g} when a share is given, "
                f"got {self.share_weight!r}",
            )
        if not self.share and self.share_weight:
            raise InvalidJobError("share_weight", "a weight needs a share to apply to")


@dataclass(frozen=True, slots=True)
class LiveJob:
    """One job as the live scheduler holds it."""

    job_id: str
    #: submission order, the FIFO tie-break inside a class (survives restarts)
    seq: int
    pool: str
    demand: int
    #: believed size, GPU-seconds (given, or estimated when ``size_estimated``)
    size: float
    state: JobState
    submitted_at: float
    class_index: int = 0
    #: WFQ virtual start and finish tags (see :mod:`.ordering`); waiting jobs start in
    #: finish-tag order
    tag_start: float = 0.0
    tag_finish: float = 0.0
    kind: JobKind = JobKind.GPU
    owner: str = ""
    size_uncertainty: float = 0.0
    size_estimated: bool = False
    features: Mapping[str, str] = field(default_factory=dict)
    command: str = ""
    idempotency_key: str = ""
    #: first start (kept across restarts of the run) and the current run's start
    started_at: float | None = None
    run_started_at: float | None = None
    completed_at: float | None = None
    #: GPU-seconds done in the current run, as the executor last reported
    attained: float = 0.0
    #: work of the final run, measured at completion (demand x run time)
    actual_size: float | None = None
    executor_id: str = ""
    gpu_indices: tuple[int, ...] = ()
    #: times the job lost its GPUs and went back to the queue
    restarts: int = 0
    error: str = ""
    prediction: Prediction | None = None
    first_prediction: Prediction | None = None
    #: fair-sharing flow and its weight (see :class:`SubmitSpec`); "" = the size class
    share: str = ""
    share_weight: float = 0.0
    #: the demand asked for when the pool's per-job GPU cap clipped it (0: not clipped)
    requested_demand: int = 0

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    def believed_remaining(self, now: float) -> float:
        """Work left as the scheduler believes it: a waiting job restarts from the beginning;
        a running one has done ``demand x elapsed`` (never below zero when it overruns)."""
        if self.state is not JobState.RUNNING or self.run_started_at is None:
            return self.size
        return max(self.size - self.demand * (now - self.run_started_at), 0.0)


@dataclass(frozen=True, slots=True)
class Executor:
    """An agent that owns ``gpus`` GPUs (or slots) of a pool and runs what it is assigned."""

    executor_id: str
    pool: str
    gpus: int
    kind: str
    alive: bool
    registered_at: float
    last_heartbeat: float


@dataclass(frozen=True, slots=True)
class Progress:
    """An executor's report on one job it runs."""

    job_id: str
    attained: float = 0.0
    finished: bool = False
    failed: bool = False
    error: str = ""


@dataclass(frozen=True, slots=True)
class Assignment:
    """A job an executor must be running: its GPUs, its command and the believed work left."""

    job_id: str
    gpu_indices: tuple[int, ...]
    command: str
    remaining: float


@dataclass(frozen=True, slots=True)
class Transition:
    """A job's new version and what it announces (``reason`` says why, for people)."""

    job: LiveJob
    kind: EventKind
    reason: str
