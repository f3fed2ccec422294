"""The table ``clipforge eval`` prints: rates ×100 with two decimals, other values as they are."""

from __future__ import annotations

import math
from typing import Any

RATE_PREFIXES = (
    "acc",
    "mean_per_class_recall",
    "image_retrieval_recall",
    "text_retrieval_recall",
    "pointing_game",
    "box_iou50",
    "lp_acc",
    "lp_mean_per_class_recall",
    "views_prediction_agreement",
    "views_acc1",
)
ROBUSTNESS_PREFIXES = ("clean_", "adv_")  # robustness: clean_acc1, adv_acc1 … are rates too
SKIPPED_SHOWN = 5


def format_value(name: str, value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    bare = name
    for prefix in ROBUSTNESS_PREFIXES:
        bare = bare.removeprefix(prefix)
    if bare.startswith(RATE_PREFIXES):
        return f"{100 * value:.2f}"
    return f"{value:.4f}"


def format_result(result: dict[str, Any]) -> str:
    """A header line (task, model, data, counts), one row per metric, then skipped records."""
    counts = [f"{result.get('num_samples', 0)} images"]
    for key, label in (
        ("num_texts", "texts"),
        ("num_regions", "regions"),
        ("num_classes", "classes"),
        ("num_templates", "templates"),
    ):
        if key in result:
            counts.append(f"{result[key]} {label}")
    lines = [
        f"{result['task']}: {result.get('model', '?')} on {result.get('dataset', '?')} "
        f"({', '.join(counts)})"
    ]
    metrics = result["metrics"]
    width = max([len("metric"), *map(len, metrics)])
    lines.append(f"{'metric'.ljust(width)}  {'value':>7}")
    for name, value in metrics.items():
        lines.append(f"{name.ljust(width)}  {format_value(name, value):>7}")
    lines.append("(rates ×100)")
    skipped = result.get("skipped") or []
    if skipped:
        shown = ", ".join(f"{s['key']} ({s['reason']})" for s in skipped[:SKIPPED_SHOWN])
        more = f" and {len(skipped) - SKIPPED_SHOWN} more" if len(skipped) > SKIPPED_SHOWN else ""
        lines.append(f"skipped {len(skipped)} records: {shown}{more}")
    return "\n".join(lines)
