"""The EventBus contract, bound twice: the in-memory fake and JetStream on a real nats-server.

A handler tested against the fake can rely on what this suite checks on both; then come
tests only a real server can run (its restart), and one of ``connect`` alone."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Protocol

import nats
import pytest
from nats.aio.client import Client

from llmproxy.platform.bus.jetstream import JetStreamBus, JetStreamOptions, consumer_name
from llmproxy.platform.bus.memory import InMemoryBus, InMemoryDeduplicator
from llmproxy.platform.bus.port import Delivery, Envelope, EventBus
from llmproxy.platform.bus.subjects import (
    CACHE_INVALIDATE,
    LLM_COMPLETED,
    SEARCH_EVALUATE,
    stream_for,
)
from llmproxy.platform.errors import InvalidArgumentError, UnavailableError
from tests.support.nats_server import NatsServer
from tests.support.tcp_proxy import PausableProxy

pytestmark = pytest.mark.timeout(30)

#: seconds a test waits for something the bus should do; each takes milliseconds
WAIT = 5.0

#: short pauses keep the suite fast; the defaults are for production
FAST = JetStreamOptions(
    redelivery_backoff=timedelta(milliseconds=20),
    reconnect_time_wait=timedelta(milliseconds=50),
    publish_timeout=timedelta(seconds=5),
)


# --- the two bindings -----------------------------------------------------------------


class Harness(Protocol):
    @property
    def bus(self) -> EventBus: ...

    async def backlog(self, consumer: str, subject: str) -> int:
        """Messages of a SHARED consumer not yet acked (queued, in flight, to redeliver)."""
        ...

    async def close(self) -> None: ...


class MemoryHarness:
    def __init__(self) -> None:
        self.memory = InMemoryBus(redelivery_backoff=timedelta(milliseconds=20))
        self.bus: EventBus = self.memory

    async def backlog(self, consumer: str, subject: str) -> int:
        return self.memory.backlog(consumer, subject)

    async def close(self) -> None:
        await self.memory.close()


class NatsHarness:
    def __init__(self, bus: JetStreamBus, probe: Client) -> None:
        self.bus: EventBus = bus
        self._probe = probe  # a connection of its own, so the bus under test is untouched

    @classmethod
    async def start(cls, server: NatsServer) -> NatsHarness:
        bus = await JetStreamBus.connect(server.url, name="contract", options=FAST)
        return cls(bus, await nats.connect(server.url))

    async def backlog(self, consumer: str, subject: str) -> int:
        info = await self._probe.jetstream().consumer_info(
            stream_for(subject).name, consumer_name(consumer)
        )
        return (info.num_pending or 0) + (info.num_ack_pending or 0)

    async def close(self) -> None:
        await self.bus.close()
        await self._probe.close()


@pytest.fixture(params=["memory", pytest.param("nats", marks=pytest.mark.nats)])
def nats_or_none(request: pytest.FixtureRequest) -> NatsServer | None:  # sync: lazy server
    return request.getfixturevalue("nats_server") if request.param == "nats" else None


@pytest.fixture
async def harness(nats_or_none: NatsServer | None) -> AsyncIterator[Harness]:
    server = nats_or_none
    bound: Harness = MemoryHarness() if server is None else await NatsHarness.start(server)
    yield bound
    await bound.close()


# --- helpers --------------------------------------------------------------------------


class Recorder:
    """A handler that records what it gets, may fail; recorders watched together share
    ``changed``."""

    def __init__(
        self,
        *,
        fail: Callable[[Envelope], bool] = lambda _: False,
        pause: float = 0,
        changed: asyncio.Event | None = None,
    ) -> None:
        self.received: list[Envelope] = []
        self._fail = fail
        self._pause = pause
        self._changed = changed or asyncio.Event()

    async def __call__(self, envelope: Envelope) -> None:
        self.received.append(envelope)
        self._changed.set()
        if self._pause:
            await asyncio.sleep(self._pause)
        if self._fail(envelope):
            raise RuntimeError(f"simulated failure of {envelope.event_id}")

    def ids(self) -> list[str]:
        return [envelope.event_id for envelope in self.received]

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        """Return once ``predicate()`` holds; a test fails after WAIT seconds without it."""
        async with asyncio.timeout(WAIT):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()


async def settled(harness: Harness, consumer: str, subject: str) -> None:
    """Wait until the consumer has acked (or given up on) everything delivered to it."""
    async with asyncio.timeout(WAIT):
        # polling: the broker's counters change without telling anyone
        while await harness.backlog(consumer, subject):  # noqa: ASYNC110
            await asyncio.sleep(0.02)


# --- the contract ---------------------------------------------------------------------


async def test_handler_gets_the_published_bytes_subject_id_and_headers(harness: Harness) -> None:
    recorder = Recorder()
    await harness.bus.subscribe(LLM_COMPLETED, recorder, consumer="svc.reader")

    await harness.bus.publish(LLM_COMPLETED, b"\x00payload\xff", event_id="e-1", headers={"k": "v"})

    await recorder.wait_for(lambda: len(recorder.received) == 1)
    assert recorder.received == [
        Envelope(LLM_COMPLETED, "e-1", b"\x00payload\xff", headers={"k": "v"}, attempt=1)
    ]


async def test_an_event_published_twice_is_delivered_once(harness: Harness) -> None:
    recorder = Recorder()
    await harness.bus.subscribe(LLM_COMPLETED, recorder, consumer="svc")

    await harness.bus.publish(LLM_COMPLETED, b"a", event_id="dup")
    await harness.bus.publish(LLM_COMPLETED, b"a", event_id="dup")
    await harness.bus.publish(LLM_COMPLETED, b"b", event_id="after")

    # delivery keeps stream order, so a stored duplicate would arrive before "after"
    await recorder.wait_for(lambda: "after" in recorder.ids())
    assert recorder.ids() == ["dup", "after"]


async def test_a_shared_consumer_gets_what_was_published_before_it_subscribed(
    harness: Harness,
) -> None:
    await harness.bus.publish(LLM_COMPLETED, b"early", event_id="early")
    recorder = Recorder()
    await harness.bus.subscribe(LLM_COMPLETED, recorder, consumer="late-starter")
    await recorder.wait_for(lambda: recorder.ids() == ["early"])


async def test_a_failed_event_is_redelivered_then_acked(harness: Harness) -> None:
    recorder = Recorder(fail=lambda envelope: envelope.attempt == 1)
    await harness.bus.subscribe(LLM_COMPLETED, recorder, consumer="svc")

    await harness.bus.publish(LLM_COMPLETED, b"x", event_id="flaky")

    await recorder.wait_for(lambda: len(recorder.received) == 2)
    await settled(harness, "svc", LLM_COMPLETED)
    assert [(e.event_id, e.attempt) for e in recorder.received] == [("flaky", 1), ("flaky", 2)]


async def test_an_event_failing_every_time_stops_after_max_deliver(harness: Harness) -> None:
    recorder = Recorder(fail=lambda _: True)
    await harness.bus.subscribe(LLM_COMPLETED, recorder, consumer="svc", max_deliver=3)

    await harness.bus.publish(LLM_COMPLETED, b"x", event_id="poison")

    await recorder.wait_for(lambda: len(recorder.received) == 3)
    await settled(harness, "svc", LLM_COMPLETED)
    assert [e.attempt for e in recorder.received] == [1, 2, 3]


async def test_the_deduplicator_skips_an_event_already_handled_and_acks_it(
    harness: Harness,
) -> None:
    deduplicator = InMemoryDeduplicator()
    assert await deduplicator.first_time("svc", "seen-before")
    recorder = Recorder()
    await harness.bus.subscribe(LLM_COMPLETED, recorder, consumer="svc", deduplicator=deduplicator)

    await harness.bus.publish(LLM_COMPLETED, b"x", event_id="seen-before")
    await harness.bus.publish(LLM_COMPLETED, b"y", event_id="new")

    await recorder.wait_for(lambda: "new" in recorder.ids())
    await settled(harness, "svc", LLM_COMPLETED)
    assert recorder.ids() == ["new"]


async def test_the_deduplicator_lets_the_redelivery_of_a_failed_event_through(
    harness: Harness,
) -> None:
    deduplicator = InMemoryDeduplicator()
    recorder = Recorder(fail=lambda envelope: envelope.attempt == 1)
    await harness.bus.subscribe(LLM_COMPLETED, recorder, consumer="svc", deduplicator=deduplicator)

    await harness.bus.publish(LLM_COMPLETED, b"x", event_id="retry-me")

    await recorder.wait_for(lambda: len(recorder.received) == 2)
    await settled(harness, "svc", LLM_COMPLETED)
    assert [e.attempt for e in recorder.received] == [1, 2]
    assert deduplicator.seen("svc", "retry-me")


@pytest.mark.parametrize("subject", [LLM_COMPLETED, SEARCH_EVALUATE], ids=["limits", "work-queue"])
async def test_subscribers_of_one_shared_consumer_split_the_messages(
    harness: Harness, subject: str
) -> None:
    changed = asyncio.Event()
    first, second = Recorder(pause=0.005, changed=changed), Recorder(pause=0.005, changed=changed)
    await harness.bus.subscribe(subject, first, consumer="workers")
    await harness.bus.subscribe(subject, second, consumer="workers")

    sent = [f"m{i}" for i in range(20)]
    for event_id in sent:
        await harness.bus.publish(subject, event_id.encode(), event_id=event_id)

    await first.wait_for(lambda: len(first.received) + len(second.received) >= len(sent))
    await settled(harness, "workers", subject)
    assert sorted(first.ids() + second.ids()) == sorted(sent)  # each exactly once
    assert first.received and second.received


async def test_broadcast_subscribers_each_get_every_new_message(harness: Harness) -> None:
    await harness.bus.publish(CACHE_INVALIDATE, b"old", event_id="before-subscribing")
    first, second = Recorder(), Recorder()
    for replica in (first, second):
        await harness.bus.subscribe(
            CACHE_INVALIDATE, replica, consumer="cache", delivery=Delivery.BROADCAST
        )

    sent = [f"inv{i}" for i in range(5)]
    for event_id in sent:
        await harness.bus.publish(CACHE_INVALIDATE, b"", event_id=event_id)

    await first.wait_for(lambda: len(first.received) >= len(sent))
    await second.wait_for(lambda: len(second.received) >= len(sent))
    assert first.ids() == second.ids() == sent  # all, in order, and nothing from before


async def test_an_unacked_event_survives_its_subscriber_and_goes_to_the_next(
    harness: Harness,
) -> None:
    crashing = Recorder(fail=lambda _: True)
    subscription = await harness.bus.subscribe(LLM_COMPLETED, crashing, consumer="durable")
    await harness.bus.publish(LLM_COMPLETED, b"x", event_id="survivor")
    await crashing.wait_for(lambda: len(crashing.received) >= 1)
    await subscription.stop()

    successor = Recorder()
    await harness.bus.subscribe(LLM_COMPLETED, successor, consumer="durable")

    await successor.wait_for(lambda: len(successor.received) == 1)
    assert successor.received[0].event_id == "survivor"
    assert successor.received[0].attempt == len(crashing.received) + 1
    await settled(harness, "durable", LLM_COMPLETED)


async def test_stop_lets_the_handler_in_flight_finish_and_ack(harness: Harness) -> None:
    started, release = asyncio.Event(), asyncio.Event()

    async def slow(envelope: Envelope) -> None:
        started.set()
        await release.wait()

    subscription = await harness.bus.subscribe(LLM_COMPLETED, slow, consumer="svc")
    await harness.bus.publish(LLM_COMPLETED, b"x", event_id="in-flight")
    async with asyncio.timeout(WAIT):
        await started.wait()

    stopping = asyncio.create_task(subscription.stop())
    await asyncio.sleep(0.05)
    assert not stopping.done()
    release.set()
    async with asyncio.timeout(WAIT):
        await stopping
    await settled(harness, "svc", LLM_COMPLETED)


async def test_subjects_outside_the_catalog_and_broadcast_work_queues_are_refused(
    harness: Harness,
) -> None:
    ignore = Recorder()
    with pytest.raises(InvalidArgumentError):
        await harness.bus.publish("nowhere.at.all", b"", event_id="x")
    with pytest.raises(InvalidArgumentError):
        await harness.bus.publish("llm.*", b"", event_id="x")
    with pytest.raises(InvalidArgumentError):
        await harness.bus.publish(LLM_COMPLETED, b"", event_id="")
    with pytest.raises(InvalidArgumentError):
        await harness.bus.subscribe("nowhere.at.all", ignore, consumer="svc")
    with pytest.raises(InvalidArgumentError):
        await harness.bus.subscribe("search.*", ignore, consumer="svc")  # two streams
    with pytest.raises(InvalidArgumentError):
        await harness.bus.subscribe(
            SEARCH_EVALUATE, ignore, consumer="svc", delivery=Delivery.BROADCAST
        )


# --- real NATS only -------------------------------------------------------------------


@pytest.fixture
async def real(nats_server: NatsServer) -> AsyncIterator[NatsHarness]:
    harness = await NatsHarness.start(nats_server)
    yield harness
    await harness.close()


@pytest.mark.nats
async def test_acked_events_survive_a_server_restart_and_publishing_resumes(
    real: NatsHarness, nats_server: NatsServer
) -> None:
    live = Recorder()
    await real.bus.subscribe(LLM_COMPLETED, live, consumer="live")
    before = [f"before{i}" for i in range(5)]
    for event_id in before:
        await real.bus.publish(LLM_COMPLETED, b"", event_id=event_id)
    await live.wait_for(lambda: len(live.received) == len(before))

    await nats_server.restart()

    late = Recorder()
    await real.bus.subscribe(LLM_COMPLETED, late, consumer="late")
    await real.bus.publish(LLM_COMPLETED, b"", event_id="after")
    await late.wait_for(lambda: late.ids() == [*before, "after"])
    # the subscription from before the restart kept fetching, and promptly: it asks
    # again on reconnect rather than waiting out the fetch the server forgot
    async with asyncio.timeout(3):
        await live.wait_for(lambda: live.ids() == [*before, "after"])


@pytest.mark.nats
async def test_a_publish_while_the_server_is_down_completes_when_it_is_back(
    real: NatsHarness, nats_server: NatsServer
) -> None:
    recorder = Recorder()
    await real.bus.subscribe(LLM_COMPLETED, recorder, consumer="svc")
    await nats_server.stop()
    publishing = asyncio.create_task(real.bus.publish(LLM_COMPLETED, b"", event_id="outage"))
    await asyncio.sleep(0.3)
    assert not publishing.done()

    await nats_server.start()

    async with asyncio.timeout(WAIT):
        await publishing
    await recorder.wait_for(lambda: recorder.ids() == ["outage"])


@pytest.mark.nats
@pytest.mark.parametrize("consumer_lost", [False, True], ids=["consumer-kept", "consumer-lost"])
async def test_a_broadcast_subscriber_that_lost_its_connection_gets_what_it_missed(
    real: NatsHarness, nats_server: NatsServer, consumer_lost: bool
) -> None:
    """A cache replica cut off from NATS while others publish invalidations must apply them
    once it is back — also when the server dropped its consumer meanwhile (an outage longer
    than ``broadcast_inactive_threshold``): it is remade from where it left off."""
    proxy = PausableProxy("127.0.0.1", nats_server.port)
    await proxy.start()
    replica = await JetStreamBus.connect(
        f"nats://127.0.0.1:{proxy.port}", name="replica", options=FAST
    )
    try:
        recorder = Recorder()
        subscription = await replica.subscribe(
            CACHE_INVALIDATE, recorder, consumer="cache", delivery=Delivery.BROADCAST
        )
        await real.bus.publish(CACHE_INVALIDATE, b"", event_id="before")
        await recorder.wait_for(lambda: recorder.ids() == ["before"])

        await proxy.pause()
        missed = [f"missed{i}" for i in range(3)]
        for event_id in missed:  # published by another replica while this one is cut off
            await real.bus.publish(CACHE_INVALIDATE, b"", event_id=event_id)
        if consumer_lost:
            stream = stream_for(CACHE_INVALIDATE).name
            await real._probe.jetstream().delete_consumer(stream, subscription.consumer)  # type: ignore[attr-defined]
        await proxy.resume()

        async with asyncio.timeout(15):
            await recorder.wait_for(lambda: recorder.ids() == ["before", *missed])
        await real.bus.publish(CACHE_INVALIDATE, b"", event_id="after")
        await recorder.wait_for(lambda: recorder.ids() == ["before", *missed, "after"])
    finally:
        await replica.close()
        await proxy.close()


async def test_connect_to_a_closed_port_fails_fast_with_unavailable() -> None:
    with socket.socket() as probe:  # a port that was free a moment ago: nobody listens
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    started = time.monotonic()
    with pytest.raises(UnavailableError) as caught:
        await JetStreamBus.connect(
            f"nats://127.0.0.1:{port}", name="t", connect_timeout=0.5, retries=2, backoff=0.05
        )

    assert time.monotonic() - started < 3
    assert f"cannot reach NATS at nats://127.0.0.1:{port}" in caught.value.message
    assert "after 3 attempts" in caught.value.message
