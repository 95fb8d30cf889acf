"""The front as a PNG and a small self-contained HTML page, presets marked."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping, Sequence
from pathlib import Path

from llmproxy.optimizer.pcs.objectives import OBJECTIVES
from llmproxy.optimizer.repository import Evaluation

__all__ = ["front_png", "write_front_html", "write_front_png"]

_LABELS = {
    "mean_error": "mean prediction error (%)",
    "p99_error": "p99 prediction error (%)",
    "mean_jct": "mean JCT (s)",
    "p99_jct": "p99 JCT (s)",
    "mean_unfairness": "mean unfairness (%)",
    "p99_unfairness": "p99 unfairness (%)",
}
_PRESET_STYLE = {"pred": ("#1b9e77", "s"), "bal": ("#7570b3", "D"), "jct": ("#d95f02", "^")}


def _value(point: Evaluation, objective: str) -> float:
    return point.metrics[OBJECTIVES[objective]]


def front_png(
    points: Sequence[Evaluation],
    objectives: Sequence[str],
    *,
    title: str,
    references: Mapping[str, Mapping[str, float]] | None = None,
) -> bytes:
    """Every evaluated point (grey), the front (blue line), presets and optional reference
    points (e.g. the published configurations) on the first two objectives, log scales."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x_obj, y_obj = objectives[0], objectives[1]
    fig, ax = plt.subplots(figsize=(7, 4.8), dpi=110)
    failed = sum(1 for p in points if p.failed)
    points = [p for p in points if not p.failed]  # NaN metrics: nothing to draw
    xs = [_value(p, x_obj) for p in points]
    ys = [_value(p, y_obj) for p in points]
    label = f"evaluated ({len(points)}{f', {failed} failed not shown' if failed else ''})"
    ax.scatter(xs, ys, s=10, c="#bbbbbb", label=label)
    front = sorted((p for p in points if p.on_front), key=lambda p: _value(p, x_obj))
    ax.plot(
        [_value(p, x_obj) for p in front],
        [_value(p, y_obj) for p in front],
        "o-",
        c="#1f78b4",
        ms=4,
        label=f"front ({len(front)})",
    )
    for p in points:
        for preset in p.presets:
            color, marker = _PRESET_STYLE.get(preset, ("k", "*"))
            ax.scatter(
                [_value(p, x_obj)],
                [_value(p, y_obj)],
                s=90,
                c=color,
                marker=marker,
                edgecolors="k",
                zorder=5,
                label=f"preset {preset}",
            )
    for name, metrics in (references or {}).items():
        ax.scatter(
            [metrics[OBJECTIVES[x_obj]]],
            [metrics[OBJECTIVES[y_obj]]],
            s=70,
            marker="x",
            zorder=6,
            label=name,
        )
    for axis, values in ((ax.set_xscale, xs), (ax.set_yscale, ys)):
        if values and min(values) > 0:
            axis("log")
        else:
            axis("symlog", linthresh=0.1)  # type: ignore[operator]
    ax.set_xlabel(_LABELS[x_obj])
    ax.set_ylabel(_LABELS[y_obj])
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def write_front_png(path: Path, png: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png)
    return path


def write_front_html(
    path: Path,
    png: bytes,
    points: Sequence[Evaluation],
    objectives: Sequence[str],
    *,
    title: str,
) -> Path:
    """A page with the plot and one table row per front point (presets first)."""
    front = [p for p in points if p.on_front]
    front.sort(key=lambda p: (not p.presets, _value(p, objectives[0])))
    head = "".join(f"<th>{html.escape(_LABELS[o])}</th>" for o in objectives)
    rows = []
    for p in front:
        cells = "".join(f"<td>{_value(p, o):,.3f}</td>" for o in objectives)
        rows.append(
            f"<tr><td>{html.escape(','.join(p.presets))}</td><td><code>{p.config_hash}</code></td>"
            f"{cells}<td>{html.escape(p.candidate.describe())}</td></tr>"
        )
    image = base64.b64encode(png).decode()
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:3px 8px;font-size:13px;text-align:right}}</style></head>
<body><h1>{html.escape(title)}</h1>
<p>{len(points)} configurations evaluated, {len(front)} on the Pareto front.
Apply one with <code>llmproxy search apply SEARCH_ID --preset pred|bal|jct</code>
or <code>--candidate HASH</code>.</p>
<img alt="Pareto front" src="data:image/png;base64,{image}">
<table><tr><th>preset</th><th>candidate</th>{head}<th>configuration</th></tr>
{"".join(rows)}
</table></body></html>
"""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page)
    return path
