"""Model providers: the port and its adapters."""

from llmproxy.gateway.providers.port import ChatRequest, ChatResult, ChatMessage, Provider

__all__ = ["ChatMessage", "ChatRequest", "ChatResult", "Provider"]
