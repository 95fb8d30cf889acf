"""A small client of the gateway for the CLI (and scripts)."""

from __future__ import annotations

import grpc

from llmproxy.platform.errors import LLMProxyError
from llmproxy.platform.grpc_boundary import error_from_rpc
from llmproxy.v1 import common_pb2, gateway_pb2, gateway_pb2_grpc

__all__ = ["ask_once", "format_reply"]


async def ask_once(
    address: str,
    question: str,
    *,
    conversation_id: str = "",
    model: str = "",
    system_prompt: str = "",
    max_tokens: int = 256,
    timeout_s: float = 120.0,
    api_key: str = "",
) -> gateway_pb2.AskReply:
    """Ask the gateway at ``address`` once; ``api_key`` goes in the authorization metadata."""
    request = gateway_pb2.AskRequest(
        prompt=question,
        system_prompt=system_prompt,
        scope=common_pb2.Scope(conversation_id=conversation_id),
        preferences=common_pb2.Preferences(pinned_model=model),
        generation=common_pb2.GenerationParams(max_tokens=max_tokens),
    )
    async with grpc.aio.insecure_channel(address) as channel:
        try:
            metadata = (("authorization", f"Bearer {api_key}"),) if api_key else None
            return await gateway_pb2_grpc.GatewayStub(channel).Ask(
                request, timeout=timeout_s, metadata=metadata
            )
        except grpc.aio.AioRpcError as exc:
            error = error_from_rpc(exc, peer=f"the gateway at {address}")
            raise LLMProxyError(error.message) from exc


def format_reply(reply: gateway_pb2.AskReply) -> str:
    usage = reply.usage
    latency_ms = reply.latency.ToMilliseconds()
    cost = reply.cost.cost_nanousd / 1e9
    saved = reply.cost.saved_nanousd / 1e9
    return (
        f"{reply.answer.strip()}\n\n"
        f"— model {reply.choice.model} ({reply.choice.policy}) · "
        f"tokens {usage.input_tokens} in / {usage.output_tokens} out · "
        f"latency {latency_ms} ms · cost ${cost:.6f} "
        f"(saved ${saved:.6f} vs {reply.cost.reference_model or 'the reference model'})\n"
        f"  conversation {reply.conversation_id or '-'} · request {reply.request_id}"
    )
