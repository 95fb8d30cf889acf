"""The Graph API client against a local fake Graph server (real HTTP)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from llmproxy.whatsapp.graph import GraphClient, GraphConfig, GraphError, backoff_delays
from tests.support.fake_graph import PHONE_NUMBER_ID, FakeGraphServer


@pytest.fixture
def graph() -> Iterator[FakeGraphServer]:
    with FakeGraphServer(retry_after="3") as server:
        yield server


def client(graph: FakeGraphServer, waits: list[float], retries: int = 3) -> GraphClient:
    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    config = GraphConfig(
        base_url=graph.base_url + "/",
        version="v21.0",
        phone_number_id=PHONE_NUMBER_ID,
        access_token="token-123",
        retries=retries,
        backoff_s=0.5,
        max_backoff_s=8.0,
    )
    return GraphClient(config, sleep=sleep, jitter=lambda: 0.0)


async def test_a_text_goes_to_the_numbers_messages_endpoint_with_the_bearer_token(
    graph: FakeGraphServer,
) -> None:
    sender = client(graph, [])
    try:
        message_id = await sender.send_text("31600000001", "Paris.", reply_to="wamid.in.1")
        template_id = await sender.send_template("31600000001", "come_back", "en_US")
    finally:
        await sender.close()
    first, second = graph.sent()
    assert message_id == "wamid.fake.1" and template_id == "wamid.fake.2"
    assert first.path == f"/v21.0/{PHONE_NUMBER_ID}/messages"
    assert first.headers["authorization"] == "Bearer token-123"
    assert first.body == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "31600000001",
        "type": "text",
        "text": {"preview_url": False, "body": "Paris."},
        "context": {"message_id": "wamid.in.1"},
    }
    assert second.body["template"] == {"name": "come_back", "language": {"code": "en_US"}}


async def test_429_and_5xx_are_retried_with_backoff_honouring_retry_after(
    graph: FakeGraphServer,
) -> None:
    waits: list[float] = []
    graph.fail_next(500, 503, 429)
    sender = client(graph, waits)
    try:
        assert await sender.send_text("31600000001", "Paris.") == "wamid.fake.1"
    finally:
        await sender.close()
    assert [c.status for c in graph.calls] == [500, 503, 429, 200]
    assert waits == [0.5, 1.0, 3.0]  # doubling, then the server's Retry-After
    assert len(graph.sent()) == 1


async def test_retries_run_out_and_other_4xx_are_final(graph: FakeGraphServer) -> None:
    waits: list[float] = []
    graph.fail_next(500, 500, 500)
    sender = client(graph, waits, retries=2)
    try:
        with pytest.raises(GraphError, match="answered 500") as caught:
            await sender.send_text("31600000001", "Paris.")
        assert caught.value.retryable and len(graph.calls) == 3
        graph.fail_next(400)
        with pytest.raises(GraphError, match="answered 400") as refused:
            await sender.send_text("31600000001", "Paris.")
        assert not refused.value.retryable and len(graph.calls) == 4
    finally:
        await sender.close()
    assert graph.sent() == []


def test_backoff_doubles_and_is_capped() -> None:
    assert backoff_delays(5, base_s=0.5, max_s=3.0, jitter=0.0) == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert backoff_delays(2, base_s=1.0, max_s=10.0, jitter=1.0) == [1.5, 3.0]
