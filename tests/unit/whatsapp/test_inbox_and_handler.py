"""The inbox (SQLite) and the message handler, with the fake Graph server over HTTP and an
in-memory gateway: de-duplication, ordering, leases, retries, resumable sends, windows."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from llmproxy.platform.db import create_engine, session_factory, upgrade
from llmproxy.platform.db.models import WhatsAppMessage, WhatsAppStatus, WhatsAppUser
from llmproxy.platform.errors import RateLimitedError, UnavailableError
from llmproxy.v1 import gateway_pb2
from llmproxy.whatsapp.core import ChannelPolicy, UsageSummary
from llmproxy.whatsapp.graph import GraphClient, GraphConfig
from llmproxy.whatsapp.inbox import SqlInbox
from llmproxy.whatsapp.payload import parse_notification
from llmproxy.whatsapp.upstream import Answer
from llmproxy.whatsapp.worker import ERASED, SORRY, Delivery, MessageHandler
from tests.support.databases import sqlite_url
from tests.support.fake_graph import (
    PHONE_NUMBER_ID,
    FakeGraphServer,
    notification,
    status_update,
    text_message,
)

ALICE, BOB = "31600000001", "31600000002"
T0 = datetime(2026, 12, 2, 18, 0, tzinfo=UTC)


@dataclass
class FakeGateway:
    """The gateway as the handler sees it (the integration test uses the real one)."""

    answer: str = "Paris."
    wait: timedelta = timedelta(seconds=1)
    failures: list[Exception] = field(default_factory=list)
    asked: list[gateway_pb2.AskRequest] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)

    async def ask(self, request, on_accepted):  # type: ignore[no-untyped-def]
        self.asked.append(request)
        if self.failures:
            raise self.failures.pop(0)
        await on_accepted(self.wait)
        return Answer(
            text=self.answer,
            request_id=request.request_id,
            conversation_id=request.scope.conversation_id or f"conv-{len(self.asked)}",
            model="fake-small",
            cost_nanousd=26_000,
        )

    async def usage(self, user_id: str, since: datetime) -> UsageSummary:
        return UsageSummary(2, 1, 52_000, 300_000)

    async def models(self) -> list[str]:
        return ["fake-large", "fake-small"]

    async def delete_conversation(self, conversation_id: str) -> None:
        self.deleted.append(conversation_id)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Channel:
    inbox: SqlInbox
    handler: MessageHandler
    gateway: FakeGateway
    graph: FakeGraphServer
    clock: Clock
    url: str

    async def post(self, *messages: dict, statuses: list[dict] | None = None) -> list[str]:
        body = notification(list(messages), statuses)
        return await self.inbox.accept(
            parse_notification(body, phone_number_id=PHONE_NUMBER_ID), self.clock()
        )

    async def run(self, owner: str = "w1") -> int:
        """Claim and handle until nothing is ready; how many were handled."""
        handled = 0
        while claimed := await self.inbox.claim(
            8, busy=set(), owner=owner, now=self.clock(), lease=timedelta(minutes=5)
        ):
            for item in claimed:
                await self.handler(item)
                handled += 1
        return handled

    def texts(self, to: str = ALICE) -> list[str]:
        return [c.text for c in self.graph.sent(to)]

    async def scalar(self, query):  # type: ignore[no-untyped-def]
        engine = create_engine(self.url)
        try:
            async with session_factory(engine)() as session:
                return await session.scalar(query)
        finally:
            await engine.dispose()


@pytest.fixture
def graph() -> Iterator[FakeGraphServer]:
    with FakeGraphServer() as server:
        yield server


def _message(wa_id: str, body: str, n: int, clock: Clock) -> dict:
    return text_message(wa_id, body, message_id=f"wamid.{wa_id}.{n}",
                        timestamp=int(clock().timestamp()) - 1)  # fmt: skip


@pytest.fixture(scope="module")
def migrated_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated SQLite file per module; each test gets a copy (a migration is ~1 s)."""
    folder = tmp_path_factory.mktemp("whatsapp-template")
    asyncio.run(upgrade(sqlite_url(folder)))
    return folder / "llmproxy.db"


@pytest.fixture
def sqlite_copy(migrated_file: Path, tmp_path: Path) -> str:
    shutil.copy(migrated_file, tmp_path / "llmproxy.db")
    return sqlite_url(tmp_path)


