"""The OpenAI chat-completions wire format ↔ the gateway's AskRequest / AskReply. Pure.

Accepts what the official SDKs send, plus LLMProxy's own fields — in the body under
``llmproxy`` (the SDK's ``extra_body={"llmproxy": {...}}``) or as ``x-llmproxy-*`` request
headers (the body wins when both are given). Replies carry the proxy's metadata both in
``x-llmproxy-*`` response headers and in a ``llmproxy`` field the SDKs ignore.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal

from google.protobuf.json_format import MessageToDict
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from llmproxy.platform.errors import InvalidArgumentError
from llmproxy.v1 import common_pb2, gateway_pb2

__all__ = [
    "ChatBody",
    "chunk",
    "completion",
    "parse_body",
    "reply_headers",
    "to_ask_request",
    "usage_dict",
]

_ROLES = {
    "system": common_pb2.ROLE_SYSTEM,
    "developer": common_pb2.ROLE_SYSTEM,
    "user": common_pb2.ROLE_USER,
    "assistant": common_pb2.ROLE_ASSISTANT,
    "tool": common_pb2.ROLE_TOOL,
}
_OBJECTIVES = {
    "cost": common_pb2.OBJECTIVE_COST,
    "balanced": common_pb2.OBJECTIVE_BALANCED,
    "quality": common_pb2.OBJECTIVE_QUALITY,
    "latency": common_pb2.OBJECTIVE_LATENCY,
}
_STRATEGIES = {
    "full": common_pb2.CONTEXT_STRATEGY_FULL,
    "last_k": common_pb2.CONTEXT_STRATEGY_LAST_K,
    "token_budget": common_pb2.CONTEXT_STRATEGY_TOKEN_BUDGET,
    "summary": common_pb2.CONTEXT_STRATEGY_SUMMARY,
    "relevant": common_pb2.CONTEXT_STRATEGY_RELEVANT,
    "none": common_pb2.CONTEXT_STRATEGY_NONE,
}
_CACHE_MODES = {
    "off": common_pb2.CACHE_MODE_OFF,
    "exact": common_pb2.CACHE_MODE_EXACT,
    "semantic": common_pb2.CACHE_MODE_SEMANTIC,
}
#: the model name that lets the gateway choose
AUTO_MODEL = "auto"

_Strict = ConfigDict(strict=True, extra="allow")


class _TextPart(BaseModel):
    model_config = _Strict
    type: Literal["text"]
    text: str


class _Message(BaseModel):
    model_config = _Strict
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[_TextPart] | None = None
    name: str | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(part.text for part in self.content)
        return self.content or ""


class _StreamOptions(BaseModel):
    model_config = _Strict
    include_usage: bool = False


class _Preferences(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")
    objective: Literal["cost", "balanced", "quality", "latency"] | None = None
    max_cost_nanousd: int | None = Field(None, ge=0)
    allowed_models: list[str] | None = None
    deadline_ms: int | None = Field(None, ge=0)


class _Context(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")
    strategy: Literal["full", "last_k", "token_budget", "summary", "relevant", "none"] | None = None
    k: int | None = Field(None, ge=0)
    token_budget: int | None = Field(None, ge=0)


class _Extras(BaseModel):
    """LLMProxy's own request fields (``extra_body={"llmproxy": {...}}``)."""

    model_config = ConfigDict(strict=True, extra="forbid")
    conversation_id: str | None = None
    preferences: _Preferences | None = None
    context: _Context | None = None
    cache: Literal["off", "exact", "semantic"] | None = None
    task_category: str | None = None


class ChatBody(BaseModel):
    """A ``POST /v1/chat/completions`` body. Unknown fields are ignored; known ones are typed."""

    model_config = _Strict
    model: str = AUTO_MODEL
    messages: list[_Message] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    n: int | None = Field(None, ge=1, le=1)
    stream: bool = False
    stream_options: _StreamOptions | None = None
    user: str | None = None
    llmproxy: _Extras | None = None


