"""Sharing evaluations between optimizer replicas through the ``SEARCH_TASKS`` JetStream work
queue.

The replica that drives a search publishes one ``search.evaluate`` task per configuration it
needs scored and waits until the scores are in the database. Every replica (the driver too)
runs :class:`EvaluationWorker` subscriptions on one shared durable consumer, so JetStream
hands each task to one replica; a replica that dies holding a task stops acknowledging it
and the task is delivered to another after ``ack_wait``. A worker skips a configuration
already stored, and the store keeps the first score, so a redelivered task costs nothing.

A task whose simulation raises is handed back (nak, with the bus's backoff) and tried
again, by this or another replica, up to ``max_deliveries`` deliveries in all. The last
delivery that fails stores the configuration as failed (NaN metrics and the error: the
worst objective values to the search, on no front), so the driver's wait ends and the
search completes, and the bus terminates the message (JetStream ``term``): it is never
delivered again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from datetime import timedelta
from fractions import Fraction
from typing import Any

import structlog

from llmproxy.optimizer.pcs.evaluation import evaluate_mapping, failed_metrics
from llmproxy.optimizer.pcs.space import Candidate
from llmproxy.optimizer.pcs.workload import WorkloadSpec
from llmproxy.optimizer.repository import SearchRecord, SearchRepository
from llmproxy.platform.bus.port import Envelope, EventBus, Subscription
from llmproxy.platform.bus.subjects import SEARCH_EVALUATE
from llmproxy.platform.errors import UnavailableError
from llmproxy.platform.events import decode_event, new_event_meta, publish_event
from llmproxy.scheduler.core import WfqConfig
from llmproxy.v1 import events_pb2

__all__ = [
    "EVALUATE_CONSUMER",
    "MAX_DELIVERIES",
    "EvaluationFailed",
    "EvaluationWorker",
    "QueueEvaluator",
    "candidate_from_proto",
    "candidate_to_proto",
]

log = structlog.get_logger(__name__)

#: the durable consumer every optimizer replica shares
EVALUATE_CONSUMER = "optimizer-evaluate"
#: deliveries of one task (failed simulations and replicas that died holding it) before
#: the configuration is stored as failed and the message terminated
MAX_DELIVERIES = 5


class EvaluationFailed(RuntimeError):
    """A task's last delivery failed; the failure is stored and the message terminated."""


def candidate_to_proto(candidate: Candidate) -> events_pb2.WfqConfig:
    config = candidate.config
    return events_pb2.WfqConfig(
        classes=[
            events_pb2.WfqClass(size_boundary_seconds=t, weight=float(w))
            for t, w in zip(config.thresholds, config.weights, strict=True)
        ],
        clip_demand_factor=config.clip_demand_factor,
        delta=config.delta,
        max_job_gpus=candidate.max_job_gpus or 0,
    )


def candidate_from_proto(message: events_pb2.WfqConfig) -> Candidate:
    """The candidate a ``WfqConfig`` message describes (weights re-read as exact fractions)."""
    weights = [Fraction(c.weight).limit_denominator(10**6) for c in message.classes]
    total = sum(weights) or Fraction(1)
    config = WfqConfig(
        thresholds=tuple(c.size_boundary_seconds for c in message.classes),
        weights=tuple(w / total for w in weights),
        clip_demand_factor=message.clip_demand_factor,
        delta=message.delta,
    )
    return Candidate(config, message.max_job_gpus or None)


@dataclass
class QueueEvaluator:
    """Publishes tasks and waits for every score to be stored (by any replica)."""

    repository: SearchRepository
    bus: EventBus
    source: str
    poll_interval: timedelta = timedelta(milliseconds=200)
    #: give up on a generation after this long (a stuck queue, no worker anywhere)
    timeout: timedelta = timedelta(hours=2)

    async def evaluate(self, record: SearchRecord, candidates: Sequence[Candidate]) -> None:
        key = record.workload.key
        for candidate in candidates:
            meta = new_event_meta(self.source)
            # one id per (workload, configuration): a resumed driver's re-publish is dropped
            meta.event_id = f"{key}.{candidate.config_hash}"
            await publish_event(
                self.bus,
                SEARCH_EVALUATE,
                events_pb2.SearchEvaluate(
                    meta=meta,
                    search_id=record.search_id,
                    candidate_id=candidate.config_hash,
                    config=candidate_to_proto(candidate),
                    workload_key=key,
                ),
            )
        wanted = {c.config_hash for c in candidates}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout.total_seconds()
        while True:
            found = await self.repository.evaluations(key, wanted)
            if len(found) == len(wanted):
                return
            if loop.time() > deadline:
                raise UnavailableError(
                    f"search {record.search_id}: {len(wanted) - len(found)} evaluations not "
                    f"done after {self.timeout}; is any optimizer replica running?"
                )
            await asyncio.sleep(self.poll_interval.total_seconds())


