"""The Anthropic adapter against a mock Messages API: shape, answers, streams, errors."""

from __future__ import annotations

import json

import httpx
import pytest

from llmproxy.gateway.providers.anthropic import AnthropicProvider, to_anthropic_body
from llmproxy.gateway.providers.port import ChatMessage, ChatRequest
from llmproxy.platform.errors import ProviderError

REQUEST = ChatRequest(
    model="claude-3-5-haiku-latest",
    messages=(
        ChatMessage("system", "Be brief."),
        ChatMessage("user", "Hi"),
        ChatMessage("user", "Capital of France?"),
    ),
    temperature=0.2,
)


def test_the_body_moves_the_system_prompt_and_merges_turns_of_one_role() -> None:
    body = to_anthropic_body(REQUEST)
    assert body["system"] == "Be brief." and body["max_tokens"] == 1024
    assert body["messages"] == [{"role": "user", "content": "Hi\n\nCapital of France?"}]


def _provider(handler) -> AnthropicProvider:  # type: ignore[no-untyped-def]
    return AnthropicProvider("claude", api_key="k", transport=httpx.MockTransport(handler))


async def test_an_answer_and_its_usage_come_back_in_the_port_shape() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers["x-api-key"] == "k" and request.headers["anthropic-version"]
        return httpx.Response(200, json={
            "content": [{"type": "text", "text": "Paris."}], "stop_reason": "end_turn",
            "usage": {"input_tokens": 10, "output_tokens": 3, "cache_read_input_tokens": 4},
        })  # fmt: skip

    result = await _provider(handler).complete(REQUEST)
    assert (result.text, result.finish_reason) == ("Paris.", "stop")
    assert (result.input_tokens, result.cached_input_tokens, result.output_tokens) == (14, 4, 3)


async def test_a_stream_yields_text_then_the_usage() -> None:
    events = [
        {"type": "message_start", "message": {"usage": {"input_tokens": 9}}},
        {"type": "content_block_delta", "delta": {"type": "text_delta", "text": "Par"}},
        {"type": "content_block_delta", "delta": {"type": "text_delta", "text": "is."}},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "max_tokens"},
            "usage": {"output_tokens": 2},
        },
        {"type": "message_stop"},
    ]
    sse = "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events)
    provider = _provider(lambda request: httpx.Response(200, text=sse))
    out = [event async for event in provider.stream(REQUEST)]
    assert [e.delta for e in out[:-1]] == ["Par", "is."]
    final = out[-1].result
    assert final is not None and (final.text, final.finish_reason) == ("Paris.", "length")
    assert (final.input_tokens, final.output_tokens) == (9, 2)


@pytest.mark.parametrize(("status", "retryable"), [(529, True), (500, True), (400, False)])
async def test_errors_name_the_provider_and_say_if_a_retry_may_help(
    status: int, retryable: bool
) -> None:
    body = {"type": "error", "error": {"type": "x", "message": "nope"}}
    provider = _provider(lambda request: httpx.Response(status, json=body))
    with pytest.raises(ProviderError, match=f"claude answered HTTP {status}: nope") as caught:
        await provider.complete(REQUEST)
    assert caught.value.retryable is retryable
