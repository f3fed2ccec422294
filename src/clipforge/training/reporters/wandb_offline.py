"""Weights & Biases, offline by default: the run is written under ``OUT/wandb/offline-run-…``
with no network and no account, and ``wandb sync OUT/wandb/offline-run-…`` uploads it later.
``WANDB_MODE`` is honoured (``WANDB_MODE=online`` logs live; ``disabled`` turns it off), as are
``WANDB_PROJECT`` (default ``clipforge``) and the other ``WANDB_*`` variables.

The run's config is the resolved training config; each logged row goes to the history at its
optimizer step, and the summary's numbers (final evaluation, throughput) to the run summary.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ...common.optional import require
from .base import scalars


class WandbReporter:
    def __init__(self, out: Path, resume_step: int | None = None):
        self.wandb = require("wandb", "track", "--report-to wandb")
        self.out = Path(out)
        self.resume_step = resume_step
        self.run: Any = None

    def start(self, config: dict[str, Any]) -> None:
        run_id = self.previous_run_id() if self.resume_step is not None else None
        self.run = self.wandb.init(
            project=os.environ.get("WANDB_PROJECT", "clipforge"),
            name=self.out.name,
            dir=str(self.out),
            config=config,
            mode=os.environ.get("WANDB_MODE", "offline"),
            id=run_id,
            resume="allow" if run_id else None,
            settings=self.wandb.Settings(console="off", silent=True),
        )

    def previous_run_id(self) -> str | None:
        """The id of this run directory's last W&B run (``…/offline-run-DATE-ID``), which a
        resumed run continues, so ``wandb sync`` shows one run rather than one per restart."""
        earlier = sorted((self.out / "wandb").glob("*run-*-*"), key=lambda p: p.name.split("-")[-2])
        return earlier[-1].name.rsplit("-", 1)[1] if earlier else None

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        numbers = {k: v for k, v in scalars(metrics).items() if k != "step"}
        self.run.log(numbers, step=step)

    def finish(self, summary: dict[str, Any]) -> None:
        for key, value in scalars(summary).items():
            self.run.summary[key] = value
        for key, value in scalars(summary.get("eval") or {}).items():
            self.run.summary[f"eval/{key}"] = value
        self.run.finish()
