"""Profiler: usage, spend and model/job profiles learned from completion events."""
