"""Every subject and stream of the system, in one place (see DESIGN.md, Events)."""

from __future__ import annotations

from dataclasses import dataclass

LLM_COMPLETED = "llm.completed"
LLM_FEEDBACK = "llm.feedback"
CACHE_INVALIDATE = "cache.invalidate"
JOB_SUBMITTED = "job.submitted"
JOB_ESTIMATED = "job.estimated"
JOB_STARTED = "job.started"
JOB_PREEMPTED = "job.preempted"
JOB_COMPLETED = "job.completed"
PROFILE_UPDATED = "profile.updated"
POLICY_UPDATED = "policy.updated"
SEARCH_REQUESTED = "search.requested"
SEARCH_PROGRESS = "search.progress"
SEARCH_COMPLETED = "search.completed"
#: work queue of candidate evaluations shared by optimizer replicas
SEARCH_EVALUATE = "search.evaluate"


@dataclass(frozen=True, slots=True)
class StreamSpec:
    name: str
    subjects: tuple[str, ...]
    #: True: a message is removed once acked (a work queue); False: kept by limits
    work_queue: bool = False


STREAMS: tuple[StreamSpec, ...] = (
    StreamSpec("LLM", ("llm.>",)),
    StreamSpec("CACHE", ("cache.>",)),
    StreamSpec("JOBS", ("job.>",)),
    StreamSpec("PROFILES", ("profile.>",)),
    StreamSpec("POLICIES", ("policy.>",)),
    StreamSpec("SEARCH", (SEARCH_REQUESTED, SEARCH_PROGRESS, SEARCH_COMPLETED)),
    StreamSpec("SEARCH_TASKS", (SEARCH_EVALUATE,), work_queue=True),
)
