"""The run directory's logs: ``metrics.jsonl`` (a line per logged step), ``metrics.json``
(the run summary) and ``loss_curve.png`` (drawn when matplotlib, the ``plots`` extra, is
installed)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from ..common.files import atomic_write, atomic_write_text
from ..common.optional import try_import
from . import console


class MetricsLog:
    """Appends one JSON object per logged step; on resume, drops lines past the resumed step so
    the file continues exactly where the checkpoint left off."""

    def __init__(self, path: Path, resume_step: int | None = None):
        self.path = path
        if resume_step is None:
            path.write_text("")
        elif path.exists():
            kept = [
                line
                for line in path.read_text().splitlines()
                if line.strip() and json.loads(line).get("step", 0) <= resume_step
            ]
            path.write_text("".join(line + "\n" for line in kept))

    def write(self, row: dict[str, Any]) -> None:
        with self.path.open("a") as handle:
            handle.write(json.dumps(row) + "\n")

    def rows(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]


def write_summary(path: Path, summary: dict[str, Any]) -> None:
    atomic_write_text(path, json.dumps(summary, indent=2, default=str))


def plot_loss_curve(rows: list[dict[str, Any]], path: Path, title: str = "") -> bool:
    """Training loss (and learning rate on a second axis) against step. matplotlib comes with
    the ``plots`` extra: without it this says so in one line and returns False (the numbers
    are in ``metrics.jsonl``)."""
    matplotlib = try_import("matplotlib")
    if matplotlib is None:
        console.say(
            f"note: {path.name} not drawn: matplotlib is not installed "
            f"(pip install 'clipforge[plots]'); the numbers are in metrics.jsonl"
        )
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["step"] for r in rows if "loss" in r and math.isfinite(r["loss"])]
    losses = [r["loss"] for r in rows if "loss" in r and math.isfinite(r["loss"])]
    figure, axis = plt.subplots(figsize=(7, 4), dpi=110)
    axis.plot(steps, losses, color="tab:blue", label="train loss")
    axis.set_xlabel("step")
    axis.set_ylabel("loss", color="tab:blue")
    axis.grid(alpha=0.3)
    lr_axis = axis.twinx()
    lr_axis.plot(
        [r["step"] for r in rows if "lr" in r],
        [r["lr"] for r in rows if "lr" in r],
        color="tab:orange",
        alpha=0.6,
        label="lr",
    )
    lr_axis.set_ylabel("learning rate", color="tab:orange")
    axis.set_title(title or "clipforge training")
    figure.tight_layout()
    atomic_write(path, figure.savefig)
    plt.close(figure)
    return True
