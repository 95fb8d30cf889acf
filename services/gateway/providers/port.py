"""The provider port: one chat completion, in plain data."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol

__all__ = ["ChatMessage", "ChatRequest", "ChatResult", "Provider", "StreamEvent"]


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: str  # "system" | "user" | "assistant" | "tool"
    content: str


@dataclass(frozen=True, slots=True)
class ChatRequest:
    model: str  # the provider's model id
    messages: tuple[ChatMessage, ...]
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: tuple[str, ...] = ()
    seed: int | None = None
    timeout_s: float = 60.0


@dataclass(frozen=True, slots=True)
class ChatResult:
    text: str
    finish_reason: str
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int = 0
    #: seconds from sending to the first token (equals the latency when not streamed)
    time_to_first_token_s: float = 0.0
    latency_s: float = 0.0


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """A piece of a streamed answer: text deltas, then one final result."""

    delta: str = ""
    result: ChatResult | None = field(default=None)


class Provider(Protocol):
    name: str

    async def complete(self, request: ChatRequest) -> ChatResult:
        """One completion; raises ProviderError with a readable message on failure."""
        ...

    def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        """Text deltas as generated, then a StreamEvent carrying the final ChatResult."""
        ...

    async def close(self) -> None: ...
