"""Adapter for any OpenAI-compatible chat completions API (OpenAI, vLLM, llama.cpp server...).

A completion — the gateway's hot path — is one pooled ``aiohttp`` POST with the JSON
encoded and decoded by ``orjson``; a stream is the same POST read as server-sent events.
The official ``openai`` SDK did the same job with request transformation, pydantic reply
models and httpx pool bookkeeping that cost the gateway about 2.5 ms of CPU per request
(``bench/gateway``), more than everything else it does. Errors are mapped once, here, to
:class:`ProviderError` (or :class:`DeadlineExceededError`) with a message a caller can
act on.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson

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
        self._url = base_url.rstrip("/") + "/chat/completions"
        self._headers = {"content-type": "application/json", "accept": "application/json"}
        if api_key:
            self._headers["authorization"] = f"Bearer {api_key}"
        self._max_retries = max_retries
        self._session: aiohttp.ClientSession | None = None

    def _arguments(self, request: ChatRequest) -> dict[str, Any]:
        args: dict[str, Any] = {
            "model": request.model,
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
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

    def _http(self) -> aiohttp.ClientSession:
        # Created on first use, inside the running loop; keep-alive connections pooled.
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=30),
                skip_auto_headers=("User-Agent",),
            )
        return self._session

    async def complete(self, request: ChatRequest) -> ChatResult:
        body = orjson.dumps(self._arguments(request))
        attempt = 0
        while True:
            started = time.perf_counter()
            try:
                data = await self._post(body, request.timeout_s)
                break
            except ProviderError as exc:
                if not exc.retryable or attempt >= self._max_retries:
                    raise
            attempt += 1
            await asyncio.sleep(min(2.0, 0.25 * 2**attempt))
        elapsed = time.perf_counter() - started
        return self._result(data, elapsed)

    async def _post(self, body: bytes, timeout_s: float) -> dict[str, Any]:
        try:
            async with self._http().post(
                self._url,
                data=body,
                headers=self._headers,
                timeout=aiohttp.ClientTimeout(total=timeout_s),
            ) as response:
                raw = await response.read()
                status = response.status
        except TimeoutError as exc:
            raise DeadlineExceededError(
                f"{self.name} did not answer in time ({self._base_url})"
            ) from exc
        except aiohttp.ClientError as exc:
            raise ProviderError(
                f"cannot reach {self.name} at {self._base_url}: {exc}",
                provider=self.name,
                retryable=True,
            ) from exc
        if status >= 400:
            raise self._status_error(status, raw)
        try:
            data = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            data = None
        if not isinstance(data, dict):
            raise ProviderError(
                f"{self.name} answered HTTP {status} with a body that is not a JSON object",
                provider=self.name,
            )
        return data

    def _result(self, data: dict[str, Any], elapsed: float) -> ChatResult:
        choices = data.get("choices")
        if not choices or not isinstance(choices, list) or not isinstance(choices[0], dict):
            raise ProviderError(f"{self.name} returned no choices", provider=self.name)
        choice = choices[0]
        message = choice.get("message") or {}
        usage = data.get("usage") or {}
        details = usage.get("prompt_tokens_details") or {}
        return ChatResult(
            text=message.get("content") or "",
            finish_reason=choice.get("finish_reason") or "stop",
            input_tokens=int(usage.get("prompt_tokens") or 0),
            output_tokens=int(usage.get("completion_tokens") or 0),
            cached_input_tokens=int(details.get("cached_tokens") or 0),
            time_to_first_token_s=elapsed,
            latency_s=elapsed,
        )

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        body = orjson.dumps(
            {**self._arguments(request), "stream": True, "stream_options": {"include_usage": True}}
        )
        started = time.perf_counter()
        first_token: float | None = None
        parts: list[str] = []
        finish_reason = "stop"
        input_tokens = output_tokens = 0
        # No total deadline: a long answer may stream for minutes; a stalled one may not.
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=request.timeout_s, sock_read=request.timeout_s
        )
        try:
            async with self._http().post(
                self._url, data=body, headers=self._headers, timeout=timeout
            ) as response:
                if response.status >= 400:
                    raise self._status_error(response.status, await response.read())
                async for data in _sse_data(response.content):
                    if data == b"[DONE]":
                        break
                    chunk = self._decode(data)
                    if "error" in chunk:
                        raise self._status_error(response.status, data)
                    usage = chunk.get("usage")
                    if usage:
                        input_tokens = int(usage.get("prompt_tokens") or 0)
                        output_tokens = int(usage.get("completion_tokens") or 0)
                    choices = chunk.get("choices") or ()
                    if not choices:
                        continue
                    choice = choices[0]
                    finish_reason = choice.get("finish_reason") or finish_reason
                    delta = (choice.get("delta") or {}).get("content") or ""
                    if delta:
                        if first_token is None:
                            first_token = time.perf_counter() - started
                        parts.append(delta)
                        yield StreamEvent(delta=delta)
        except TimeoutError as exc:
            raise DeadlineExceededError(
                f"{self.name} stopped answering for {request.timeout_s:g} s ({self._base_url})"
            ) from exc
        except aiohttp.ClientError as exc:
            raise ProviderError(
                f"cannot reach {self.name} at {self._base_url}: {exc}",
                provider=self.name,
                retryable=not parts,  # once text went out, a retry would repeat it
            ) from exc
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

    def _decode(self, data: bytes) -> dict[str, Any]:
        try:
            decoded = orjson.loads(data)
        except orjson.JSONDecodeError:
            decoded = None
        if not isinstance(decoded, dict):
            raise ProviderError(
                f"{self.name} sent a stream event that is not a JSON object: {data[:100]!r}",
                provider=self.name,
            )
        return decoded

    def _status_error(self, status: int, raw: bytes) -> ProviderError:
        try:
            data = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            data = None
        error = data.get("error") if isinstance(data, dict) else None
        detail = error.get("message") if isinstance(error, dict) else None
        if detail is None and isinstance(error, str):
            detail = error
        text = detail or raw[:200].decode("utf-8", "replace") or "no detail"
        return ProviderError(
            f"{self.name} answered HTTP {status}: {text}",
            provider=self.name,
            retryable=status == 429 or status >= 500,
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


async def _sse_data(content: aiohttp.StreamReader) -> AsyncIterator[bytes]:
    """The ``data:`` payloads of a server-sent event stream (one per event; comments,
    ``event:`` and ``id:`` lines skipped; multi-line data joined with newlines)."""
    lines: list[bytes] = []
    async for raw in content:
        line = raw.rstrip(b"\r\n")
        if not line:
            if lines:
                yield b"\n".join(lines)
                lines = []
        elif line.startswith(b"data:"):
            lines.append(line[6:] if line[5:6] == b" " else line[5:])
    if lines:
        yield b"\n".join(lines)
