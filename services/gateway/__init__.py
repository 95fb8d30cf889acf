"""Gateway: the front door (gRPC Gateway service; OpenAI-compatible HTTP comes next)."""
