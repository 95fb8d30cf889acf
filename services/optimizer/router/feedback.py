"""Feedback as router training examples (``llmproxy router train --with-feedback``).

A caller's ``llm.feedback`` (rating / wrong / escalate) judges one answer; the prompt and
the model that answered are in that request's ``llm.completed``. Both live in the bus's
``LLM`` stream (the profiler consumes them from there), so the examples are read back from
it: :func:`read_stream` (adapter) collects the events, :func:`feedback_examples` (pure)
joins them. A verdict labels the model that answered; the other model's label is inferred,
conservatively, the way the cascade treats the pair:

* cheap model judged good → cheap right, strong right (the strong model rarely misses
  what the cheap one gets);
* cheap model judged bad → cheap wrong, strong right (escalating it is the point);
* strong model judged bad → both wrong (escalating did not help: the cheap model is enough);
* strong model judged good → says nothing about the cheap model: skipped.

Answers of other models, cache hits and feedback about unknown requests are skipped.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from llmproxy.optimizer.router.jobs import LabelledPrompt
from llmproxy.platform.bus.subjects import LLM_COMPLETED, LLM_FEEDBACK
from llmproxy.profiler.profiles import verdict_for
from llmproxy.v1 import common_pb2, events_pb2

__all__ = ["Answered", "Verdict", "feedback_examples", "read_stream"]

_KINDS = {
    events_pb2.FEEDBACK_KIND_RATING: "rating",
    events_pb2.FEEDBACK_KIND_WRONG: "wrong",
    events_pb2.FEEDBACK_KIND_ESCALATE: "escalate",
}


@dataclass(frozen=True, slots=True)
class Answered:
    prompt: str
    model: str


@dataclass(frozen=True, slots=True)
class Verdict:
    request_id: str
    #: 0 (bad) .. 1 (good), the profiler's reading of the feedback
    goodness: float


def feedback_examples(
    answered: Mapping[str, Answered],
    verdicts: Iterable[Verdict],
    *,
    cheap_model: str,
    strong_model: str,
) -> list[LabelledPrompt]:
    """One example per judged request (its last verdict wins); see the module's doc."""
    last = {v.request_id: v for v in verdicts}
    examples = []
    for request_id, verdict in last.items():
        found = answered.get(request_id)
        if found is None or not found.prompt.strip():
            continue
        good = verdict.goodness >= 0.5
        if found.model == cheap_model:
            examples.append(LabelledPrompt(found.prompt, good, True))
        elif found.model == strong_model and not good:
            examples.append(LabelledPrompt(found.prompt, False, False))
    return examples


def _prompt(event: events_pb2.LlmCompleted) -> str:
    if event.user_prompt:
        return event.user_prompt
    users = [m.content for m in event.prompt if m.role == common_pb2.ROLE_USER]
    return users[-1] if users else ""


async def read_stream(
    nats_url: str, *, stream: str = "LLM", idle_s: float = 3.0
) -> tuple[dict[str, Answered], list[Verdict]]:
    """Every answered request and feedback verdict still held by the ``LLM`` stream."""
    import nats
    from nats.js.api import ConsumerConfig, DeliverPolicy
    from nats.js.errors import NotFoundError

    client = await nats.connect(nats_url, name="llmproxy-router-feedback")
    answered: dict[str, Answered] = {}
    verdicts: list[Verdict] = []
    try:
        js = client.jetstream()
        try:
            info = await js.stream_info(stream)
        except NotFoundError:
            return answered, verdicts
        if not info.state.messages:
            return answered, verdicts
        last = info.state.last_seq
        subscription = await js.subscribe(
            "llm.>",
            stream=stream,
            ordered_consumer=True,
            config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL),
        )
        try:
            while True:
                message = await subscription.next_msg(timeout=idle_s)
                if message.subject == LLM_COMPLETED:
                    event = events_pb2.LlmCompleted.FromString(message.data)
                    if not event.error and event.choice.policy != "cache":
                        answered[event.request_id] = Answered(_prompt(event), event.choice.model)
                elif message.subject == LLM_FEEDBACK:
                    feedback = events_pb2.LlmFeedback.FromString(message.data)
                    verdict = verdict_for(_KINDS.get(feedback.kind, ""), feedback.rating)
                    if verdict is not None:
                        verdicts.append(Verdict(feedback.request_id, verdict.goodness))
                if message.metadata.sequence.stream >= last:
                    break
        finally:
            await subscription.unsubscribe()
    finally:
        await client.close()
    return answered, verdicts
