"""The table printed at the end of a run: what was trained, how it scores next to chance, what
``modality_gap`` means, and the commands that use the run.

Chance levels (a model that ranks at random), from the validation set's sizes:

- ``acc@k`` = k / C, ``mean_per_class_recall`` = 1 / C for C classes;
- ``image_retrieval_recall@k`` (a caption finds its image among N) = k / N;
- ``text_retrieval_recall@k`` (an image finds one of its m captions among M) =
  1 − C(M − m, k) / C(M, k), with m = M / N captions per image.
"""

from __future__ import annotations

import math
import re
import shlex
from pathlib import Path
from typing import Any

from .config import SOURCE_OPTION_FIELDS

GAP_LINE = (
    "modality_gap = ‖mean image embedding − mean text embedding‖ on the validation set "
    "(0 to 2; lower: images and captions share one region of the space; "
    "`clipforge refine` narrows it)"
)


def chance_level(metric: str, sizes: dict[str, int | None]) -> float | None:
    """Score of random ranking for ``metric`` given ``{"classes", "images", "texts"}``."""
    classes, images, texts = sizes.get("classes"), sizes.get("images"), sizes.get("texts")
    k = int(match.group(1)) if (match := re.search(r"(\d+)$", metric)) else 1
    if metric.startswith("acc") and classes:
        return min(1.0, k / classes)
    if metric == "mean_per_class_recall" and classes:
        return 1 / classes
    if metric.startswith("image_retrieval_recall") and images:
        return min(1.0, k / images)
    if metric.startswith("text_retrieval_recall") and images and texts:
        per_image = max(1, round(texts / images))
        if k >= texts - per_image + 1:
            return 1.0
        return 1 - math.comb(texts - per_image, k) / math.comb(texts, k)
    return None


def format_summary(summary: dict[str, Any], out: Path) -> str:
    lines = [
        f"run: {out}",
        (
            f"steps {summary['steps']}  samples {summary['samples_seen']}  "
            f"train time {summary['train_seconds']:.0f} s  precision {summary['precision']}  "
            f"skipped records {summary['skipped_records']['count']}"
        ),
    ]
    metrics = {k: v for k, v in (summary.get("eval") or {}).items() if isinstance(v, (int, float))}
    if metrics:
        sizes = summary.get("eval_sizes") or {}
        width = max(len(k) for k in metrics)
        lines.append("held-out evaluation".ljust(width) + "      value     chance")
        for key, value in metrics.items():
            chance = chance_level(key, sizes)
            shown = (
                _shown(key, value) + "  " + (_shown(key, chance) if chance is not None else " " * 9)
            )
            lines.append(f"{key.ljust(width)}  {shown}".rstrip())
        if "modality_gap" in metrics:
            lines.append(GAP_LINE)
    lines.extend(next_steps(out, summary))
    return "\n".join(lines)


def next_steps(out: Path, summary: dict[str, Any]) -> list[str]:
    """The eval, embed, index and serve commands for this run's directory."""
    config = summary.get("config") or {}
    data = config.get("data") or {}
    val, train = data.get("val"), data.get("train") or "builtin:emoji"
    options = {key: data[key] for key in SOURCE_OPTION_FIELDS if data.get(key) is not None}
    if options:  # --csv-img-key …: the suggested commands must read the data the same way
        from ..data.sources.base import spec_with_options

        train = spec_with_options(train, options)
        val = spec_with_options(val, options) if val and val != "auto" else val
    run, quoted = str(out), shlex.quote
    lines = ["next steps:"]
    if val:
        lines.append(f"  clipforge eval retrieval --model {quoted(run)} --data {quoted(val)}")
    lines += [
        (
            f"  clipforge embed --model {quoted(run)} --data {quoted(train)} "
            f"--out {quoted(run + '/embeddings')}"
        ),
        (
            f"  clipforge index --embeddings {quoted(run + '/embeddings')} "
            f"--out {quoted(run + '/index')}"
        ),
        f"  clipforge serve --index {quoted(run + '/index')}",
    ]
    return lines


def _shown(key: str, value: float) -> str:
    return f"{100 * value:7.2f} %" if _is_rate(key) else f"{value:9.4f}"


def _is_rate(key: str) -> bool:
    return key.startswith(("acc", "mean_per_class", "image_retrieval", "text_retrieval"))


def print_summary(summary: dict[str, Any], out: Path) -> None:
    print(format_summary(summary, out))
