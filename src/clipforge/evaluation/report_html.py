"""``report.html``: the benchmarked models side by side, in one self-contained page.

Read from the result JSONs of a folder (what ``clipforge benchmark`` wrote, or any
CLIP_benchmark results), grouped by (task, data set). Each group gets a table — one row per
metric, one column per model, the best value of each row in bold on green (lowest for the
metrics where lower is better: :data:`LOWER_IS_BETTER`, the modality gap and Wang & Isola's
alignment and uniformity; ties all marked) — and the plots its task's renderer draws
(:data:`~.report_plots.PLOT_RENDERERS`; a task without one gets only its table).

Self-contained: CSS inline, plots as ``data:image/png;base64`` URIs, no script, no link out, so
the file can be mailed or attached to an issue as it is. Without matplotlib (the ``plots``
extra) the page still has every table and says which extra draws the plots.
"""

from __future__ import annotations

import base64
import html
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..common.files import atomic_write_text
from ..common.optional import try_import
from . import aggregate
from .report import format_value
from .report_plots import PLOT_RENDERERS, Plot

REPORT_NAME = "report.html"
LOWER_IS_BETTER = ("modality_gap", "alignment", "uniformity")
NO_PLOTS = "Plots need matplotlib: pip install 'clipforge[plots]'"
STYLE = """
body { font-family: system-ui, sans-serif; margin: 24px; color: #1d2330; background: #fff; }
h1 { font-size: 22px; } h2 { font-size: 17px; margin-top: 28px; }
table { border-collapse: collapse; margin: 8px 0 12px; font-size: 14px; }
th, td { border: 1px solid #c9ced8; padding: 4px 10px; }
th { background: #eef1f6; text-align: left; } td.value { text-align: right; }
td.best { font-weight: bold; background: #d7f0d8; }
.note { color: #5a6275; font-size: 13px; } img { max-width: 100%; display: block; }
figure { margin: 6px 0 14px; } figcaption { font-size: 12px; color: #5a6275; }
"""


@dataclass
class ResultGroup:
    """The results of one (task, data set): one per model, in the report's model order."""

    task: str
    dataset: str
    results: list[dict[str, Any]]


def load_results(folder: str | Path) -> list[dict[str, Any]]:
    """Every result JSON directly in ``folder`` (other JSON files are passed over)."""
    return aggregate.load_results([folder])


def model_labels(models: list[str]) -> list[str]:
    """Short distinct labels: the fewest trailing path parts that tell the models apart
    (``/work/main/runs/demo``, ``/tmp/a/siglip`` → ``demo``, ``siglip``)."""
    parts = [Path(model).parts or (model,) for model in models]
    for depth in range(1, max(len(p) for p in parts) + 1):
        labels = ["/".join(p[-depth:]) for p in parts]
        if len(set(labels)) == len(labels):
            return labels
    return list(models)


def group_results(results: list[dict[str, Any]]) -> tuple[list[str], list[ResultGroup]]:
    """(models in first-seen order, groups in first-seen order); a model's later result for the
    same (task, data set) replaces its earlier one."""
    models = list(dict.fromkeys(str(r["model"]) for r in results))
    cells: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    for result in results:
        key = (str(result.get("task", "?")), str(result.get("dataset", "?")))
        cells.setdefault(key, {})[str(result["model"])] = result
    groups = [
        ResultGroup(task, dataset, [by_model[m] for m in models if m in by_model])
        for (task, dataset), by_model in cells.items()
    ]
    return models, groups


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return None if math.isnan(value) else float(value)


def best_columns(metric: str, values: list[Any]) -> set[int]:
    """The columns holding the row's best value (several on a tie; none without numbers)."""
    numbers = {i: n for i, v in enumerate(values) if (n := _number(v)) is not None}
    if not numbers:
        return set()
    pick = min if metric.startswith(LOWER_IS_BETTER) else max
    best = pick(numbers.values())
    return {i for i, n in numbers.items() if n == best}


def metric_table(group: ResultGroup, labels: dict[str, str]) -> str:
    header = "".join(f"<th>{html.escape(labels[r['model']])}</th>" for r in group.results)
    rows = []
    metrics = dict.fromkeys(k for r in group.results for k in r["metrics"])
    for metric in metrics:
        values = [r["metrics"].get(metric) for r in group.results]
        best = best_columns(metric, values) if len(values) > 1 else set()
        cells = "".join(
            f'<td class="value{" best" if i in best else ""}">'
            f"{html.escape(format_value(metric, _number(v)))}</td>"
            for i, v in enumerate(values)
        )
        rows.append(f"<tr><th>{html.escape(metric)}</th>{cells}</tr>")
    samples = "".join(
        f'<td class="value">{html.escape(str(r.get("num_samples", "")))}</td>'
        for r in group.results
    )
    rows.append(f"<tr><th>num_samples</th>{samples}</tr>")
    return f"<table><tr><th>metric</th>{header}</tr>{''.join(rows)}</table>"


def _figure_html(plot: Plot) -> str:
    data = base64.b64encode(plot.png).decode("ascii")
    title = html.escape(plot.title)
    return (
        f'<figure><img alt="{title}" src="data:image/png;base64,{data}">'
        f"<figcaption>{title}</figcaption></figure>"
    )


def plots_html(group: ResultGroup, labels: dict[str, str]) -> str:
    """The group's plots, '' for a task without a renderer; raises ImportError without
    matplotlib."""
    if group.task not in PLOT_RENDERERS:
        return ""
    renderer = PLOT_RENDERERS.get(group.task)
    plots = renderer(group.results, [labels[r["model"]] for r in group.results])
    return "".join(_figure_html(plot) for plot in plots)


def build_report(results: list[dict[str, Any]], title: str = "clipforge benchmark") -> str:
    """The page's HTML (see the module docstring)."""
    models, groups = group_results(results)
    labels = dict(zip(models, model_labels(models), strict=True))
    sections = []
    plots_missing = try_import("matplotlib") is None  # the tables still come; the page says why
    for group in groups:
        parts = [
            f"<h2>{html.escape(group.task)} on {html.escape(group.dataset)}</h2>",
            metric_table(group, labels),
        ]
        if not plots_missing:
            parts.append(plots_html(group, labels))
        sections.append(f"<section>{''.join(parts)}</section>")
    legend = "".join(
        f"<tr><th>{html.escape(labels[m])}</th><td>{html.escape(m)}</td></tr>" for m in models
    )
    notes = [
        f"{len(models)} models, {len(groups)} task × data set pairs. Rates ×100; the best value "
        f"of each row is highlighted (lowest for {', '.join(LOWER_IS_BETTER)})."
    ]
    if plots_missing:
        notes.append(NO_PLOTS + "; the tables below are complete.")
    note_html = "".join(f'<p class="note">{html.escape(n)}</p>' for n in notes)
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>{note_html}"
        f"<table><tr><th>model</th><th>path</th></tr>{legend}</table>"
        f"{''.join(sections)}</body></html>\n"
    )


def write_report(folder: str | Path, path: str | Path | None = None) -> Path:
    """``folder/report.html`` (or ``path``) from the result JSONs in ``folder``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such results folder")
    results = load_results(folder)
    if not results:
        raise ValueError(f"{folder}: no result JSONs to report (run clipforge benchmark first)")
    return atomic_write_text(path or folder / REPORT_NAME, build_report(results))
