"""The embedded stack behind ``llmproxy up``: one machine, no containers."""
