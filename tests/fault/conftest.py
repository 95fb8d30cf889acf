"""The fault suite's marker: ``pytest -m fault tests/fault`` runs it (about 4 minutes on
2 shared cores); a run that does not ask for it by marker skips it and says how to run it."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "fault: fault injection through the whole stack (minutes; pytest -m fault)"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if "fault" in (config.option.markexpr or ""):
        return
    skip = pytest.mark.skip(reason="the fault suite runs on request: pytest -m fault tests/fault")
    for item in items:
        if item.get_closest_marker("fault") is not None:
            item.add_marker(skip)
