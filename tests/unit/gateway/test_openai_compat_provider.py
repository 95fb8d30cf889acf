"""The OpenAI-compatible provider over real HTTP: answers, usage, and every failure mapped to
an error a caller can act on (retryable or not, naming the provider)."""

from __future__ import annotations

import asyncio

import pytest

from llmproxy.gateway.fake_upstream import ANSWER, FakeUpstream
from llmproxy.gateway.providers.openai_compat import OpenAICompatibleProvider
from llmproxy.gateway.providers.port import ChatMessage, ChatRequest
from llmproxy.platform.errors import DeadlineExceededError, ProviderError
from llmproxy.platform.processes import free_port
from tests.support.fake_openai import Behaviour, FakeOpenAIServer

REQUEST = ChatRequest(
    model="fake-model",
    messages=(ChatMessage("system", "Be brief."), ChatMessage("user", "Capital of France?")),
    max_tokens=16,
    temperature=0.0,
    stop=("\n",),
    timeout_s=5.0,
)


async def test_a_completion_carries_the_answer_and_the_upstream_usage() -> None:
    with FakeOpenAIServer(Behaviour(answer="Paris.")) as upstream:
        provider = OpenAICompatibleProvider("fake", base_url=upstream.base_url, api_key="k")
        try:
            result = await provider.complete(REQUEST)
        finally:
            await provider.close()
    assert (result.text, result.finish_reason) == ("Paris.", "stop")
    assert (result.input_tokens, result.output_tokens) == (5, 2)
    assert result.latency_s > 0
    sent = upstream.requests[0]
    assert sent["model"] == "fake-model"
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."}
    assert (sent["max_tokens"], sent["temperature"], sent["stop"]) == (16, 0.0, ["\n"])
    assert "top_p" not in sent and "seed" not in sent  # unset parameters are not sent


@pytest.mark.parametrize(("status", "retryable"), [(503, True), (429, True), (400, False)])
async def test_an_error_status_names_the_provider_and_says_whether_to_retry(
    status: int, retryable: bool
) -> None:
    with FakeOpenAIServer(Behaviour(status=status)) as upstream:
        provider = OpenAICompatibleProvider("fake", base_url=upstream.base_url, max_retries=0)
        try:
            with pytest.raises(ProviderError) as caught:
                await provider.complete(REQUEST)
        finally:
            await provider.close()
    assert caught.value.message == f"fake answered HTTP {status}: model overloaded"
    assert caught.value.retryable is retryable
    assert len(upstream.requests) == 1


async def test_retryable_errors_are_retried_max_retries_times() -> None:
    with FakeOpenAIServer(Behaviour(status=503)) as upstream:
        provider = OpenAICompatibleProvider("fake", base_url=upstream.base_url, max_retries=1)
        try:
            with pytest.raises(ProviderError):
                await provider.complete(REQUEST)
        finally:
            await provider.close()
    assert len(upstream.requests) == 2


async def test_an_unreachable_upstream_is_a_retryable_error_naming_the_address() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    provider = OpenAICompatibleProvider("fake", base_url=url, max_retries=0)
    try:
        with pytest.raises(ProviderError) as caught:
            await provider.complete(REQUEST)
    finally:
        await provider.close()
    assert caught.value.retryable
    assert f"cannot reach fake at {url}" in caught.value.message


async def test_a_slow_upstream_is_a_deadline_error() -> None:
    with FakeOpenAIServer(Behaviour(delay_s=1.0)) as upstream:
        provider = OpenAICompatibleProvider("fake", base_url=upstream.base_url, max_retries=0)
        try:
            with pytest.raises(DeadlineExceededError, match="fake did not answer in time"):
                await provider.complete(ChatRequest(model="m", messages=(), timeout_s=0.2))
        finally:
            await provider.close()


async def test_a_stream_yields_the_text_in_pieces_then_the_upstream_usage() -> None:
    async with FakeUpstream() as upstream:
        provider = OpenAICompatibleProvider("fake", base_url=upstream.base_url)
        try:
            events = [e async for e in provider.stream(REQUEST)]
        finally:
            await provider.close()
    deltas = [e.delta for e in events if e.delta]
    assert len(deltas) > 1 and "".join(deltas).strip() == ANSWER
    final = events[-1].result
    assert final is not None and final.text == "".join(deltas)
    assert (final.input_tokens, final.output_tokens) == (12, 7)
    assert final.finish_reason == "stop"


async def test_a_stream_refused_up_front_is_the_same_readable_error() -> None:
    with FakeOpenAIServer(Behaviour(status=503)) as upstream:
        provider = OpenAICompatibleProvider("fake", base_url=upstream.base_url)
        try:
            with pytest.raises(ProviderError) as caught:
                _ = [e async for e in provider.stream(REQUEST)]
        finally:
            await provider.close()
    assert caught.value.message == "fake answered HTTP 503: model overloaded"
    assert caught.value.retryable


async def test_an_error_event_inside_a_stream_ends_it_with_the_providers_message() -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n"
            b'data: {"choices": [{"index": 0, "delta": {"content": "Par"}}]}\n\n'
            b'data: {"error": {"message": "the model crashed"}}\n\n'
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    provider = OpenAICompatibleProvider("fake", base_url=f"http://127.0.0.1:{port}/v1")
    seen: list[str] = []
    try:
        with pytest.raises(ProviderError, match="the model crashed"):
            async for event in provider.stream(REQUEST):
                seen.append(event.delta)
    finally:
        await provider.close()
        server.close()
    assert seen == ["Par"]  # what came before the error was passed on
