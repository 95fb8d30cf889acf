"""An in-memory provider for unit tests of the request path. Never used by the product."""

from __future__ import annotations

from collections.abc import AsyncIterator

from llmproxy.gateway.providers.port import ChatRequest, ChatResult, StreamEvent
from llmproxy.platform.errors import ProviderError

__all__ = ["FakeProvider"]


class FakeProvider:
    """Answers with a fixed text (one 'token' per word), or fails when told to."""

    def __init__(self, name: str = "fake", *, answer: str = "Paris.", fail: str = "") -> None:
        self.name = name
        self.answer = answer
        self.fail = fail
        self.requests: list[ChatRequest] = []

    def _result(self, request: ChatRequest) -> ChatResult:
        prompt_words = sum(len(m.content.split()) for m in request.messages)
        return ChatResult(
            text=self.answer,
            finish_reason="stop",
            input_tokens=prompt_words,
            output_tokens=len(self.answer.split()),
            time_to_first_token_s=0.001,
            latency_s=0.002,
        )

    async def complete(self, request: ChatRequest) -> ChatResult:
        self.requests.append(request)
        if self.fail:
            raise ProviderError(self.fail, provider=self.name)
        return self._result(request)

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        self.requests.append(request)
        if self.fail:
            raise ProviderError(self.fail, provider=self.name)
        for word in self.answer.split(" "):
            yield StreamEvent(delta=word + " ")
        yield StreamEvent(result=self._result(request))

    async def close(self) -> None:
        return None
