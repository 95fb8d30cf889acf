"""The OpenAI-compatible provider over real HTTP: answers, usage, and every failure mapped to
an error a caller can act on (retryable or not, naming the provider)."""

from __future__ import annotations

import pytest

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