@dataclass
class EvaluationWorker:
    """Scores ``search.evaluate`` tasks on an executor; ``concurrency`` subscriptions of the
    shared consumer run at once (one task each)."""

    repository: SearchRepository
    bus: EventBus
    executor: Executor
    instance_id: str
    concurrency: int = 1
    ack_wait: timedelta = timedelta(seconds=60)
    max_deliveries: int = MAX_DELIVERIES
    #: the function the executor runs (picklable for a process pool)
    evaluate_fn: Callable[[Mapping[str, Any], Mapping[str, Any]], dict[str, float]] = (
        evaluate_mapping
    )
    #: configuration hashes this replica simulated (tests and logs)
    simulated: list[str] = field(default_factory=list)
    #: configuration hashes of tasks that came again (another replica died holding them)
    redelivered: list[str] = field(default_factory=list)
    #: configuration hashes this replica stored as failed (their last delivery failed)
    failed: list[str] = field(default_factory=list)
    _subscriptions: list[Subscription] = field(default_factory=list)
    _specs: dict[str, WorkloadSpec] = field(default_factory=dict)

    async def start(self) -> None:
        for _ in range(self.concurrency):
            self._subscriptions.append(
                await self.bus.subscribe(
                    SEARCH_EVALUATE,
                    self.handle,
                    consumer=EVALUATE_CONSUMER,
                    ack_wait=self.ack_wait,
                    max_deliver=self.max_deliveries,
                )
            )

    async def stop(self) -> None:
        subscriptions, self._subscriptions = self._subscriptions, []
        for subscription in subscriptions:
            with contextlib.suppress(Exception):
                await subscription.stop()

    async def handle(self, envelope: Envelope) -> None:
        task = decode_event(envelope, events_pb2.SearchEvaluate)
        candidate = candidate_from_proto(task.config)
        key = task.workload_key
        if envelope.attempt > 1:
            self.redelivered.append(task.candidate_id)
            log.info(
                "optimizer.task_redelivered", candidate=task.candidate_id, attempt=envelope.attempt
            )
        if await self.repository.evaluations(key, [task.candidate_id]):
            return  # scored already (a redelivery, or another search on this workload)
        spec = self._specs.get(task.search_id)
        if spec is None:
            spec = (await self.repository.get(task.search_id)).workload
            self._specs[task.search_id] = spec
        loop = asyncio.get_running_loop()
        try:
            metrics = await loop.run_in_executor(
                self.executor, self.evaluate_fn, spec.to_mapping(), candidate.to_mapping()
            )
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            if envelope.attempt < self.max_deliveries:
                raise  # nak: delivered again after the bus's backoff
            await self.repository.add_evaluation(
                key,
                candidate,
                failed_metrics(envelope.attempt),
                evaluated_by=self.instance_id,
                config_hash=task.candidate_id,
                error=error,
            )
            self.failed.append(task.candidate_id)
            log.warning(
                "optimizer.evaluation_failed_for_good",
                search_id=task.search_id,
                candidate=task.candidate_id,
                deliveries=envelope.attempt,
                error=error,
            )
            # raised on the last delivery: the bus terminates the message (no redelivery)
            raise EvaluationFailed(
                f"candidate {task.candidate_id} failed {envelope.attempt} deliveries: {error}"
            ) from exc
        self.simulated.append(task.candidate_id)
        # stored under the hash the driver waits for, whatever float rounding did on the way
        await self.repository.add_evaluation(
            key, candidate, metrics, evaluated_by=self.instance_id, config_hash=task.candidate_id
        )
        log.info(
            "optimizer.evaluated",
            search_id=task.search_id,
            candidate=task.candidate_id,
            seconds=round(metrics.get("wall_seconds", 0.0), 2),
            metrics=json.dumps({k: round(v, 3) for k, v in metrics.items()}),
        )
