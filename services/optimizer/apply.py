"""Applying a front point: publish it as the live WFQ configuration (``policy.updated``)."""

from __future__ import annotations

from dataclasses import dataclass

from llmproxy.optimizer.pcs.front import PRESETS
from llmproxy.optimizer.repository import Evaluation, SearchRepository
from llmproxy.optimizer.work_queue import candidate_to_proto
from llmproxy.platform.bus.port import EventBus
from llmproxy.platform.bus.subjects import POLICY_UPDATED
from llmproxy.platform.errors import InvalidArgumentError, NotFoundError
from llmproxy.platform.events import new_event_meta, publish_event
from llmproxy.v1 import events_pb2

__all__ = ["Applied", "apply_point", "choose_point"]


@dataclass(frozen=True, slots=True)
class Applied:
    policy_id: str
    point: Evaluation
    event: events_pb2.PolicyUpdated


async def choose_point(
    repository: SearchRepository,
    search_id: str,
    *,
    preset: str | None = None,
    candidate_id: str | None = None,
) -> Evaluation:
    """The front point named by a preset or a candidate hash (exactly one of them).

    Raises:
        InvalidArgumentError: both or neither named, an unknown preset, a search not completed.
        NotFoundError: no such search, or no such candidate in it.
    """
    if bool(preset) == bool(candidate_id):
        raise InvalidArgumentError("name exactly one of a preset or a candidate", field="point")
    if preset and preset not in PRESETS:
        raise InvalidArgumentError(
            f"preset {preset!r} is not one of {', '.join(PRESETS)}", field="preset"
        )
    record = await repository.get(search_id)
    if record.state != "completed":
        raise InvalidArgumentError(
            f"search {search_id} is {record.state}; only a completed search's front can be applied",
            field="search_id",
        )
    points = await repository.points(search_id)
    for point in points:
        if (preset and preset in point.presets) or (
            candidate_id and point.config_hash == candidate_id
        ):
            return point
    if preset:
        raise NotFoundError(f"search {search_id} has no {preset!r} point")
    raise NotFoundError(f"search {search_id} evaluated no candidate {candidate_id!r}")


async def apply_point(
    repository: SearchRepository,
    bus: EventBus,
    search_id: str,
    *,
    preset: str | None = None,
    candidate_id: str | None = None,
    pool: str = "",
    source: str = "optimizer",
) -> Applied:
    """Publish the chosen point as ``policy.updated``; the scheduler switches to it."""
    point = await choose_point(repository, search_id, preset=preset, candidate_id=candidate_id)
    meta = new_event_meta(source)
    policy_id = f"wfq-{search_id}-{point.config_hash}"
    event = events_pb2.PolicyUpdated(
        meta=meta,
        policy_id=policy_id,
        wfq=candidate_to_proto(point.candidate),
        scheduler_pool=pool,
    )
    await publish_event(bus, POLICY_UPDATED, event)
    return Applied(policy_id, point, event)
