"""Accuracy (and recall) against ε: the curve a robustness sweep is read from.

x: ε in grey levels (ε·255), starting at 0 = the clean score; y: zero-shot top-1 accuracy and,
when retrieval was attacked, text → image and image → text recall@1, in %.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...common.files import atomic_write
from ...common.optional import require

CURVES = (
    ("acc1", "zero-shot top-1"),
    ("image_retrieval_recall@1", "text→image R@1"),
    ("text_retrieval_recall@1", "image→text R@1"),
)


def plot_sweep(result: dict[str, Any], path: str | Path) -> Path:
    """Write the PNG of ``result["sweep"]`` (see :func:`.task.robustness`); returns its path."""
    matplotlib = require("matplotlib", "plots", "the accuracy-vs-eps plot")
    matplotlib.use("Agg")
    pyplot = require("matplotlib.pyplot", "plots", "the accuracy-vs-eps plot")
    figure, axes = pyplot.subplots(figsize=(5.5, 3.8))
    metrics, sweep = result["metrics"], result["sweep"]
    for key, label in CURVES:
        if f"clean_{key}" not in metrics:
            continue
        xs = [0.0] + [entry["eps"] * 255 for entry in sweep]
        ys = [metrics[f"clean_{key}"]] + [entry["metrics"][f"adv_{key}"] for entry in sweep]
        axes.plot(xs, [100 * y for y in ys], marker="o", label=label)
    axes.set_xlabel("ε (×1/255, L∞, pixel space)")
    axes.set_ylabel("%")
    axes.set_ylim(bottom=0)
    axes.set_title(f"{result['attack'].upper()} on {result.get('dataset', 'data')}", fontsize=9)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    try:
        return atomic_write(
            path, lambda temporary: figure.savefig(temporary, format="png", dpi=110)
        )
    finally:
        pyplot.close(figure)