def parse_body(raw: bytes) -> ChatBody:
    """The validated body; InvalidArgumentError naming the first problem."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidArgumentError(
            f"the request body is not valid UTF-8 (byte {exc.start})", field="body"
        ) from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidArgumentError(f"malformed JSON: {exc}", field="body") from None
    if not isinstance(document, dict):
        raise InvalidArgumentError("the request body must be a JSON object", field="body")
    try:
        return ChatBody.model_validate(document)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"]) or "body"
        raise InvalidArgumentError(f"{where}: {error['msg']}", field=where) from None


def _header_extras(headers: Mapping[str, str]) -> dict[str, Any]:
    """The ``x-llmproxy-*`` request headers as an ``llmproxy`` body object."""
    extras: dict[str, Any] = {}
    preferences: dict[str, Any] = {}
    if value := headers.get("x-llmproxy-conversation-id"):
        extras["conversation_id"] = value
    if value := headers.get("x-llmproxy-cache"):
        extras["cache"] = value
    if value := headers.get("x-llmproxy-context-strategy"):
        extras["context"] = {"strategy": value}
    if value := headers.get("x-llmproxy-objective"):
        preferences["objective"] = value
    if value := headers.get("x-llmproxy-allowed-models"):
        preferences["allowed_models"] = [m.strip() for m in value.split(",") if m.strip()]
    for header, key in (
        ("x-llmproxy-max-cost-nanousd", "max_cost_nanousd"),
        ("x-llmproxy-deadline-ms", "deadline_ms"),
    ):
        if value := headers.get(header):
            if not value.isdigit():
                raise InvalidArgumentError(
                    f"header {header} must be a whole number, got {value!r}", field=header
                )
            preferences[key] = int(value)
    if preferences:
        extras["preferences"] = preferences
    return extras


def to_ask_request(body: ChatBody, headers: Mapping[str, str]) -> gateway_pb2.AskRequest:
    """The AskRequest for an OpenAI body (+ ``x-llmproxy-*`` headers).

    With a conversation id the gateway keeps the history: the last user message becomes
    the new turn (system messages the system prompt) and the context service supplies
    the rest. Without one the message list is sent as given (stateless).
    """
    merged = {
        **_header_extras(headers),
        **(body.llmproxy.model_dump(exclude_none=True) if body.llmproxy else {}),
    }
    try:
        extras = _Extras.model_validate(merged)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"])
        raise InvalidArgumentError(f"x-llmproxy header {where}: {error['msg']}") from None
    request = gateway_pb2.AskRequest()
    if extras.conversation_id:
        system = [m.text() for m in body.messages if m.role in ("system", "developer")]
        users = [m.text() for m in body.messages if m.role == "user"]
        if not users:
            raise InvalidArgumentError(
                "with a conversation id, the messages must end with the user's new turn",
                field="messages",
            )
        request.prompt = users[-1]
        request.system_prompt = "\n\n".join(system)
        request.scope.conversation_id = extras.conversation_id
    else:
        for message in body.messages:
            request.messages.add(
                role=_ROLES[message.role], content=message.text(), name=message.name or ""
            )
    if body.user:
        request.scope.user_id = body.user
    if body.model and body.model != AUTO_MODEL:
        request.preferences.pinned_model = body.model
    prefs = extras.preferences
    if prefs is not None:
        if prefs.objective:
            request.preferences.objective = _OBJECTIVES[prefs.objective]
        if prefs.max_cost_nanousd:
            request.preferences.max_cost_nanousd = prefs.max_cost_nanousd
        if prefs.allowed_models:
            request.preferences.allowed_models.extend(prefs.allowed_models)
        if prefs.deadline_ms:
            request.preferences.deadline.FromMilliseconds(prefs.deadline_ms)
    if extras.context is not None:
        if extras.context.strategy:
            request.context.strategy = _STRATEGIES[extras.context.strategy]
        request.context.k = extras.context.k or 0
        request.context.token_budget = extras.context.token_budget or 0
    if extras.cache:
        request.cache.mode = _CACHE_MODES[extras.cache]
    if extras.task_category:
        request.task_category = extras.task_category
    gen = request.generation
    max_tokens = body.max_completion_tokens or body.max_tokens
    if max_tokens:
        gen.max_tokens = max_tokens
    if body.temperature is not None:
        gen.temperature, gen.has_temperature = body.temperature, True
    if body.top_p is not None:
        gen.top_p, gen.has_top_p = body.top_p, True
    if body.stop:
        gen.stop.extend([body.stop] if isinstance(body.stop, str) else body.stop)
    if body.seed is not None:
        gen.seed = body.seed
    return request


def usage_dict(usage: common_pb2.TokenUsage) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.input_tokens + usage.output_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_input_tokens},
    }


def metadata(reply: gateway_pb2.AskReply) -> dict[str, Any]:
    """The ``llmproxy`` response field: everything the reply says except the answer."""
    meta = gateway_pb2.AskReply()
    meta.CopyFrom(reply)
    meta.answer = ""
    return MessageToDict(meta, preserving_proto_field_name=True)


def completion(reply: gateway_pb2.AskReply, created: int) -> dict[str, Any]:
    """A ``chat.completion`` object."""
    return {
        "id": f"chatcmpl-{reply.request_id}",
        "object": "chat.completion",
        "created": created,
        "model": reply.choice.model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": reply.answer},
                "finish_reason": reply.finish_reason or "stop",
                "logprobs": None,
            }
        ],
        "usage": usage_dict(reply.usage),
        "llmproxy": metadata(reply),
    }


def chunk(
    request_id: str,
    model: str,
    created: int,
    *,
    delta: dict[str, Any] | None = None,
    finish_reason: str | None = None,
    usage: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A ``chat.completion.chunk`` object (no choices when it only carries usage)."""
    body: dict[str, Any] = {
        "id": f"chatcmpl-{request_id}",
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": (
            []
            if delta is None
            else [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}]
        ),
    }
    if usage is not None:
        body["usage"] = usage
    if extra is not None:
        body["llmproxy"] = extra
    return body


