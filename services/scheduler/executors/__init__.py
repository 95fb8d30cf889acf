"""Executors: agents that own GPUs (or slots) and run what the scheduler assigns them."""

from .agent import ExecutorAgent
from .process import ProcessRunner
from .runner import Runner
from .simulated import SimulatedRunner, true_work

__all__ = ["ExecutorAgent", "ProcessRunner", "Runner", "SimulatedRunner", "true_work"]
