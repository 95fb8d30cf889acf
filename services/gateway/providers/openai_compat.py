"""Adapter for any OpenAI-compatible chat completions API (OpenAI, vLLM, llama.cpp server...).

Built on the official ``openai`` SDK; its exceptions are mapped once, here, to
:class:`ProviderError` with a message a caller can act on.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import openai
from openai import AsyncOpenAI

from llmproxy.gateway.providers.port import ChatRequest, ChatResult, StreamEvent
from llmproxy.platform.errors import DeadlineExceededError, ProviderError
from llmproxy.platform.tokens import count_tokens

__all__ = ["OpenAICompatibleProvider"]


class OpenAICompatibleProvider:
    def __init__(
        self, name: str, *, base_url: str, api_key: str = "", max_retries: int = 1
    ) -> None:
        self.name = name
        self._base_url = base_url
        # Local servers need no key, but the SDK insists on one.
        self._client = AsyncOpenAI(
            base_url=base_url, api_key=api_key or "not-needed", max_retries=max_retries
        )

    def _arguments(self, request: ChatRequest) -> dict[str, Any]:
        args: dict[str, Any] = {
            "model": request.model,
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
            "timeout": request.timeout_s,
        }
        optional = {
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "top_p": request.top_p,
            "seed": request.seed,
            "stop": list(request.stop) or None,
        }
        args.update({k: v for k, v in optional.items() if v is not None})
        return args

    async def complete(self, request: ChatRequest) -> ChatResult:
        started = time.perf_counter()
        try:
            reply = await self._client.chat.completions.create(**self._arguments(request))
        except Exception as exc:
            raise self._translate(exc) from exc
        elapsed = time.perf_counter() - started
        if not reply.choices:
            raise ProviderError(f"{self.name} returned no choices", provider=self.name)
        choice = reply.choices[0]
        usage = reply.usage
        cached = 0
        if usage is not None and usage.prompt_tokens_details is not None:
            cached = usage.prompt_tokens_details.cached_tokens or 0
        return ChatResult(
            text=choice.message.content or "",
            finish_reason=choice.finish_reason or "stop",
            input_tokens=usage.prompt_tokens if usage else 0,
            output_tokens=usage.completion_tokens if usage else 0,
            cached_input_tokens=cached,
            time_to_first_token_s=elapsed,
            latency_s=elapsed,
        )

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        started = time.perf_counter()
        first_token: float | None = None
        parts: list[str] = []
        finish_reason = "stop"
        input_tokens = output_tokens = 0
        try:
            chunks = await self._client.chat.completions.create(
                **self._arguments(request), stream=True, stream_options={"include_usage": True}
            )
            async for chunk in chunks:
                if chunk.usage is not None:
                    input_tokens = chunk.usage.prompt_tokens
                    output_tokens = chunk.usage.completion_tokens
                if not chunk.choices:
                    continue
                choice = chunk.choices[0]
                if choice.finish_reason:
                    finish_reason = choice.finish_reason
                delta = choice.delta.content or ""
                if delta:
                    if first_token is None:
                        first_token = time.perf_counter() - started
                    parts.append(delta)
                    yield StreamEvent(delta=delta)
        except Exception as exc:
            raise self._translate(exc) from exc
        elapsed = time.perf_counter() - started
        text = "".join(parts)
        if not output_tokens and text:
            # Some servers (llama.cpp among them) send no usage when streaming; count the
            # tokens ourselves rather than bill and profile the answer as free.
            input_tokens = sum(count_tokens(m.content) for m in request.messages)
            output_tokens = count_tokens(text)
        yield StreamEvent(
            result=ChatResult(
                text=text,
                finish_reason=finish_reason,
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                time_to_first_token_s=first_token if first_token is not None else elapsed,
                latency_s=elapsed,
            )
        )

    def _translate(self, exc: Exception) -> Exception:
        if isinstance(exc, openai.APITimeoutError):
            return DeadlineExceededError(f"{self.name} did not answer in time ({self._base_url})")
        if isinstance(exc, openai.APIConnectionError):
            return ProviderError(
                f"cannot reach {self.name} at {self._base_url}: {exc}",
                provider=self.name,
                retryable=True,
            )
        if isinstance(exc, openai.APIStatusError):
            retryable = exc.status_code == 429 or exc.status_code >= 500
            # The SDK prefixes "Error code: N - "; the provider's own message is in the body.
            body = exc.body
            detail = body.get("message") if isinstance(body, dict) else None
            detail = detail or exc.message or str(exc)
            return ProviderError(
                f"{self.name} answered HTTP {exc.status_code}: {detail}",
                provider=self.name,
                retryable=retryable,
            )
        if isinstance(exc, ProviderError | DeadlineExceededError):
            return exc
        return ProviderError(f"{self.name} failed: {exc!r}", provider=self.name)

    async def close(self) -> None:
        await self._client.close()