def _eta_header(eta: common_pb2.Eta) -> str:
    if not eta.HasField("predicted_completion"):
        return ""
    return eta.predicted_completion.ToJsonString()


_CACHE_NAMES = {
    common_pb2.CACHE_OUTCOME_MISS: "miss",
    common_pb2.CACHE_OUTCOME_EXACT_HIT: "exact_hit",
    common_pb2.CACHE_OUTCOME_SEMANTIC_HIT: "semantic_hit",
    common_pb2.CACHE_OUTCOME_BYPASSED: "bypassed",
}


def accepted_headers(accepted: gateway_pb2.AskAccepted) -> dict[str, str]:
    """Headers known before the answer (all a streamed response can carry)."""
    return {
        "x-llmproxy-request-id": accepted.request_id,
        "x-llmproxy-model": accepted.choice.model,
        "x-llmproxy-provider": accepted.choice.provider,
        "x-llmproxy-cache": _CACHE_NAMES.get(accepted.cache.outcome, "unknown"),
        "x-llmproxy-eta": _eta_header(accepted.eta),
    }


def reply_headers(reply: gateway_pb2.AskReply) -> dict[str, str]:
    """Every ``x-llmproxy-*`` header of a complete answer."""
    return {
        "x-llmproxy-request-id": reply.request_id,
        "x-llmproxy-model": reply.choice.model,
        "x-llmproxy-provider": reply.choice.provider,
        "x-llmproxy-policy": reply.choice.policy,
        "x-llmproxy-cost-nanousd": str(reply.cost.cost_nanousd),
        "x-llmproxy-reference-model": reply.cost.reference_model,
        "x-llmproxy-reference-cost-nanousd": str(reply.cost.reference_cost_nanousd),
        "x-llmproxy-saved-nanousd": str(reply.cost.saved_nanousd),
        "x-llmproxy-cache": _CACHE_NAMES.get(reply.cache.outcome, "unknown"),
        "x-llmproxy-eta": _eta_header(reply.eta),
        "x-llmproxy-latency-ms": str(reply.latency.ToMilliseconds()),
        "x-llmproxy-conversation-id": reply.conversation_id,
    }
