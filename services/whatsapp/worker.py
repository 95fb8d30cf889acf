"""Processing the inbox: claim → decide → (ask the gateway) → store the reply → send it.

Each claimed message is handled in its own task; a user's messages are handled one at a
time, in order. A dependency that fails (gateway or Graph API unreachable, database
error) gives the message back with a growing delay; after ``max_attempts`` claims the user
gets an apology instead. Sending is resumable: the reply is stored before the first part
goes out and every part sent is counted, so a retry sends only what is missing.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Protocol

import structlog
from prometheus_client import Counter, Histogram

from llmproxy.platform.errors import (
    InvalidArgumentError,
    LLMProxyError,
    NotFoundError,
    RateLimitedError,
)
from llmproxy.v1 import gateway_pb2
from llmproxy.whatsapp.core import (
    Ask,
    ChannelPolicy,
    Erase,
    Ignore,
    ListModels,
    PinModel,
    Reply,
    ShowCost,
    UsageSummary,
    UserState,
    cost_text,
    decide,
    eta_notice,
    record_spend,
    window_open,
)
from llmproxy.whatsapp.graph import GraphError
from llmproxy.whatsapp.inbox import Claimed, SqlInbox, new_user
from llmproxy.whatsapp.splitting import split_message
from llmproxy.whatsapp.upstream import Answer, ask_request

__all__ = ["Delivery", "InboxWorker", "MessageHandler", "Sender", "Upstream"]

log = structlog.get_logger(__name__)

HANDLED = Counter("llmproxy_whatsapp_messages_total", "Inbound messages handled", ["outcome"])
ANSWER_SECONDS = Histogram(
    "llmproxy_whatsapp_answer_seconds",
    "From the webhook's receipt to the last reply part sent",
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)

SORRY = "Sorry, I couldn't answer that right now. Please try again in a little while."
ERASED = (
    "Done: I erased your conversations and everything this channel kept about you. "
    "Write again any time to start fresh."
)


class Upstream(Protocol):
    """The gateway and context service as the handler needs them (``upstream.GrpcUpstream``)."""

    async def ask(
        self,
        request: gateway_pb2.AskRequest,
        on_accepted: Callable[[timedelta], Awaitable[None]],
    ) -> Answer: ...

    async def usage(self, user_id: str, since: datetime) -> UsageSummary: ...

    async def models(self) -> list[str]: ...

    async def delete_conversation(self, conversation_id: str) -> None: ...


class Sender(Protocol):
    """The Graph API as the handler needs it (``graph.GraphClient``)."""

    async def send_text(self, to: str, text: str, *, reply_to: str = "") -> str: ...
    async def send_template(self, to: str, name: str, language: str) -> str: ...


@dataclass(frozen=True, slots=True)
class Delivery:
    """How answers are asked and sent (from the service's settings)."""

    tenant_id: str
    system_prompt: str = ""
    #: max_tokens of an answer (0: the gateway's default)
    max_answer_tokens: int = 400
    #: sent when a reply falls outside the 24-hour window ("" = send nothing)
    window_template: str = ""
    template_language: str = "en_US"
    #: claims of a message before the user gets an apology instead of an answer
    max_attempts: int = 5
    #: claims of a message whose reply cannot be sent before it is given up
    max_send_attempts: int = 12
    retry_backoff: timedelta = timedelta(seconds=2)
    max_retry_backoff: timedelta = timedelta(minutes=5)


class _Transient(Exception):
    """A dependency failed; try the message again later."""


class MessageHandler:
    def __init__(
        self,
        inbox: SqlInbox,
        upstream: Upstream,
        sender: Sender,
        *,
        policy: ChannelPolicy,
        delivery: Delivery,
        clock: Callable[[], datetime],
    ) -> None:
        self._inbox = inbox
        self._upstream = upstream
        self._sender = sender
        self._policy = policy
        self._delivery = delivery
        self._clock = clock

    async def __call__(self, claimed: Claimed) -> None:
        try:
            await self._handle(claimed)
        except (_Transient, LLMProxyError, OSError) as exc:
            await self._retry_later(claimed, str(exc))
        except Exception as exc:  # a bug must not lose the message: retry, then apologise
            log.exception("handling a WhatsApp message failed", seq=claimed.seq)
            await self._retry_later(claimed, f"{type(exc).__name__}: {exc}")

    async def _retry_later(self, claimed: Claimed, why: str) -> None:
        delivery = self._delivery
        delay = min(
            delivery.max_retry_backoff,
            delivery.retry_backoff * 2 ** max(0, claimed.attempts - 1),
        )
        log.warning("will retry a WhatsApp message", seq=claimed.seq, why=why, delay=str(delay))
        await self._inbox.release(claimed.seq, retry_at=self._clock() + delay, note=why)

    async def _handle(self, claimed: Claimed) -> None:
        message = claimed.message
        if not message.wa_id:
            await self._finish(claimed, "erased")  # its sender erased their data meanwhile
            return
        reply, outcome = claimed.reply, claimed.outcome or ""
        if reply is not None and claimed.attempts > self._delivery.max_send_attempts:
            log.error("giving up sending a WhatsApp reply", seq=claimed.seq)
            await self._finish(claimed, "send_failed")
            return
        user = await self._inbox.load_user(message.wa_id)
        if reply is None:
            if claimed.attempts > self._delivery.max_attempts:
                reply, outcome = SORRY, "failed"
                await self._inbox.save_decision(
                    claimed.seq,
                    user=None,
                    tenant_id=self._delivery.tenant_id,
                    now=self._clock(),
                    reply=reply,
                    outcome=outcome,
                )
            else:
                decided = await self._decide(claimed, user)
                if decided is None:
                    return
                reply, outcome, user = decided
        await self._send(claimed, reply, outcome, user)

    async def _decide(
        self, claimed: Claimed, stored: UserState | None
    ) -> tuple[str, str, UserState | None] | None:
        """Decide, act and store the reply; None when there is nothing to send."""
        message, now = claimed.message, self._clock()
        decision = decide(message, stored or new_user(message.wa_id), self._policy, now)
        action, user = decision.action, decision.user
        request_id: str | None = None
        kept: UserState | None = user
        if isinstance(action, Ignore):
            await self._inbox.save_decision(
                claimed.seq,
                user=user if stored is not None or action.outcome != "stale" else None,
                tenant_id=self._delivery.tenant_id,
                now=now,
                reply=None,
                outcome=action.outcome,
                done=True,
            )
            HANDLED.labels(action.outcome).inc()
            return None
        if isinstance(action, Reply):
            text, outcome = action.text, action.outcome
        elif isinstance(action, Ask):
            text, outcome, user, request_id = await self._ask(claimed, user, action.prompt)
            kept = user
        elif isinstance(action, ShowCost):
            usage = await self._upstream.usage(user.user_id, action.since)
            text, outcome = cost_text(usage), "cost"
        elif isinstance(action, ListModels):
            names = await self._upstream.models()
            text = f"Models: {', '.join(names)}. Pin one with /model <name>."
            outcome = "command"
        elif isinstance(action, PinModel):
            names = await self._upstream.models()
            if action.name in names:
                user = replace(user, pinned_model=action.name)
                kept = user
                text = f"Model: {action.name}. Send /model auto to let me choose again."
            else:
                text = f"I don't know the model {action.name!r}. Models: {', '.join(names)}."
            outcome = "command"
        elif isinstance(action, Erase):
            ids = set(await self._inbox.conversations(message.wa_id))
            if user.conversation_id:
                ids.add(user.conversation_id)
            for conversation_id in sorted(ids):
                await self._upstream.delete_conversation(conversation_id)
            await self._inbox.erase(message.wa_id)
            text, outcome, kept = ERASED, "erased", None
        else:  # pragma: no cover - the Action union is closed
            raise AssertionError(f"unhandled action {action!r}")
        await self._inbox.save_decision(
            claimed.seq,
            user=kept,
            tenant_id=self._delivery.tenant_id,
            now=self._clock(),
            reply=text,
            outcome=outcome,
            request_id=request_id,
        )
        # after an erasure the window is the current message's
        return text, outcome, kept or replace(user, last_inbound_at=message.sent_at)

    async def _ask(
        self, claimed: Claimed, user: UserState, prompt: str
    ) -> tuple[str, str, UserState, str]:
        message = claimed.message
        request_id = claimed.request_id or f"wa-{message.message_id}"

        async def notify(wait: timedelta) -> None:
            notice = eta_notice(wait, self._policy)
            if not notice or not window_open(user.last_inbound_at, self._clock(), self._policy):
                return
            try:
                sent = await self._sender.send_text(
                    message.wa_id, notice, reply_to=message.message_id
                )
            except GraphError as exc:  # the answer matters more than the notice
                log.warning("the 'Got it' notice was not sent", error=exc.message)
                return
            await self._inbox.record_sent(
                claimed.seq, message_id=sent, kind="notice", now=self._clock()
            )

        delivery = self._delivery
        for _ in range(2):
            request = ask_request(
                user,
                prompt,
                request_id=request_id,
                system_prompt=delivery.system_prompt,
                max_tokens=delivery.max_answer_tokens,
            )
            try:
                answer = await self._upstream.ask(request, notify)
            except NotFoundError:
                if not user.conversation_id:
                    raise
                # the conversation was erased elsewhere: start a new one
                user = replace(user, conversation_id="")
                continue
            except RateLimitedError as exc:
                return (
                    "I can't answer more questions right now: a usage limit was reached "
                    f"({exc.message}). Please try again later.",
                    "gateway_limited",
                    user,
                    request_id,
                )
            except InvalidArgumentError as exc:
                return f"Sorry, I can't answer that: {exc.message}", "refused", user, request_id
            user = replace(user, conversation_id=answer.conversation_id or user.conversation_id)
            user = record_spend(user, answer.cost_nanousd, self._clock())
            return answer.text.strip() or "(no answer)", "answered", user, answer.request_id
        raise _Transient("the conversation could not be found twice")

    async def _send(
        self, claimed: Claimed, reply: str, outcome: str, user: UserState | None
    ) -> None:
        message, now = claimed.message, self._clock()
        anchor = user.last_inbound_at if user and user.last_inbound_at else message.sent_at
        if not window_open(anchor, now, self._policy):
            template = self._delivery.window_template
            if template:
                sent = await self._send_or_fail(
                    claimed,
                    self._sender.send_template(
                        message.wa_id, template, self._delivery.template_language
                    ),
                )
                if sent is not None:
                    await self._inbox.record_sent(
                        claimed.seq,
                        message_id=sent,
                        kind="template",
                        now=self._clock(),
                        finished_outcome="window_closed_template",
                    )
                    HANDLED.labels("window_closed_template").inc()
                return
            await self._finish(claimed, "window_closed")
            return
        parts = split_message(reply)
        if not parts:
            await self._finish(claimed, outcome)
            return
        for index in range(claimed.parts_sent, len(parts)):
            sent = await self._send_or_fail(
                claimed,
                self._sender.send_text(
                    message.wa_id, parts[index], reply_to=message.message_id if index == 0 else ""
                ),
            )
            if sent is None:
                return
            last = index == len(parts) - 1
            await self._inbox.record_sent(
                claimed.seq,
                message_id=sent,
                kind="text",
                now=self._clock(),
                parts_sent=index + 1,
                finished_outcome=outcome if last else None,
            )
        HANDLED.labels(outcome).inc()

    async def _send_or_fail(self, claimed: Claimed, sending: Awaitable[str]) -> str | None:
        """The Graph API's id; None (message finished as send_failed) on a final refusal."""
        try:
            return str(await sending)
        except GraphError as exc:
            if exc.retryable:
                raise _Transient(exc.message) from exc
            log.error("the Graph API refused a message", seq=claimed.seq, error=exc.message)
            await self._finish(claimed, "send_failed")
            return None

    async def _finish(self, claimed: Claimed, outcome: str) -> None:
        await self._inbox.finish(claimed.seq, outcome, self._clock())
        HANDLED.labels(outcome).inc()


class InboxWorker:
    """Claims messages and runs ``handle`` on each, at most ``concurrency`` at once."""

    def __init__(
        self,
        inbox: SqlInbox,
        handle: Callable[[Claimed], object],
        *,
        owner: str,
        clock: Callable[[], datetime],
        concurrency: int = 16,
        poll_interval_s: float = 1.0,
        lease: timedelta = timedelta(minutes=5),
    ) -> None:
        self._inbox = inbox
        self._handle = handle
        self._owner = owner
        self._clock = clock
        self._concurrency = concurrency
        self._poll = poll_interval_s
        self._lease = lease
        self._wake = asyncio.Event()
        self._stopping = False
        self._tasks: dict[asyncio.Task[None], str] = {}
        self._loop: asyncio.Task[None] | None = None

    def wake(self) -> None:
        """New messages were accepted: look now rather than at the next poll."""
        self._wake.set()

    def start(self) -> None:
        self._loop = asyncio.create_task(self._run(), name="whatsapp-inbox")

    async def _run(self) -> None:
        while not self._stopping:
            self._wake.clear()
            claimed: list[Claimed] = []
            free = self._concurrency - len(self._tasks)
            if free > 0:
                try:
                    claimed = await self._inbox.claim(
                        free,
                        busy=set(self._tasks.values()),
                        owner=self._owner,
                        now=self._clock(),
                        lease=self._lease,
                    )
                except Exception:
                    log.exception("claiming WhatsApp messages failed; trying again")
            for item in claimed:
                task = asyncio.create_task(self._one(item))
                self._tasks[task] = item.message.wa_id
            if claimed and len(claimed) == free:
                continue  # there may be more right away
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll)

    async def _one(self, item: Claimed) -> None:
        try:
            await self._handle(item)  # type: ignore[misc]
        finally:
            self._tasks.pop(asyncio.current_task(), None)  # type: ignore[arg-type]
            self._wake.set()

    async def stop(self, timeout_s: float) -> None:
        """Stop claiming; let handled messages finish within ``timeout_s``. Messages cut
        short keep their lease until it runs out, then any replica takes them again."""
        self._stopping = True
        self._wake.set()
        if self._loop is not None:
            await self._loop
        if self._tasks:
            _, pending = await asyncio.wait(list(self._tasks), timeout=timeout_s)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
