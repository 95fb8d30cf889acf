"""The profiler's CPU per consumed ``llm.completed`` event: per-event handlers (as before
the batching) against the batched consumer, measured in one run.

Starts a private nats-server (JetStream) and a database migrated to head (a SQLite file, or
``--postgres URL`` of an empty PostgreSQL database), publishes ``--events`` completion
events, then lets each design consume the same stream (each under fresh consumer and
claim names) in this process, and reports the process's CPU time per event (user + system,
``time.process_time``; nats-server's and PostgreSQL's own CPU are not included) and the
wall time until every usage row was written.

* ``per_event``: the profiler as it was (commit d3a0f43): two consumers (usage, profiles),
  one subscription each, one transaction per event per consumer.
* ``batched``: :class:`llmproxy.profiler.completions.CompletionConsumer` (one consumer,
  ``--concurrency`` subscriptions fetching one event each, group commit).
* ``batched_fetch``: the same consumer as the profiler runs it: two subscriptions on a bus
  with :data:`~llmproxy.profiler.completions.BATCH_BUS_OPTIONS` (fetches of up to 128
  events, handled at once, so a fetch is one transaction).

    python bench/profiler/consume.py              # 3,000 events
    python bench/profiler/consume.py --smoke      # 300 events

Writes ``bench/results/profiler_consume.json`` (``_smoke`` with --smoke).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import structlog  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from llmproxy.platform.bus.jetstream import JetStreamBus  # noqa: E402
from llmproxy.platform.bus.port import Envelope  # noqa: E402
from llmproxy.platform.bus.subjects import LLM_COMPLETED  # noqa: E402
from llmproxy.platform.db import create_engine, session_factory, upgrade  # noqa: E402
from llmproxy.platform.db.idempotency import claim_event  # noqa: E402
from llmproxy.platform.db.models import ProfiledRequest, UsageRecord  # noqa: E402
from llmproxy.platform.events import decode_event, new_event_meta, publish_event  # noqa: E402
from llmproxy.profiler import completions as batched  # noqa: E402
from llmproxy.profiler.profiles import apply_completion  # noqa: E402
from llmproxy.profiler.profiling import _from_row, _row_for, _write, completion_of  # noqa: E402
from llmproxy.profiler.usage import usage_row  # noqa: E402
from llmproxy.v1 import common_pb2, events_pb2  # noqa: E402
from tests.support.nats_server import NatsServer  # noqa: E402


def _event(index: int) -> events_pb2.LlmCompleted:
    event = events_pb2.LlmCompleted(
        meta=new_event_meta("bench"),
        request_id=f"req-{index}",
        scope=common_pb2.Scope(tenant_id="acme", app_id="web", user_id=f"u{index % 50}"),
        choice=common_pb2.ModelChoice(
            provider="openai-compatible", model=("fake-small", "fake-large")[index % 2]
        ),
        usage=common_pb2.TokenUsage(input_tokens=120, output_tokens=60),
        cost=common_pb2.Cost(cost_nanousd=5_000, reference_cost_nanousd=20_000),
        cache=common_pb2.CacheReport(outcome=common_pb2.CACHE_OUTCOME_MISS),
        task_category="qa",
    )
    event.latency.FromMilliseconds(800 + index % 400)
    event.time_to_first_token.FromMilliseconds(150 + index % 50)
    return event


class _PerEventUsage:
    """The usage handler as it was: one transaction per event."""

    def __init__(self, sessions, claims: str) -> None:  # type: ignore[no-untyped-def]
        self._sessions, self._claims = sessions, claims

    async def __call__(self, envelope: Envelope) -> None:
        event = decode_event(envelope, events_pb2.LlmCompleted)
        async with self._sessions.begin() as session:
            if await claim_event(
                session, consumer=self._claims, event_id=envelope.event_id, now=datetime.now(UTC)
            ):
                session.add(usage_row(event, envelope.event_id))


class _PerEventProfile:
    """The profile handler as it was: one transaction per event."""

    def __init__(self, sessions, claims: str) -> None:  # type: ignore[no-untyped-def]
        self._sessions, self._claims = sessions, claims

    async def __call__(self, envelope: Envelope) -> None:
        event = decode_event(envelope, events_pb2.LlmCompleted)
        completion = completion_of(event)
        if completion is None:
            return
        now = datetime.now(UTC)
        async with self._sessions.begin() as session:
            if not await claim_event(
                session, consumer=self._claims, event_id=envelope.event_id, now=now
            ):
                return
            row = await _row_for(session, completion.model, now)
            _write(row, apply_completion(_from_row(row), completion), now)
            if event.request_id and not event.error:
                await session.merge(
                    ProfiledRequest(
                        request_id=event.request_id,
                        model=completion.model,
                        task_category=event.task_category,
                        created_at=now,
                    )
                )


async def _usage_rows(sessions) -> int:  # type: ignore[no-untyped-def]
    async with sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(UsageRecord)) or 0)


async def _clear(sessions) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import delete

    from llmproxy.platform.db.models import ModelProfileRow, ProcessedEvent

    async with sessions.begin() as session:
        for table in (UsageRecord, ModelProfileRow, ProfiledRequest, ProcessedEvent):
            await session.execute(delete(table))


async def _consume(  # type: ignore[no-untyped-def]
    name: str, bus, batch_bus, sessions, dialect: str, events: int, concurrency: int, tag: str
):
    await _clear(sessions)
    subscriptions = []
    consumer = None
    cpu0, wall0 = time.process_time(), time.perf_counter()
    if name == "per_event":
        subscriptions.append(
            await bus.subscribe(
                LLM_COMPLETED, _PerEventUsage(sessions, "b-u"), consumer=f"b-usage-{tag}"
            )
        )
        subscriptions.append(
            await bus.subscribe(
                LLM_COMPLETED, _PerEventProfile(sessions, "b-p"), consumer=f"b-profiles-{tag}"
            )
        )
    elif name == "batched":
        batched.CONSUMER, batched.COMPLETIONS_CONSUMER = "c-u", "c-p"  # fresh claims
        consumer = batched.CompletionConsumer(sessions, dialect=dialect)
        subscriptions = [
            await bus.subscribe(LLM_COMPLETED, consumer, consumer=f"c-completions-{tag}")
            for _ in range(concurrency)
        ]
    else:  # batched_fetch: the product's setting (fetches of many, handled at once)
        batched.CONSUMER, batched.COMPLETIONS_CONSUMER = "d-u", "d-p"
        consumer = batched.CompletionConsumer(sessions, dialect=dialect)
        subscriptions = await consumer.subscribe(
            batch_bus, concurrency=2, consumer_name=f"d-completions-{tag}"
        )
    # the profile transactions of per_event may trail the usage rows a little; both are
    # counted by waiting for the usage rows and then for the consumers to idle
    while await _usage_rows(sessions) < events:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)
    for subscription in subscriptions:
        await subscription.stop()
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0 - 0.5
    result = {
        "cpu_ms_per_event": round(cpu * 1000 / events, 3),
        "wall_s": round(wall, 2),
        "events_per_s": round(events / wall, 1),
    }
    if consumer is not None:
        sizes = consumer.commits.batches
        result["transactions"] = len(sizes)
        result["mean_batch"] = round(sum(sizes) / len(sizes), 1)
    return result


async def run(args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        url = args.postgres or f"sqlite:///{tmp}/bench.db"
        await upgrade(url)
        engine = create_engine(url)
        sessions = session_factory(engine)
        async with NatsServer(Path(tmp) / "nats") as nats:
            bus = await JetStreamBus.connect(nats.url, name="bench-profiler")
            batch_bus = await JetStreamBus.connect(
                nats.url, name="bench-profiler-batches", options=batched.BATCH_BUS_OPTIONS
            )
            try:
                events = [_event(i) for i in range(args.events)]
                for start in range(0, len(events), 200):
                    await asyncio.gather(
                        *(publish_event(bus, LLM_COMPLETED, e) for e in events[start : start + 200])
                    )
                results = {}
                # round 1 warms both paths (imports, SQLAlchemy's statement caches); round 2
                # is reported
                for round_ in ("warm-up", "measured"):
                    for name in ("per_event", "batched", "batched_fetch"):
                        result = await _consume(
                            name,
                            bus,
                            batch_bus,
                            sessions,
                            engine.dialect.name,
                            args.events,
                            args.concurrency,
                            tag=round_,
                        )
                        print(round_, name, result, flush=True)
                        if round_ == "measured":
                            results[name] = result
            finally:
                await batch_bus.close()
                await bus.close()
                await engine.dispose()
    return results


def main() -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.INFO))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--postgres", default="", help="an empty PostgreSQL database URL")
    parser.add_argument("--smoke", action="store_true", help="300 events")
    args = parser.parse_args()
    if args.smoke:
        args.events = 300
    load = os.getloadavg()
    results = asyncio.run(run(args))
    before = results["per_event"]["cpu_ms_per_event"]
    after = results["batched_fetch"]["cpu_ms_per_event"]
    report = {
        "benchmark": "profiler_consume",
        "command": "python " + " ".join(["bench/profiler/consume.py", *sys.argv[1:]]),
        "machine": f"{os.cpu_count()} cores, {platform.platform()}, Python "
        f"{platform.python_version()}; shared with other work",
        "load_average_before": [round(x, 2) for x in load],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "database": "postgresql" if args.postgres else "sqlite",
        "events": args.events,
        "concurrency": args.concurrency,
        "results": results,
        "cpu_ratio_per_event_over_batched_fetch": round(before / after, 2) if after else None,
    }
    name = "profiler_consume_smoke.json" if args.smoke else "profiler_consume.json"
    if args.postgres:
        name = name.replace(".json", "_postgres.json")
    out = ROOT / "bench" / "results" / name
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
