"""``metrics.csv`` beside ``metrics.jsonl``: the same rows, one per logged training step, for a
spreadsheet or ``pandas.read_csv``.

The columns are fixed by the first row (``step, epoch, loss, lr, samples_per_s, logit_scale,
skipped``, then the objective terms) and never change within a run, so the file stays a
rectangle; evaluation rows (``eval/…``) live in ``eval.jsonl`` and are not written here. On
resume, rows past the resumed step are dropped, as ``metrics.jsonl`` does.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from .base import is_eval_row

FILE = "metrics.csv"


class CsvReporter:
    def __init__(self, out: Path, resume_step: int | None = None):
        self.path = Path(out) / FILE
        self.resume_step = resume_step
        self.columns: list[str] | None = None

    def start(self, config: dict[str, Any]) -> None:
        if self.resume_step is None or not self.path.exists():
            self.path.write_text("")
            return
        with self.path.open(newline="") as handle:
            rows = list(csv.DictReader(handle))
            columns = list(rows[0]) if rows else None
        kept = [row for row in rows if int(row["step"]) <= self.resume_step]
        self.columns = columns
        self._rewrite(kept)

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        if is_eval_row(metrics):
            return
        row = {"step": step, **metrics}
        new_file = self.columns is None
        if self.columns is None:
            self.columns = list(row)
        with self.path.open("a", newline="") as handle:
            writer = csv.DictWriter(handle, self.columns, extrasaction="ignore")
            if new_file:
                writer.writeheader()
            writer.writerow(row)

    def finish(self, summary: dict[str, Any]) -> None:
        pass  # every row is on disk as it is logged

    def _rewrite(self, rows: list[dict[str, Any]]) -> None:
        with self.path.open("w", newline="") as handle:
            if self.columns:
                writer = csv.DictWriter(handle, self.columns)
                writer.writeheader()
                writer.writerows(rows)
