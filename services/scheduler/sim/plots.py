"""PNG plots of a comparison: JCT CDF and prediction-error CDF (needs matplotlib)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .driver import SimulationResult
from .metrics import prediction_error

__all__ = ["PlotsUnavailableError", "plot_cdfs"]


class PlotsUnavailableError(RuntimeError):
    """matplotlib is not installed."""


def _cdf(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    values = np.sort(values[~np.isnan(values)])
    return values, np.arange(1, len(values) + 1) / max(len(values), 1)


def plot_cdfs(
    results: Sequence[SimulationResult], labels: Sequence[str], out_dir: Path, title: str
) -> list[Path]:
    """Write ``jct_cdf.png`` and ``error_cdf.png`` under ``out_dir``; returns their paths."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise PlotsUnavailableError("plots need matplotlib: pip install matplotlib") from error
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, xlabel, series in (
        ("jct_cdf.png", "JCT (s)", [r.jct for r in results]),
        ("error_cdf.png", "prediction error (%)", [prediction_error(r) for r in results]),
    ):
        fig, ax = plt.subplots(figsize=(6, 4))
        for label, values in zip(labels, series, strict=True):
            x, y = _cdf(values)
            if name == "error_cdf.png":
                x = np.maximum(x, 1e-3)
            ax.step(x, y, where="post", label=label)
        ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("CDF")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = out_dir / name
        fig.savefig(path, dpi=120)
        plt.close(fig)
        written.append(path)
    return written
