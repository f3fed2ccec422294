"""The plots of ``report.html``: one renderer per task, each turning the models' results into PNGs.

A renderer takes the result dicts of one (task, data set) — one per model, in the report's
model order, each in CLIP_benchmark's schema (``metrics`` inside) — and the models' short
labels, and returns :class:`Plot` s (a title and PNG bytes, embedded as base64 by
:mod:`.report_html`). :data:`PLOT_RENDERERS` maps a task name (the ``task`` a result JSON
carries) to its renderer; a task it does not name gets its table and no plot, so adding the
plots of a new result kind (a geometry projection, robustness accuracy-vs-ε curves) is one
function here plus one line in the table.

matplotlib is the ``plots`` extra: it is imported through
:func:`~clipforge.common.optional.require` inside the functions, and only its object-oriented
``Figure`` is used (no pyplot, no backend switch: nothing global changes in the caller's
process). Rates are drawn ×100, as ``clipforge eval`` prints them.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..common.optional import require
from ..registry import Registry
from .report import RATE_PREFIXES

PLOTS_PURPOSE = "the benchmark report's plots"
RECALL_KEY = re.compile(r"^(image|text)_retrieval_recall@(\d+)$")
DPI = 100


@dataclass(frozen=True)
class Plot:
    title: str
    png: bytes


Renderer = Callable[[list[dict[str, Any]], list[str]], list[Plot]]


def _figure(width: float, height: float):
    """A matplotlib Figure not attached to pyplot (so no global backend state)."""
    require("matplotlib", "plots", PLOTS_PURPOSE)
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _rate(value: Any) -> float | None:
    return None if value is None else 100.0 * float(value)


def grouped_bars(results: list[dict[str, Any]], labels: list[str]) -> list[Plot]:
    """One group of bars per rate metric (acc1, recall@k, pointing game…), one bar per model.

    Metrics that are not rates (``modality_gap``) have another scale and stay in the table."""
    metrics = [
        name
        for name in dict.fromkeys(k for r in results for k in r["metrics"])
        if name.startswith(RATE_PREFIXES)
    ]
    if not metrics:
        return []
    figure = _figure(max(5.0, 1.1 * len(metrics) + 2.0), 3.4)
    axes = figure.add_subplot()
    width = 0.8 / len(results)
    for index, (result, label) in enumerate(zip(results, labels, strict=True)):
        values = [_rate(result["metrics"].get(name)) or 0.0 for name in metrics]
        positions = [m + (index - (len(results) - 1) / 2) * width for m in range(len(metrics))]
        bars = axes.bar(positions, values, width, label=label)
        axes.bar_label(bars, fmt="%.1f", fontsize=7, padding=1)
    axes.set_xticks(range(len(metrics)), metrics, rotation=20, ha="right", fontsize=8)
    axes.set_ylabel("×100")
    axes.legend(fontsize=8)
    axes.grid(axis="y", alpha=0.3)
    return [Plot("metrics by model", _png(figure))]


def recall_curves(results: list[dict[str, Any]], labels: list[str]) -> list[Plot]:
    """Recall@k against k, text→image and image→text side by side, one line per model."""
    curves: dict[str, list[dict[int, float]]] = {"image": [], "text": []}
    for result in results:
        by_direction: dict[str, dict[int, float]] = {"image": {}, "text": {}}
        for key, value in result["metrics"].items():
            match = RECALL_KEY.match(key)
            if match and value is not None:
                by_direction[match.group(1)][int(match.group(2))] = _rate(value) or 0.0
        for direction in curves:
            curves[direction].append(by_direction[direction])
    if not any(points for direction in curves.values() for points in direction):
        return []
    figure = _figure(8.0, 3.2)
    titles = {"image": "text → image (image_retrieval)", "text": "image → text (text_retrieval)"}
    for column, direction in enumerate(curves, start=1):
        axes = figure.add_subplot(1, 2, column)
        for points, label in zip(curves[direction], labels, strict=True):
            ks = sorted(points)
            axes.plot(ks, [points[k] for k in ks], marker="o", label=label)
        axes.set_title(titles[direction], fontsize=9)
        axes.set_xlabel("k")
        axes.set_ylabel("recall@k ×100")
        axes.set_ylim(0, 100)
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8)
    return [Plot("recall@k", _png(figure))]


def retrieval_plots(results: list[dict[str, Any]], labels: list[str]) -> list[Plot]:
    return recall_curves(results, labels) + grouped_bars(results, labels)


PLOT_RENDERERS: Registry[Renderer] = Registry(
    "report plot",
    {
        "zeroshot_classification": grouped_bars,
        "zeroshot_retrieval": retrieval_plots,
        "grounding": grouped_bars,
    },
)
