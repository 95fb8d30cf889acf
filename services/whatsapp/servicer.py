"""The operator gRPC API (``WhatsApp`` in whatsapp.proto): look up a user, send a message."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import grpc

from llmproxy.platform.errors import InvalidArgumentError, NotFoundError, UnavailableError
from llmproxy.v1 import whatsapp_pb2, whatsapp_pb2_grpc
from llmproxy.whatsapp.core import ChannelPolicy, window_open
from llmproxy.whatsapp.graph import GraphError
from llmproxy.whatsapp.inbox import SqlInbox
from llmproxy.whatsapp.splitting import split_message
from llmproxy.whatsapp.worker import Sender

__all__ = ["WhatsAppServicer"]


class WhatsAppServicer(whatsapp_pb2_grpc.WhatsAppServicer):
    def __init__(
        self,
        inbox: SqlInbox,
        sender: Sender,
        *,
        tenant_id: str,
        policy: ChannelPolicy,
        template_language: str,
        clock: Callable[[], datetime],
    ) -> None:
        self._inbox = inbox
        self._sender = sender
        self._tenant_id = tenant_id
        self._policy = policy
        self._language = template_language
        self._clock = clock

    async def GetUser(
        self, request: whatsapp_pb2.WhatsAppUserRef, context: grpc.aio.ServicerContext
    ) -> whatsapp_pb2.WhatsAppUser:
        if not request.wa_id:
            raise InvalidArgumentError("wa_id is required", field="wa_id")
        user = await self._inbox.load_user(request.wa_id)
        if user is None:
            raise NotFoundError(f"no WhatsApp user {request.wa_id!r}")
        reply = whatsapp_pb2.WhatsAppUser(
            wa_id=user.wa_id,
            tenant_id=self._tenant_id,
            user_id=user.user_id,
            conversation_id=user.conversation_id,
            mode=user.mode,
            pinned_model=user.pinned_model,
            context_strategy=user.context_strategy,
            cache_enabled=user.cache_enabled,
        )
        if user.last_inbound_at is not None:
            reply.last_inbound_at.FromDatetime(user.last_inbound_at)
        return reply

    async def SendMessage(
        self, request: whatsapp_pb2.SendMessageRequest, context: grpc.aio.ServicerContext
    ) -> whatsapp_pb2.SendMessageReply:
        if not request.wa_id:
            raise InvalidArgumentError("wa_id is required", field="wa_id")
        if not request.text.strip() and not request.template_name:
            raise InvalidArgumentError("give text or template_name", field="text")
        user = await self._inbox.load_user(request.wa_id)
        if user is None:
            raise NotFoundError(f"no WhatsApp user {request.wa_id!r}")
        now = self._clock()
        try:
            if request.text.strip() and window_open(user.last_inbound_at, now, self._policy):
                ids = []
                for part in split_message(request.text):
                    ids.append(await self._sender.send_text(request.wa_id, part))
                    await self._inbox.record_sent(None, message_id=ids[-1], kind="text", now=now)
                return whatsapp_pb2.SendMessageReply(message_ids=ids)
            if not request.template_name:
                raise InvalidArgumentError(
                    f"{request.wa_id} has not written in the last 24 hours, so WhatsApp only "
                    "allows a template: give template_name",
                    field="template_name",
                )
            sent = await self._sender.send_template(
                request.wa_id, request.template_name, self._language
            )
        except GraphError as exc:
            if exc.retryable:
                raise UnavailableError(exc.message) from exc
            raise InvalidArgumentError(exc.message, field="wa_id") from exc
        await self._inbox.record_sent(None, message_id=sent, kind="template", now=now)
        return whatsapp_pb2.SendMessageReply(message_ids=[sent], sent_as_template=True)
