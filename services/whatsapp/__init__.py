"""WhatsApp Cloud API channel: people ask questions from their phone and get answers.

Path of a message: ``webhook`` (Starlette: signature, size, parse; optionally served by
``ingress`` on an event loop and NATS connection of its own, in a thread) → JetStream
(``whatsapp.inbound``; Meta gets its 200 once the message is stored) → ``intake`` (writes the
durable inbox, de-duplicating by message id) → ``worker`` (claims each user's oldest message,
decides, asks the gateway, sends the reply through the Graph API). The "Got it" notice's
wait comes from the gateway's Quote (profiled latency) unless AskStream's ETA reports a
queue (``core.predicted_wait``).

Pure cores (no I/O): ``signature`` (X-Hub-Signature-256), ``payload`` (the webhook's JSON),
``commands`` (what a text asks for), ``core`` (decisions: limits, windows, preferences,
replies' wording), ``splitting`` (replies over WhatsApp's 4,096 characters). Adapters:
``webhook``, ``ingress``, ``intake``, ``inbox`` (the database rows), ``graph`` (Graph API client),
``upstream`` (gateway and context over gRPC), ``worker``, ``servicer`` (operator gRPC API).
Wiring: ``service``.
"""
