"""Evaluation during training: the validation source and the ``evals:`` entries due at a step,
appended to the run's ``eval.jsonl``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..data.sources import MapSource, StreamSource
from ..data.transforms import eval_transform
from . import console
from .config import TrainConfig


def evaluate_during_training(
    model,
    tokenizer,
    config: TrainConfig,
    step: int,
    out: Path,
    val_source: MapSource | StreamSource | None = None,
    final: bool = False,
    done: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Zero-shot + retrieval on the validation source, and the ``evals:`` entries due at
    ``step`` (all of them when ``final``); appended to ``eval.jsonl``. ``done``: metrics this
    run already computed at ``step`` (the last step fell on ``eval_every``), not recomputed."""
    from ..evaluation import EncodeConfig, evaluate, run_scheduled
    from ..evaluation.scheduled import SEPARATOR

    done = dict(done or {})
    was_training = model.training
    model.eval()
    preprocess = eval_transform(model.config.preprocess)
    metrics: dict[str, Any] = {}
    if val_source is not None and not any(SEPARATOR not in k for k in done):
        metrics.update(
            evaluate(model, preprocess, tokenizer, val_source, workers=config.data.workers)
        )
    metrics.update(
        run_scheduled(
            model,
            preprocess,
            tokenizer,
            config.evals,
            step,
            final,
            EncodeConfig(workers=config.data.workers, progress=False),
            {key.split(SEPARATOR)[0] for key in done if SEPARATOR in key},
        )
    )
    model.train(was_training)
    if metrics:
        with (out / "eval.jsonl").open("a") as handle:
            handle.write(json.dumps({"step": step, **metrics}) + "\n")
        console.say(f"eval at step {step}: {eval_line(metrics)}")
    return {**done, **metrics}


def eval_line(metrics: dict[str, Any]) -> str:
    """``acc1 0.1489  image_retrieval_recall@10 0.3603 …``: the numbers, 4 significant digits."""
    return "  ".join(
        f"{key} {value:.4g}" if isinstance(value, float) else f"{key} {value}"
        for key, value in metrics.items()
        if isinstance(value, int | float)
    )
