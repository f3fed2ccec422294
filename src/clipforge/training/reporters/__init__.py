"""Experiment trackers, chosen by name with ``--report-to tensorboard,wandb,csv``
(``run.report_to``). One file per reporter, one :class:`~.base.Reporter` interface, one table.

``metrics.jsonl``, ``metrics.json`` and ``train.log`` are always written; these add to them:

- ``csv``: ``metrics.csv``, the same rows as ``metrics.jsonl`` (:mod:`.csv_file`);
- ``tensorboard``: event files under ``OUT/tensorboard`` (:mod:`.tensorboard_events`);
- ``wandb``: a W&B run, offline unless ``WANDB_MODE`` says otherwise (:mod:`.wandb_offline`).

TensorBoard and W&B come with the ``track`` extra: ``pip install 'clipforge[track]'``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ...registry import Registry
from .base import EVAL_PREFIX, Reporter
from .csv_file import CsvReporter
from .tensorboard_events import TensorBoardReporter
from .wandb_offline import WandbReporter

REPORTERS: Registry[type[Reporter]] = Registry(
    "reporter",
    {"csv": CsvReporter, "tensorboard": TensorBoardReporter, "wandb": WandbReporter},
)


def parse_report_to(value: str | Sequence[str] | None) -> list[str]:
    """``"tensorboard,wandb"`` or ``["tensorboard", "wandb"]`` → checked, de-duplicated names
    (``none`` or empty: no reporter); an unknown name raises ValueError listing the known."""
    if value is None:
        return []
    items = value.split(",") if isinstance(value, str) else list(value)
    names: list[str] = []
    for item in items:
        name = str(item).strip().lower()
        if not name or name == "none" or name in names:
            continue
        if name not in REPORTERS:
            raise ValueError(
                f"run.report_to: unknown reporter {name!r}; known reporters: "
                f"{', '.join(REPORTERS.names())}"
            )
        names.append(name)
    return names


class Reporters:
    """The chosen reporters as one: each call goes to all of them. Built before the run
    directory is written (a missing package fails first), started once it exists."""

    def __init__(self, names: Sequence[str], out: Path, resume_step: int | None = None):
        self.reporters = [REPORTERS.get(name)(out, resume_step) for name in names]

    def start(self, config: dict[str, Any]) -> None:
        for reporter in self.reporters:
            reporter.start(config)

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        for reporter in self.reporters:
            reporter.log(step, metrics)

    def log_eval(self, step: int, evals: dict[str, Any]) -> None:
        """An evaluation's metrics, keyed ``eval/NAME`` (apart from a training row's)."""
        if evals:
            self.log(step, {f"{EVAL_PREFIX}{key}": value for key, value in evals.items()})

    def finish(self, summary: dict[str, Any]) -> None:
        for reporter in self.reporters:
            reporter.finish(summary)


__all__ = ["REPORTERS", "Reporter", "Reporters", "parse_report_to"]
