"""Adapter for Anthropic's Messages API (``POST /v1/messages``), over httpx.

Anthropic differs from the OpenAI shape in ways this module absorbs: the system prompt
is a top-level field, ``max_tokens`` is required, roles must alternate starting with the
user, and streaming is a typed SSE event sequence. Errors map once, here, to
:class:`ProviderError` (429, 529 "overloaded" and 5xx are retryable).
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx

from llmproxy.gateway.providers.port import ChatRequest, ChatResult, StreamEvent
from llmproxy.platform.errors import DeadlineExceededError, ProviderError

__all__ = ["AnthropicProvider", "to_anthropic_body"]

API_VERSION = "2023-06-01"
#: Anthropic requires max_tokens; used when the caller set none
DEFAULT_MAX_TOKENS = 1024
_STOP_REASONS = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length"}


def to_anthropic_body(request: ChatRequest, *, stream: bool = False) -> dict[str, Any]:
    """The Messages API body for ``request`` (pure)."""
    system = "\n\n".join(m.content for m in request.messages if m.role == "system")
    turns: list[dict[str, str]] = []
    for message in request.messages:
        if message.role == "system":
            continue
        role = "assistant" if message.role == "assistant" else "user"
        if turns and turns[-1]["role"] == role:
            # consecutive turns of one role are merged: the API wants them alternating
            turns[-1]["content"] += "\n\n" + message.content
        else:
            turns.append({"role": role, "content": message.content})
    if not turns or turns[0]["role"] != "user":
        turns.insert(0, {"role": "user", "content": "(continue)"})
    body: dict[str, Any] = {
        "model": request.model,
        "messages": turns,
        "max_tokens": request.max_tokens or DEFAULT_MAX_TOKENS,
    }
    if system:
        body["system"] = system
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.top_p is not None:
        body["top_p"] = request.top_p
    if request.stop:
        body["stop_sequences"] = list(request.stop)
    if stream:
        body["stream"] = True
    return body


class AnthropicProvider:
    def __init__(
        self,
        name: str,
        *,
        base_url: str = "https://api.anthropic.com/v1",
        api_key: str,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.name = name
        self._base_url = base_url.rstrip("/")
        self._client = httpx.AsyncClient(
            base_url=self._base_url,
            headers={"x-api-key": api_key, "anthropic-version": API_VERSION},
            transport=transport,
        )

    async def complete(self, request: ChatRequest) -> ChatResult:
        started = time.perf_counter()
        try:
            response = await self._client.post(
                "/messages", json=to_anthropic_body(request), timeout=request.timeout_s
            )
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from exc
        if response.status_code != 200:
            raise self._status_error(response.status_code, response.text)
        body = response.json()
        elapsed = time.perf_counter() - started
        usage = body.get("usage") or {}
        text = "".join(
            b.get("text", "") for b in body.get("content", []) if b.get("type") == "text"
        )
        cached = int(usage.get("cache_read_input_tokens") or 0)
        return ChatResult(
            text=text,
            finish_reason=_STOP_REASONS.get(body.get("stop_reason") or "", "stop"),
            # Anthropic counts cached reads apart from input_tokens; the port counts them in
            input_tokens=int(usage.get("input_tokens") or 0) + cached,
            output_tokens=int(usage.get("output_tokens") or 0),
            cached_input_tokens=cached,
            time_to_first_token_s=elapsed,
            latency_s=elapsed,
        )

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        started = time.perf_counter()
        first: float | None = None
        parts: list[str] = []
        input_tokens = output_tokens = cached = 0
        finish = "stop"
        try:
            async with self._client.stream(
                "POST",
                "/messages",
                json=to_anthropic_body(request, stream=True),
                timeout=request.timeout_s,
            ) as response:
                if response.status_code != 200:
                    raise self._status_error(
                        response.status_code, (await response.aread()).decode()
                    )
                async for line in response.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    event = json.loads(line[5:])
                    kind = event.get("type")
                    if kind == "message_start":
                        usage = event.get("message", {}).get("usage", {})
                        cached = int(usage.get("cache_read_input_tokens") or 0)
                        input_tokens = int(usage.get("input_tokens") or 0) + cached
                    elif kind == "content_block_delta":
                        delta = event.get("delta", {}).get("text", "")
                        if delta:
                            if first is None:
                                first = time.perf_counter() - started
                            parts.append(delta)
                            yield StreamEvent(delta=delta)
                    elif kind == "message_delta":
                        reason = event.get("delta", {}).get("stop_reason") or ""
                        finish = _STOP_REASONS.get(reason, finish)
                        output_tokens = int(event.get("usage", {}).get("output_tokens") or 0)
                    elif kind == "error":
                        error = event.get("error", {})
                        raise ProviderError(
                            f"{self.name} failed mid-stream: {error.get('message', error)}",
                            provider=self.name,
                            retryable=error.get("type") == "overloaded_error",
                        )
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from exc
        elapsed = time.perf_counter() - started
        yield StreamEvent(
            result=ChatResult(
                text="".join(parts),
                finish_reason=finish,
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                cached_input_tokens=cached,
                time_to_first_token_s=first if first is not None else elapsed,
                latency_s=elapsed,
            )
        )

    def _transport_error(self, exc: httpx.HTTPError) -> Exception:
        if isinstance(exc, httpx.TimeoutException):
            return DeadlineExceededError(f"{self.name} did not answer in time ({self._base_url})")
        return ProviderError(
            f"cannot reach {self.name} at {self._base_url}: {exc}",
            provider=self.name,
            retryable=True,
        )

    def _status_error(self, status: int, text: str) -> ProviderError:
        try:
            detail = json.loads(text).get("error", {}).get("message") or text
        except (ValueError, AttributeError):
            detail = text
        return ProviderError(
            f"{self.name} answered HTTP {status}: {detail}",
            provider=self.name,
            retryable=status in (408, 429, 529) or status >= 500,
        )

    async def close(self) -> None:
        await self._client.aclose()
