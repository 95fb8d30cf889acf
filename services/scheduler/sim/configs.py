"""WFQ configurations for the simulator: the PCS authors' published points
(``pcs/paper_configs.json``) and user files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..core import ConfigError, WfqConfig
from .workload import DEFAULT_DATA_DIR

__all__ = ["PRESETS", "load_config_file", "paper_config", "paper_config_traces"]

#: the artifact's Pareto points: most predictable, balanced, lowest JCT
PRESETS = ("pred", "bal", "jct")


def _paper_file(data_dir: Path) -> Path:
    return data_dir / "paper_configs.json"


def paper_config_traces(data_dir: Path = DEFAULT_DATA_DIR) -> list[str]:
    """Workloads the published configurations cover."""
    path = _paper_file(data_dir)
    if not path.exists():
        return []
    names = json.loads(path.read_text())["configs"]
    return sorted({key.removeprefix("PCS_config_").rsplit("_", 1)[0] for key in names})


def paper_config(trace: str, preset: str, data_dir: Path = DEFAULT_DATA_DIR) -> WfqConfig:
    """The published WFQ configuration for ``trace`` (``0e4a51``) at ``preset``."""
    if preset not in PRESETS:
        raise ConfigError("preset", f"{preset!r} is not one of {', '.join(PRESETS)}")
    path = _paper_file(data_dir)
    if not path.exists():
        raise ConfigError("preset", f"{path} is missing")
    configs = json.loads(path.read_text())["configs"]
    key = f"PCS_config_{trace}_{preset}.pkl"
    if key not in configs:
        known = ", ".join(paper_config_traces(data_dir))
        raise ConfigError("preset", f"no published {preset!r} config for {trace!r}; known: {known}")
    return WfqConfig.from_mapping(configs[key]["raw"])


def load_config_file(path: Path) -> WfqConfig:
    """A WFQ configuration from a JSON file: our keys (``thresholds``, ``weights``) or the
    artifact's (``class_thresholds``, ``class_rates``), optionally under ``raw``."""
    data: Any = json.loads(path.read_text())
    if isinstance(data, dict) and "raw" in data:
        data = data["raw"]
    if not isinstance(data, dict):
        raise ConfigError(str(path), "expected a JSON object")
    return WfqConfig.from_mapping(data)
