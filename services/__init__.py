"""LLMProxy: a cost-saving, predictable front door to LLMs and GPU clusters."""

__version__ = "0.1.0"
