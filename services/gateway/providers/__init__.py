"""Model providers: the port and its adapters."""

from llmproxy.gateway.providers.port import ChatMessage, ChatRequest, ChatResult, Provider

__all__ = ["ChatMessage", "ChatRequest", "ChatResult", "Provider"]
