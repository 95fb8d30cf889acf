"""The Graph API client: ``POST /<version>/<phone_number_id>/messages`` with a bearer token.

Retries 429 and 5xx (and connection errors) with exponential backoff and jitter, honouring
``Retry-After``; any other 4xx is final and raised as :class:`GraphError`.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import structlog

from llmproxy.platform.errors import LLMProxyError

__all__ = ["GraphClient", "GraphError", "backoff_delays"]

log = structlog.get_logger(__name__)


class GraphError(LLMProxyError):
    """The Graph API refused a message (or kept failing)."""

    code = "graph_error"

    def __init__(self, message: str, *, status: int, retryable: bool) -> None:
        super().__init__(message)
        self.status = status
        self.retryable = retryable


def backoff_delays(retries: int, *, base_s: float, max_s: float, jitter: float) -> list[float]:
    """The wait before each retry: base, 2·base, 4·base... capped, each scaled by 1..1.5
    of ``jitter`` (0..1) so replicas retrying together spread out."""
    return [min(max_s, base_s * 2**i) * (1 + 0.5 * jitter) for i in range(retries)]


@dataclass(frozen=True, slots=True)
class GraphConfig:
    base_url: str
    version: str
    phone_number_id: str
    access_token: str
    retries: int = 4
    backoff_s: float = 0.5
    max_backoff_s: float = 8.0
    timeout_s: float = 10.0


class GraphClient:
    def __init__(
        self,
        config: GraphConfig,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self._config = config
        self._http = httpx.AsyncClient(
            base_url=config.base_url.rstrip("/"),
            timeout=config.timeout_s,
            transport=transport,
            headers={"authorization": f"Bearer {config.access_token}"},
        )
        self._path = f"/{config.version}/{config.phone_number_id}/messages"
        self._sleep = sleep
        self._jitter = jitter

    async def close(self) -> None:
        await self._http.aclose()

    async def send_text(self, to: str, text: str, *, reply_to: str = "") -> str:
        """Send ``text`` to ``to``; the Graph API's id for the message."""
        body: dict[str, Any] = {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": to,
            "type": "text",
            "text": {"preview_url": False, "body": text},
        }
        if reply_to:
            body["context"] = {"message_id": reply_to}
        return await self._post(body)

    async def send_template(self, to: str, name: str, language: str) -> str:
        """Send the approved template ``name`` (outside the 24-hour window)."""
        body = {
            "messaging_product": "whatsapp",
            "to": to,
            "type": "template",
            "template": {"name": name, "language": {"code": language}},
        }
        return await self._post(body)

    async def _post(self, body: dict[str, Any]) -> str:
        config = self._config
        delays = backoff_delays(
            config.retries,
            base_s=config.backoff_s,
            max_s=config.max_backoff_s,
            jitter=self._jitter(),
        )
        attempt = 0
        while True:
            try:
                response = await self._http.post(self._path, json=body)
            except httpx.HTTPError as exc:
                error = GraphError(f"Graph API unreachable: {exc}", status=0, retryable=True)
                wait = None
            else:
                if response.status_code < 300:
                    return _message_id(response)
                retryable = response.status_code == 429 or response.status_code >= 500
                error = GraphError(
                    f"Graph API answered {response.status_code}: {_error_text(response)}",
                    status=response.status_code,
                    retryable=retryable,
                )
                wait = _retry_after(response)
            if not error.retryable or attempt >= len(delays):
                raise error
            delay = delays[attempt] if wait is None else min(wait, config.max_backoff_s)
            log.warning("graph send failed; retrying", status=error.status, delay_s=delay)
            attempt += 1
            await self._sleep(delay)


def _message_id(response: httpx.Response) -> str:
    try:
        return str(response.json()["messages"][0]["id"])
    except (ValueError, KeyError, IndexError, TypeError):
        raise GraphError(
            "Graph API answered without a message id", status=response.status_code, retryable=False
        ) from None


def _error_text(response: httpx.Response) -> str:
    try:
        error = response.json().get("error", {})
        return f"{error.get('message', '')} (code {error.get('code', '?')})"
    except (ValueError, AttributeError):
        return response.text[:200]


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None
