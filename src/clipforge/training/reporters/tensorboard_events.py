"""TensorBoard event files under ``OUT/tensorboard`` (``tensorboard --logdir OUT``), written with
``torch.utils.tensorboard.SummaryWriter``; no network, no server needed to write them.

Tags follow OpenCLIP's: a training row's numbers as ``train/loss``, ``train/lr``, … and the
evaluations as ``eval/NAME``, each at its optimizer step. The summary's final evaluation is
already logged at the last step; ``finish`` flushes and closes the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...common.optional import require
from .base import EVAL_PREFIX, scalars

FOLDER = "tensorboard"


class TensorBoardReporter:
    def __init__(self, out: Path, resume_step: int | None = None):
        self.module = require(
            "torch.utils.tensorboard", "track", "--report-to tensorboard", "tensorboard"
        )
        self.folder = Path(out) / FOLDER
        self.resume_step = resume_step
        self.writer: Any = None

    def start(self, config: dict[str, Any]) -> None:
        # A resumed run appends a new event file; purge_step hides the steps past the
        # checkpoint that the interrupted run had already logged.
        self.writer = self.module.SummaryWriter(
            log_dir=str(self.folder), purge_step=self.resume_step
        )

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        for key, value in scalars(metrics).items():
            if key == "step":
                continue
            tag = key if key.startswith(EVAL_PREFIX) else f"train/{key}"
            self.writer.add_scalar(tag, value, global_step=step)
        self.writer.flush()  # on disk at every logged step: a crashed run keeps its curves

    def finish(self, summary: dict[str, Any]) -> None:
        self.writer.flush()
        self.writer.close()
