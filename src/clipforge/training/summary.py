"""What a run says about itself: the lines it starts with (what it trains on, what it trains,
how long it will take) and the summary it ends with (``metrics.json``)."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from ..data.sources import MapSource
from .budget import BudgetPlanner, estimate_eval_seconds
from .config import TrainConfig
from .console import count
from .state import TrainState


def source_size(source) -> int | None:
    """Samples in a source: its length, or what a stream's shards declare (None if unknown)."""
    if isinstance(source, MapSource):
        return len(source)
    return getattr(source, "num_samples", None)


def run_header(
    config: TrainConfig,
    model,
    source,
    per_epoch: int | None,
    state: TrainState,
    precision: str,
    resume_from: Path | None,
) -> str:
    """Data, samples, model, planned steps and budget, before the first step."""
    data, run = config.data, config.run
    parameters = sum(p.numel() for p in model.parameters())
    batch = f"batch {data.batch_size}" + (
        f" × {config.optim.accumulation} micro-batches" if config.optim.accumulation > 1 else ""
    )
    if run.time_budget:
        plan = (
            f"time budget {run.time_budget:g} min of training"
            + (" (CPU time)" if run.budget_clock == "cpu" else "")
            + ": steps planned from the "
            "measured step time, re-planned every step"
        )
    else:
        plan = (
            f"{run.steps} steps"
            if run.steps is not None
            else f"{run.epochs:g} epochs = {count(state.total_steps)} steps"
        )
    objectives = " + ".join(
        f"{s.name}" + (f"×{s.weight:g}" if s.weight != 1 else "") for s in config.objectives
    )
    lines = [
        (
            f"train {model.config.name} ({parameters / 1e6:.2f} M parameters, {precision}) "
            f"with {objectives}"
        ),
        (
            f"data {data.train}: {count(source_size(source))} samples, {batch}, "
            f"{count(per_epoch)} steps per epoch; validation: {data.val or 'none'}"
        ),
        f"plan: {plan}; out {run.out}",
    ]
    if resume_from is not None:
        lines.append(f"resuming from {resume_from} at step {state.step}")
    return "\n[clipforge] ".join(lines)


def budget_line(
    minutes: float,
    planned: int,
    planner: BudgetPlanner,
    state: TrainState,
    samples_per_step: int,
    val_source,
) -> str:
    """How a time budget is spent: "planned N steps; final eval ~S s"."""
    step_seconds = planner.step_estimate() or 0.0
    eval_seconds = estimate_eval_seconds(
        source_size(val_source) if val_source else None, step_seconds / max(1, samples_per_step)
    )
    final_eval = (
        f"final eval ~{eval_seconds:.0f} s" if eval_seconds is not None else "no final eval"
    )
    return (
        f"time budget {minutes:g} min: planned {planned} step{'s' * (planned != 1)} "
        f"at {step_seconds:.3g} s/step "
        f"(re-planned as the speed changes); {final_eval}; evals and checkpoints are not "
        f"counted in the budget"
    )


def eval_sizes(source) -> dict[str, int | None]:
    """Images, captions and classes of a validation source: what chance levels depend on."""
    if not isinstance(source, MapSource):
        return {}
    classes = source.class_names()
    return {
        "images": len(source),
        "texts": sum(1 for _ in source.captions()),
        "classes": len(classes) if classes else None,
    }


def build_summary(
    config, state: TrainState, precision, frozen, evals, step_times
) -> dict[str, Any]:
    measured = step_times[1:] or step_times
    return {
        "steps": state.step,
        "epochs": state.epoch,
        "samples_seen": state.samples,
        "train_seconds": round(state.train_seconds, 2),
        "precision": precision,
        "step_ms_median": round(1000 * statistics.median(measured), 2) if measured else None,
        "frozen_parameters": frozen,
        "skipped_records": {
            "count": state.skipped,
            "per_epoch": state.skipped_per_epoch,
            "examples": state.skipped_examples,
        },
        "eval": evals,
        "config": config.to_dict(),
    }
