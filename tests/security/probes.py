"""The record of what the security suite probed, printed as a table at the end of the run."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PROBES", "Probe", "probed"]


@dataclass(frozen=True, slots=True)
class Probe:
    area: str
    what: str
    outcome: str


PROBES: list[Probe] = []


def probed(area: str, what: str, outcome: str) -> None:
    """Record one probe that passed (call it after the probe's assertions)."""
    PROBES.append(Probe(area, what, outcome))
