"""Every subject and stream of the system, in one place (see DESIGN.md, Events)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from llmproxy.platform.errors import InvalidArgumentError

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
#: the WhatsApp webhook's accepted messages and delivery statuses, until the inbox has them
WHATSAPP_INBOUND = "whatsapp.inbound"
WHATSAPP_STATUS = "whatsapp.status"


@dataclass(frozen=True, slots=True)
class StreamSpec:
    name: str
    subjects: tuple[str, ...]
    #: True: a message is removed once acked (a work queue); False: kept by limits
    work_queue: bool = False
    #: events older than this are discarded; without a limit the file store grows forever
    max_age: timedelta = timedelta(days=7)


STREAMS: tuple[StreamSpec, ...] = (
    StreamSpec("LLM", ("llm.>",)),
    StreamSpec("CACHE", ("cache.>",)),
    StreamSpec("JOBS", ("job.>",)),
    StreamSpec("PROFILES", ("profile.>",)),
    StreamSpec("POLICIES", ("policy.>",)),
    StreamSpec("SEARCH", (SEARCH_REQUESTED, SEARCH_PROGRESS, SEARCH_COMPLETED)),
    StreamSpec("SEARCH_TASKS", (SEARCH_EVALUATE,), work_queue=True),
    StreamSpec("WHATSAPP", (WHATSAPP_INBOUND, WHATSAPP_STATUS), work_queue=True),
)


def subject_matches(pattern: str, subject: str) -> bool:
    """True when every subject that ``subject`` names is also matched by ``pattern``.

    NATS wildcards: ``*`` is one token, ``>`` one or more trailing tokens. ``subject`` may
    itself be a filter with wildcards (``job.*`` is covered by ``job.>``, not by ``job.started``).
    """
    wanted = pattern.split(".")
    given = subject.split(".")
    for i, token in enumerate(wanted):
        if token == ">":
            return len(given) > i
        if i >= len(given):
            return False
        if token == "*":
            if given[i] == ">":
                return False
        elif token != given[i]:
            return False
    return len(given) == len(wanted)


def subjects_overlap(a: str, b: str) -> bool:
    """True when some concrete subject is matched by both filters ``a`` and ``b``."""
    left = a.split(".")
    right = b.split(".")
    for i in range(max(len(left), len(right))):
        x = left[i] if i < len(left) else None
        y = right[i] if i < len(right) else None
        if x == ">" or y == ">":
            # ">" needs at least one token on the other side at this position
            return x is not None and y is not None
        if x is None or y is None:
            return False
        if x != y and x != "*" and y != "*":
            return False
    return True


def stream_for(subject: str, streams: Iterable[StreamSpec] = STREAMS) -> StreamSpec:
    """The one stream that stores ``subject`` (a subject or a filter with wildcards).

    Raises:
        InvalidArgumentError: no stream covers the subject, or a filter spans several
            streams (a JetStream consumer reads exactly one stream).
    """
    for spec in streams:
        if any(subject_matches(pattern, subject) for pattern in spec.subjects):
            return spec
    touched = [
        spec.name
        for spec in streams
        if any(subjects_overlap(pattern, subject) for pattern in spec.subjects)
    ]
    if touched:
        raise InvalidArgumentError(
            f"subject {subject!r} spans the streams {', '.join(touched)}; "
            "subscribe to each stream's subjects separately",
            field="subject",
        )
    raise InvalidArgumentError(
        f"subject {subject!r} belongs to no stream; add it to subjects.STREAMS",
        field="subject",
    )
