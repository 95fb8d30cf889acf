"""Gateway: the front door — gRPC ``Gateway`` service and the OpenAI-compatible HTTP API,
API keys, budgets and rate limits, providers with retries and fallback."""
