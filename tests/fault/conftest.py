"""The fault suite runs on request: ``pytest -m fault tests/fault`` (about 5 minutes on 2
shared cores; the ``fault`` marker is registered in pyproject.toml). A run that does not ask
for it by marker skips it and says how to run it."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if "fault" in (config.option.markexpr or ""):
        return
    skip = pytest.mark.skip(reason="the fault suite runs on request: pytest -m fault tests/fault")
    for item in items:
        if item.get_closest_marker("fault") is not None:
            item.add_marker(skip)