@pytest.fixture
async def channel(sqlite_copy: str, graph: FakeGraphServer) -> AsyncIterator[Channel]:
    sqlite_db_url = sqlite_copy
    engine = create_engine(sqlite_db_url)
    inbox = SqlInbox(session_factory(engine), dialect="sqlite")
    clock = Clock()
    gateway = FakeGateway()
    sender = GraphClient(GraphConfig(graph.base_url, "v21.0", PHONE_NUMBER_ID, "token", retries=0))
    handler = MessageHandler(
        inbox,
        gateway,
        sender,
        policy=ChannelPolicy(replay_window=timedelta(hours=48)),
        delivery=Delivery(tenant_id="acme", window_template="", max_attempts=3),
        clock=clock,
    )
    try:
        yield Channel(inbox, handler, gateway, graph, clock, sqlite_db_url)
    finally:
        await sender.close()
        await engine.dispose()


async def test_a_question_delivered_three_times_is_answered_once(channel: Channel) -> None:
    question = _message(ALICE, "What is the capital of France?", 1, channel.clock)
    assert await channel.post(question) == [question["id"]]
    assert await channel.post(question) == []
    assert await channel.run() == 1
    assert await channel.post(question) == []  # a redelivery after the answer, too
    assert await channel.run() == 0
    assert channel.texts() == ["Paris."]
    call = channel.graph.sent(ALICE)[0]
    assert call.body["context"] == {"message_id": question["id"]}
    asked = channel.gateway.asked[0]
    assert asked.prompt == "What is the capital of France?"
    assert asked.scope.user_id.startswith("wa-") and ALICE not in asked.scope.user_id
    assert asked.request_id == f"wa-{question['id']}"


async def test_statuses_are_recorded_once_and_not_answered(channel: Channel) -> None:
    statuses = [status_update("wamid.out.1", "delivered", ALICE)]
    await channel.post(statuses=statuses)
    await channel.post(statuses=[*statuses, status_update("wamid.out.1", "read", ALICE)])
    assert await channel.run() == 0
    assert await channel.scalar(select(func.count()).select_from(WhatsAppStatus)) == 2
    assert channel.graph.calls == []


async def test_a_users_messages_are_answered_in_order_others_in_parallel(channel: Channel) -> None:
    await channel.post(
        _message(ALICE, "/mode best", 1, channel.clock),
        _message(ALICE, "first question", 2, channel.clock),
        _message(BOB, "bob's question", 1, channel.clock),
    )
    claimed = await channel.inbox.claim(
        8, busy=set(), owner="w1", now=channel.clock(), lease=timedelta(minutes=5)
    )
    # one per user: Alice's question waits for her /mode to be done
    assert [c.message.text for c in claimed] == ["/mode best", "bob's question"]
    for item in claimed:
        await channel.handler(item)
    assert await channel.run() == 1
    assert channel.texts()[0].startswith("Mode: best.")
    alice_ask = next(r for r in channel.gateway.asked if r.prompt == "first question")
    assert alice_ask.preferences.objective == 3  # OBJECTIVE_QUALITY: /mode applied first


async def test_a_crashed_workers_message_is_taken_over_when_its_lease_runs_out(
    channel: Channel,
) -> None:
    await channel.post(_message(ALICE, "hello?", 1, channel.clock))
    lost = await channel.inbox.claim(
        8, busy=set(), owner="dead", now=channel.clock(), lease=timedelta(minutes=5)
    )
    assert len(lost) == 1  # ...and that worker dies here
    assert await channel.run("w2") == 0  # still leased
    channel.clock.now += timedelta(minutes=5, seconds=1)
    assert await channel.run("w2") == 1
    assert channel.texts() == ["Paris."]


async def test_an_unavailable_gateway_is_retried_later_then_apologised_for(
    channel: Channel,
) -> None:
    channel.gateway.failures = [UnavailableError("the gateway is unavailable")] * 5
    await channel.post(_message(ALICE, "hello?", 1, channel.clock))
    assert await channel.run() == 1
    assert channel.texts() == [] and await channel.run() == 0  # waits for its retry time
    for _ in range(3):
        channel.clock.now += timedelta(minutes=1)
        await channel.run()
    assert len(channel.gateway.asked) == 3  # max_attempts
    assert channel.texts() == [SORRY]
    outcome = await channel.scalar(select(WhatsAppMessage.outcome))
    assert outcome == "failed"


