"""Result JSONs in CLIP_benchmark's schema → one CSV, as ``clip_benchmark build`` makes it.

``clip_benchmark build FILES_OR_DIRS --output benchmark.csv`` reads each result, moves its
``metrics`` up beside the other keys and adds ``model_fullname = model + " " + pretrained``: one row
per (model, data set, task), one column per key. This does the same for clipforge's results and
CLIP_benchmark's own, with two differences a spreadsheet user wants: columns come in a fixed
order (the schema keys, then metrics as first seen) instead of a set's random one, and values
that are lists or mappings (clipforge's ``templates``, ``skipped``) are left out of the table.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..common.files import atomic_write_text, read_json

SCHEMA_KEYS = ("dataset", "model", "pretrained", "task", "language")
CSV_NAME = "benchmark.csv"  # clip_benchmark build's default --output


def result_files(paths: Iterable[str | Path]) -> list[Path]:
    """The ``.json`` files given, and those directly inside the folders given (sorted)."""
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            files.extend(
                sorted(
                    p
                    for p in path.iterdir()
                    if p.suffix == ".json" and p.is_file() and not p.name.startswith(".")
                )
            )
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f"{path}: no such result file or folder")
    return files


def is_result(data: Any) -> bool:
    return isinstance(data, dict) and isinstance(data.get("metrics"), dict) and "model" in data


def result_row(data: dict[str, Any]) -> dict[str, Any]:
    """One CSV row: the metrics, then the other scalar keys, then ``model_fullname``."""
    row: dict[str, Any] = dict(data["metrics"])
    row.update(
        (key, value)
        for key, value in data.items()
        if key != "metrics" and not isinstance(value, (list, dict))
    )
    row["model_fullname"] = f"{data['model']} {data.get('pretrained', '')}".strip()
    return row


def load_results(paths: Iterable[str | Path]) -> list[dict[str, Any]]:
    """Every result JSON among ``paths`` (files, or folders read one level deep); other JSON
    files are passed over."""
    return [data for data in map(read_json, result_files(paths)) if is_result(data)]


def collect_rows(paths: Iterable[str | Path]) -> list[dict[str, Any]]:
    """Rows of every result JSON among ``paths``."""
    return [result_row(data) for data in load_results(paths)]


def columns(rows: list[dict[str, Any]]) -> list[str]:
    first = [*SCHEMA_KEYS, "model_fullname"]
    seen = [key for row in rows for key in row if key not in first]
    return [key for key in first if any(key in row for row in rows)] + list(dict.fromkeys(seen))


def write_csv(rows: list[dict[str, Any]], path: str | Path) -> Path:
    """The rows as CSV (empty cells where a row lacks a column; NaN/None empty too)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns(rows), restval="")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: "" if value is None else value for key, value in row.items()})
    return atomic_write_text(path, buffer.getvalue())
