"""Steady load through both front doors, and what each fault cost.

Half the callers use the official openai SDK (stateless chat completions: gateway, cache,
provider), half gRPC ``Ask`` with a prompt (each starts a conversation, so the context
service is on their path too). Every request asks a question no one asked before (so each
is a cache miss that reaches the provider and costs money) and ends in exactly one of:

* ``answered``: the expected answer, with its request id and cost;
* ``refused``: no connection could be made: nothing was accepted (the gateway is down);
* ``dropped``: the connection broke before an answer (the gateway died mid-request, or
  closed the connection on an internal error): the client knows it failed;
* ``http_<status>`` / ``grpc_<CODE>``: the gateway answered with an error and a message;
* ``unclear``: a timeout or a malformed answer: the caller cannot tell what happened.
  The fault suite requires none of these.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import grpc
import openai

from llmproxy.v1 import common_pb2, gateway_pb2, gateway_pb2_grpc

__all__ = ["Phase", "Sample", "SteadyLoad", "summarise"]


@dataclass(slots=True)
class Sample:
    started: float
    ended: float
    outcome: str
    request_id: str = ""
    cost_nanousd: int = 0
    detail: str = ""

    @property
    def latency_s(self) -> float:
        return self.ended - self.started


@dataclass
class Phase:
    """One fault: injected at ``started``, the broken part back at ``restored``."""

    name: str
    started: float
    restored: float = 0.0
    ended: float = 0.0
    notes: list[str] = field(default_factory=list)


class SteadyLoad:
    """``concurrency`` callers (half HTTP, half gRPC) asking until :meth:`stop`."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        grpc_address: str,
        model: str,
        expected_answer: str,
        concurrency: int = 4,
        timeout_s: float = 30.0,
    ) -> None:
        self._client = openai.AsyncOpenAI(base_url=base_url, api_key=api_key, max_retries=0)
        self._channel = grpc.aio.insecure_channel(grpc_address)
        self._gateway = gateway_pb2_grpc.GatewayStub(self._channel)
        self._auth = (("authorization", f"Bearer {api_key}"),)
        # what gRPC says when the gateway itself cannot be reached (not a peer of it)
        self._refused = "failed to connect to all addresses"
        self._model = model
        self._expected = expected_answer
        self._concurrency = concurrency
        self._timeout_s = timeout_s
        self._numbers = itertools.count()
        self._stop = asyncio.Event()
        self._workers: list[asyncio.Task[None]] = []
        self.samples: list[Sample] = []

    def start(self) -> None:
        self._workers = [
            asyncio.create_task(self._worker(self._ask_http if i % 2 == 0 else self._ask_grpc))
            for i in range(self._concurrency)
        ]

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._workers)
        await self._client.close()
        await self._channel.close()

    def answered_since(self, moment: float) -> int:
        return sum(1 for s in self.samples if s.started >= moment and s.outcome == "answered")

    async def _worker(self, ask: Callable[[int], Awaitable[Sample]]) -> None:
        while not self._stop.is_set():
            sample = await ask(next(self._numbers))
            self.samples.append(sample)
            if sample.outcome != "answered":
                await asyncio.sleep(0.1)  # a refusing gateway answers at once: do not spin

    async def _ask_grpc(self, number: int) -> Sample:
        started = time.monotonic()
        try:
            reply = await self._gateway.Ask(
                gateway_pb2.AskRequest(
                    prompt=f"Request {number}: what is {number} times 3?",
                    generation=common_pb2.GenerationParams(max_tokens=16),
                ),
                metadata=self._auth,
                timeout=self._timeout_s,
            )
        except grpc.aio.AioRpcError as exc:
            ended, code, details = time.monotonic(), exc.code(), exc.details() or ""
            if code == grpc.StatusCode.DEADLINE_EXCEEDED or not details:
                return Sample(started, ended, "unclear", detail=f"{code.name}: {details}")
            if code == grpc.StatusCode.UNAVAILABLE and details.startswith(self._refused):
                return Sample(started, ended, "refused", detail=details[:200])
            if code == grpc.StatusCode.UNAVAILABLE and details.startswith(_DROPPED):
                return Sample(started, ended, "dropped", detail=details[:200])
            return Sample(started, ended, f"grpc_{code.name}", detail=details[:200])
        ended = time.monotonic()
        if reply.answer != self._expected or not reply.request_id:
            return Sample(started, ended, "unclear", detail=f"unexpected answer {reply.answer!r}")
        return Sample(started, ended, "answered", reply.request_id, reply.cost.cost_nanousd, "grpc")

    async def _ask_http(self, number: int) -> Sample:
        started = time.monotonic()
        try:
            raw = await self._client.chat.completions.with_raw_response.create(
                model=self._model,
                messages=[
                    {"role": "user", "content": f"Request {number}: what is {number} times 3?"}
                ],
                max_tokens=16,
                timeout=self._timeout_s,
            )
            completion = raw.parse()
        except openai.APITimeoutError:
            return Sample(started, time.monotonic(), "unclear", detail="timeout")
        except openai.APIConnectionError as exc:
            outcome = "refused" if _never_connected(exc) else "dropped"
            return Sample(started, time.monotonic(), outcome, detail=str(exc.__cause__ or exc))
        except openai.APIStatusError as exc:
            outcome = f"http_{exc.status_code}" if exc.message else "unclear"
            return Sample(started, time.monotonic(), outcome, detail=exc.message[:200])
        ended = time.monotonic()
        answer = completion.choices[0].message.content if completion.choices else None
        request_id = raw.headers.get("x-llmproxy-request-id", "")
        if answer != self._expected or not request_id:
            return Sample(started, ended, "unclear", detail=f"unexpected answer {answer!r}")
        return Sample(
            started,
            ended,
            "answered",
            request_id=request_id,
            cost_nanousd=int(raw.headers.get("x-llmproxy-cost-nanousd", "0")),
            detail="http",
        )


