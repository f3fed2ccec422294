"""The interface every experiment tracker implements: ``start(config)``, ``log(step, metrics)``,
``finish(summary)``.

The trainer calls it on rank 0 only, where it writes ``metrics.jsonl``: ``log`` gets the same
row (``step``, ``epoch``, ``loss``, ``lr``, ``samples_per_s``, ``logit_scale``, ``skipped``, the
objective terms) and, after each evaluation, the evaluation's metrics keyed ``eval/NAME``.
A reporter imports its library in ``__init__`` so that a missing package stops the run before
anything is written, with the extra that installs it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Protocol

EVAL_PREFIX = "eval/"  # keys of an evaluation's metrics, apart from a training row's


class Reporter(Protocol):
    """One tracker. ``out`` is the run directory; ``resume_step``: the step a resumed run
    continues from (None: a new run)."""

    def __init__(self, out: Path, resume_step: int | None = None) -> None: ...

    def start(self, config: dict[str, Any]) -> None:
        """Open the tracker's files; ``config`` is the run's resolved configuration."""

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        """One logged step's numbers (a training row or ``eval/…`` metrics)."""

    def finish(self, summary: dict[str, Any]) -> None:
        """The run's summary (``metrics.json``); flush and close."""


def scalars(metrics: dict[str, Any]) -> dict[str, float]:
    """The finite numbers of ``metrics`` (booleans, strings, lists and NaN dropped)."""
    return {
        key: float(value)
        for key, value in metrics.items()
        if isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    }


def is_eval_row(metrics: dict[str, Any]) -> bool:
    return bool(metrics) and all(key.startswith(EVAL_PREFIX) for key in metrics)
