"""Event bus: port, NATS JetStream adapter, in-memory fake, stream catalog."""

from llmproxy.platform.bus.port import (
    Deduplicator,
    Delivery,
    Envelope,
    EventBus,
    ForgettingDeduplicator,
    Handler,
    Subscription,
)

__all__ = [
    "Deduplicator",
    "Delivery",
    "Envelope",
    "EventBus",
    "ForgettingDeduplicator",
    "Handler",
    "Subscription",
]