async def test_a_limit_at_the_gateway_gets_a_polite_reply(channel: Channel) -> None:
    channel.gateway.failures = [RateLimitedError("daily budget of tenant acme reached")]
    await channel.post(_message(ALICE, "hello?", 1, channel.clock))
    await channel.run()
    assert channel.texts() == [
        "I can't answer more questions right now: a usage limit was reached "
        "(daily budget of tenant acme reached). Please try again later."
    ]


async def test_a_send_that_fails_midway_resends_only_the_missing_parts(
    channel: Channel,
) -> None:
    paragraph = ("word " * 700).strip() + "."
    channel.gateway.answer = "\n\n".join([paragraph] * 3)  # 3 parts of ~3,500 characters
    channel.graph.fail_next(200, 200, 500)  # "Got it"? no: wait is short; part 1, 2 ok, 3 fails
    await channel.post(_message(ALICE, "tell me a long story", 1, channel.clock))
    await channel.run()
    assert len(channel.texts()) == 2
    channel.clock.now += timedelta(minutes=1)
    await channel.run()
    assert channel.texts() == [paragraph] * 3
    assert len(channel.gateway.asked) == 1  # the answer was kept, not asked for again


async def test_a_long_predicted_wait_sends_got_it_first(channel: Channel) -> None:
    channel.gateway.wait = timedelta(seconds=42.5)
    await channel.post(_message(ALICE, "a hard question", 1, channel.clock))
    await channel.run()
    assert channel.texts() == ["Got it — expect an answer in about 43 seconds.", "Paris."]


async def test_outside_the_24_hour_window_a_template_or_nothing(channel: Channel) -> None:
    old = text_message(ALICE, "still there?", message_id="wamid.old",
                       timestamp=int((T0 - timedelta(hours=30)).timestamp()))  # fmt: skip
    await channel.post(old)
    await channel.run()
    assert channel.graph.calls == []
    assert await channel.scalar(select(WhatsAppMessage.outcome)) == "window_closed"

    channel.handler._delivery = Delivery(tenant_id="acme", window_template="we_are_back")
    old2 = dict(old, id="wamid.old2")
    await channel.post(old2)
    await channel.run()
    (call,) = channel.graph.sent(ALICE)
    assert call.body["type"] == "template" and call.body["template"]["name"] == "we_are_back"


async def test_commands_cost_models_and_delete(channel: Channel) -> None:
    post, clock = channel.post, channel.clock
    await post(_message(ALICE, "first question", 1, clock))
    await channel.run()
    await post(_message(ALICE, "/reset", 2, clock))
    await channel.run()
    await post(_message(ALICE, "second question", 3, clock))
    await channel.run()
    assert [r.scope.conversation_id for r in channel.gateway.asked] == ["", ""]  # reset: new one
    await post(_message(ALICE, "/model fake-large", 4, clock),
               _message(ALICE, "/model gpt-9", 5, clock),
               _message(ALICE, "/cost", 6, clock))  # fmt: skip
    await channel.run()
    assert channel.texts()[-3:] == [
        "Model: fake-large. Send /model auto to let me choose again.",
        "I don't know the model 'gpt-9'. Models: fake-large, fake-small.",
        "This week: 2 questions, cost $0.000052, saved $0.0003 compared with the reference "
        "model. 1 answered from the cache for free.",
    ]
    assert await channel.scalar(select(WhatsAppUser.pinned_model)) == "fake-large"

    await post(_message(ALICE, "/delete", 7, clock))
    await channel.run()
    assert sorted(channel.gateway.deleted) == ["conv-1", "conv-2"]
    assert channel.texts()[-1] == ERASED
    assert await channel.scalar(select(func.count()).select_from(WhatsAppUser)) == 0
    assert (
        await channel.scalar(
            select(func.count()).select_from(WhatsAppMessage).where(WhatsAppMessage.wa_id == ALICE)
        )
        == 0
    )
    # what is left of her messages: ids only, so a late redelivery is still not answered
    assert await post(_message(ALICE, "first question", 1, clock)) == []
    bodies = await channel.scalar(select(func.group_concat(WhatsAppMessage.body, "")))
    assert bodies in ("", None)
    assert json.dumps(channel.gateway.deleted)  # every conversation went to the context service