#: gRPC's details when the connection broke under a call in flight
_DROPPED = ("Stream removed", "Socket closed", "Connection reset")


def _never_connected(exc: BaseException) -> bool:
    """Whether an SDK connection error began as a failed connect (nothing was sent)."""
    cause: BaseException | None = exc
    while cause is not None:
        # by name: the SDK's transport (httpx, or the openai SDK's vendored fork) varies
        if type(cause).__name__ == "ConnectError":
            return True
        cause = cause.__cause__ or cause.__context__
    return False


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1)]


def summarise(phase: Phase, samples: list[Sample]) -> dict[str, Any]:
    """What one fault cost: errors by kind, latency (p50/p99) and the recovery time.

    Requests count towards the fault during which they ended (one in flight when the next
    fault hits is that fault's casualty). Recovery time: from the fault to the start of the
    first answered request after the last failed one (0 when nothing failed).
    """
    window = sorted(
        (s for s in samples if phase.started <= s.ended < phase.ended), key=lambda s: s.started
    )
    failed = [s for s in window if s.outcome != "answered"]
    recovery: float | None = 0.0
    if failed:
        after = [s for s in window if s.outcome == "answered" and s.started > failed[-1].started]
        recovery = after[0].started - phase.started if after else None
    latencies = [s.latency_s for s in window if s.outcome == "answered"]
    kinds = Counter(s.outcome for s in failed)
    details = Counter(f"{s.outcome}: {s.detail[:120]}" for s in failed)

    def ms(value: float | None) -> float | None:
        return None if value is None else round(value * 1000, 1)

    return {
        "fault": phase.name,
        "requests": len(window),
        "answered": len(window) - len(failed),
        "errors": dict(sorted(kinds.items())),
        "error_examples": [d for d, _ in details.most_common(3)],
        "p50_ms": ms(_percentile(latencies, 50)),
        "p99_ms": ms(_percentile(latencies, 99)),
        "max_ms": ms(max(latencies, default=None)),
        "outage_s": round(phase.restored - phase.started, 2),
        "recovery_s": None if recovery is None else round(recovery, 2),
        "phase_s": round(phase.ended - phase.started, 2),
        "notes": phase.notes,
    }


def sample_dict(sample: Sample) -> dict[str, Any]:
    return asdict(sample)
