"""Exact and semantic response cache."""
