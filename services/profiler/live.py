"""Model profiles as a gateway replica holds them: read at start, refreshed by ``profile.updated``.

Converts the profiler's protobuf profiles into the selection core's plain records. A
category's measured quality is used only once ``min_feedback`` answers in it were judged;
before that the catalog's prior stands.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from llmproxy.gateway.selection import ModelProfile
from llmproxy.platform.bus.port import Envelope
from llmproxy.platform.events import decode_event
from llmproxy.profiler.profiling import load_profiles
from llmproxy.v1 import events_pb2

__all__ = ["LiveProfiles", "selection_profile"]


def selection_profile(message: events_pb2.ModelProfile, *, min_feedback: int) -> ModelProfile:
    """The selection core's view of one profile."""
    counts = message.feedback_by_category
    return ModelProfile(
        model=message.model,
        requests=message.requests,
        ttft_p50_s=message.ttft_p50.ToNanoseconds() / 1e9,
        ttft_p95_s=message.ttft_p95.ToNanoseconds() / 1e9,
        time_per_output_token_p50_s=message.time_per_output_token_p50.ToNanoseconds() / 1e9,
        time_per_output_token_p95_s=message.time_per_output_token_p95.ToNanoseconds() / 1e9,
        error_rate=message.error_rate,
        mean_cost_nanousd=message.mean_cost_nanousd,
        quality_by_category={
            category: quality
            for category, quality in message.quality_by_category.items()
            if counts.get(category, 0) >= min_feedback
        },
    )


class LiveProfiles:
    def __init__(self, *, min_feedback: int = 5) -> None:
        self._min_feedback = min_feedback
        self._profiles: dict[str, ModelProfile] = {}

    def profiles(self) -> Mapping[str, ModelProfile]:
        return self._profiles

    def _take(self, messages: list[events_pb2.ModelProfile]) -> None:
        updated = dict(self._profiles)
        for message in messages:
            updated[message.model] = selection_profile(message, min_feedback=self._min_feedback)
        self._profiles = updated  # one swap: a request never sees half an update

    async def load(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        """Every profile the profiler has stored (at start)."""
        self._take(await load_profiles(sessions))

    async def on_profile_updated(self, envelope: Envelope) -> None:
        """``profile.updated`` handler."""
        self._take(list(decode_event(envelope, events_pb2.ProfileUpdated).profiles))
