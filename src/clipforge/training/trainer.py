"""``train(config)``: one batch's path is loader → model → objectives → optimizer step.

The loop owns time and position: it plans the step count (epochs, steps, or a wall-clock
budget measured against real step times), applies the schedule, logs, evaluates, and writes
atomic checkpoints holding everything needed to continue bit-for-bit (weights, optimizer,
RNG, schedule, data position).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel

from .. import distributed
from ..data.loader import set_loader_epoch
from ..data.sources import MapSource, StreamSource
from ..models.grow import apply_grow_schedule, validate_grow_schedule
from ..models.io import save_model_dir
from . import checkpoint as ckpt
from . import console, run_dir
from .budget import BudgetPlanner
from .clock import budget_clock
from .config import TrainConfig
from .evaluate import evaluate_during_training
from .gradcache import check_gradcache
from .module import TrainModule, build_objectives
from .optim import WarmupCosine, build_optimizer
from .precision import resolve_precision
from .report import format_summary
from .reporters import Reporters
from .run_log import MetricsLog, plot_loss_curve, write_summary
from .setup import (
    build_model_and_tokenizer,
    build_train_loader,
    check_model_section,
    freeze,
    open_train_and_val,
    prepare_for_training,
)
from .state import TrainState
from .step import optimizer_step
from .summary import budget_line, build_summary, eval_sizes, run_header

PROVISIONAL_STEPS = 1000  # a time budget's schedule length until the first step is timed
step_clock = time.perf_counter  # times the steps a budget counts (a test can replace it)


@dataclass
class TrainResult:
    out: Path
    steps: int
    summary: dict[str, Any] = field(default_factory=dict)


class _Batches:
    """Endless batches across epochs, tracking (epoch, batches into the epoch) for resume.

    An epoch ends when the loader does, or after ``epoch_batches`` (streams: an epoch is a
    number of samples, so an endless resampled stream still has epochs)."""

    def __init__(
        self, loader, epoch: int = 0, batch_in_epoch: int = 0, epoch_batches: int | None = None
    ):
        self.loader, self.epoch, self.batch_in_epoch = loader, epoch, batch_in_epoch
        self.epoch_batches = epoch_batches
        already_consumed = set_loader_epoch(loader, epoch, batch_in_epoch * loader.batch_size)
        self.iterator = iter(loader)
        for _ in range(already_consumed):  # a stream resumes at a round of workers
            next(self.iterator)

    def next(self):
        while True:
            try:
                if self.epoch_batches and self.batch_in_epoch >= self.epoch_batches:
                    raise StopIteration
                batch = next(self.iterator)
                self.batch_in_epoch += 1
                return batch
            except StopIteration:
                if self.batch_in_epoch == 0:
                    raise ValueError(
                        f"the training data gives no batch of "
                        f"{self.loader.batch_size} (fewer samples than one batch "
                        f"per rank?); lower --batch-size"
                    ) from None
                self.epoch += 1
                self.batch_in_epoch = 0
                set_loader_epoch(self.loader, self.epoch, 0)
                self.iterator = iter(self.loader)


def steps_per_epoch(
    source, batch_size: int, world: int, epoch_samples: int | None = None
) -> int | None:
    """Steps per epoch: from the source's size, or for a stream from ``epoch_samples`` / the
    sample count its shards declare (None when unknown: then only --steps/--time-budget)."""
    if isinstance(source, MapSource):
        return max(1, len(source) // world // batch_size)
    samples = epoch_samples or getattr(source, "num_samples", None)
    return max(1, samples // world // batch_size) if samples else None


def train(
    config: TrainConfig,
    train_source: MapSource | StreamSource | None = None,
    val_source: MapSource | StreamSource | None = None,
) -> TrainResult:
    """Run training as ``config`` says; ``train_source``/``val_source`` replace the data specs
    (for sources built in code rather than named by a spec string). What the console shows,
    the summary and an error that stops the run also go to ``OUT/train.log``."""
    with console.transcript() as transcript:
        result = _train(config, train_source, val_source)
        if result.summary:
            transcript.write(format_summary(result.summary, result.out))
        return result


def _train(config: TrainConfig, train_source, val_source) -> TrainResult:
    device = distributed.init_from_env()
    rank, world = distributed.rank(), distributed.world_size()
    main_process = rank == 0
    run = config.run
    out = Path(run.out)
    config.validate()
    resume = run_dir.check_out_dir(config, announce=main_process)  # nothing written yet
    resume_from = resume.checkpoint if resume else None
    step_of_resume = ckpt.checkpoint_step(resume_from) if resume_from else None
    reporters = Reporters(run.report_to if main_process else [], out, step_of_resume)
    torch.manual_seed(run.seed)

    objectives = build_objectives(config.objectives)
    check_model_section(config.model, objectives)
    check_gradcache(objectives, config.optim.gradcache_chunk)
    validate_grow_schedule(config.grow)
    precision = resolve_precision(run.precision, device)  # a bad $CLIPFORGE_PRECISION: now
    source, val_source, val_note = open_train_and_val(
        config.data, run.seed, train_source, val_source
    )
    if main_process:
        print(val_note, flush=True)
        console.record(val_note)
    model_section = config.model
    if resume_from is not None:  # the checkpoint holds the model as it was (incl. growth)
        model_section = type(config.model)(**{**config.model.__dict__, "name": str(resume_from)})
    if main_process:
        console.say(
            f"building the model and tokenizer ({model_section.name}) for {config.data.train}"
        )
    model, tokenizer = build_model_and_tokenizer(model_section, objectives, source)
    frozen = prepare_for_training(model, config.model, objectives, device)
    if resume_from is not None:
        ckpt.load_objectives(resume_from, objectives)
    module = TrainModule(model, objectives, {s.name: s.weight for s in config.objectives})
    trained: torch.nn.Module = module  # what runs forward: the module, or its DDP wrapper
    if world > 1:
        trained = DistributedDataParallel(module, find_unused_parameters=True)
    optimizer = build_optimizer(module.named_parameters(), config.optim, device)
    loader = build_train_loader(
        source, config.data, model, tokenizer, objectives, run.seed, rank, world
    )

    per_epoch = steps_per_epoch(
        source, config.data.batch_size * config.optim.accumulation, world, config.data.epoch_samples
    )
    planned_steps = plan_total_steps(run, per_epoch)  # None: a time budget plans as it goes
    state = TrainState(total_steps=planned_steps)
    if resume_from is not None:
        saved = ckpt.load_training_state(resume_from)
        optimizer.load_state_dict(saved["optimizer"])
        ckpt.set_rng_state(saved["rng"])
        state = TrainState.from_dict({**state.to_dict(), **saved})
        if resume and resume.extends:
            state.total_steps = run_dir.extended_total(planned_steps, state.step)
    planner = BudgetPlanner(run.time_budget * 60) if run.time_budget else None
    clock = budget_clock(run.budget_clock, step_clock)
    schedule = WarmupCosine(
        config.optim.lr,
        state.total_steps or PROVISIONAL_STEPS,
        config.optim.warmup_fraction,
        config.optim.min_lr_fraction,
    )
    if main_process:
        console.say(run_header(config, model, source, per_epoch, state, precision, resume_from))
    batches = _Batches(
        loader,
        state.epoch,
        state.batch_in_epoch,
        None
        if isinstance(source, MapSource) or per_epoch is None
        else per_epoch * config.optim.accumulation,
    )
    distributed.barrier()  # every rank has checked --out before rank 0 writes there
    if main_process:
        run_dir.start_run_dir(config, resume)
        console.open_transcript(out / "train.log", append=resume is not None)
        reporters.start(config.to_dict())
    log = (
        MetricsLog(out / "metrics.jsonl", state.step if resume_from else None)
        if main_process
        else None
    )

    progress = console.Progress(
        run.progress and main_process, state.total_steps, state.step, model.config.name
    )
    step_times: list[float] = []
    side_seconds = {"eval": 0.0, "checkpoint": 0.0}  # outside the time budget
    window_samples, window_start = 0, time.perf_counter()
    evals: dict[str, Any] = {}
    lr: float | None = None  # of the last step this process ran
    announced = False  # the budget's plan was said
    while True:
        if planner is not None:
            planned = planner.plan(state.step, state.train_seconds)
            if planned is not None:
                if main_process and not announced and (planner.seen > 1 or planned <= state.step):
                    announced = True  # from the first estimate past the warm-up step
                    console.say(
                        budget_line(
                            planner.seconds / 60,
                            planned,
                            planner,
                            state,
                            config.data.batch_size * config.optim.accumulation * world,
                            val_source,
                        )
                    )
                state.total_steps = planned
                progress.set_total(planned)
        if state.total_steps is not None and state.step >= state.total_steps:
            break
        schedule.total_steps = state.total_steps or PROVISIONAL_STEPS
        started = clock()
        if config.grow and apply_grow_schedule(model, config.grow, state.step, state.total_steps):
            # GrowCLIP: the model grew in place; new parameters need a new optimizer.
            freeze(model, config.model.freeze)
            optimizer = build_optimizer(module.named_parameters(), config.optim, device)
            if world > 1:
                trained = DistributedDataParallel(module, find_unused_parameters=True)
        lr = schedule.apply(optimizer, state.step)
        loss_value, terms, samples = optimizer_step(
            trained,
            module,
            optimizer,
            batches,
            config.optim,
            precision,
            device,
            state,
            stop_at_bad_record_of=config.data.train if config.data.strict else None,
        )
        loss_value = distributed.mean_over_ranks(loss_value)  # each rank holds its share
        step = state.step = state.step + 1
        for objective in objectives.values():
            objective.after_step(model, step)
        state.epoch, state.batch_in_epoch = batches.epoch, batches.batch_in_epoch
        state.samples += samples * world
        elapsed = clock() - started
        if planner is not None:  # every rank must plan the same number of steps
            elapsed = distributed.mean_over_ranks(elapsed)
        state.train_seconds += elapsed
        step_times.append(elapsed)
        if planner is not None:
            planner.observe(elapsed)
        window_samples += samples * world

        if not math.isfinite(loss_value):
            raise FloatingPointError(f"loss became {loss_value} at step {step}")
        progress.advance()
        if step % run.log_every == 0 or step == state.total_steps:
            now = time.perf_counter()
            speed = window_samples / max(now - window_start, 1e-9)
            window_samples, window_start = 0, now
            row = {
                "step": step,
                "epoch": state.epoch,
                "loss": loss_value,
                "lr": lr,
                "samples_per_s": round(speed, 2),
                "logit_scale": model.scale().item(),
                "skipped": state.skipped,
                **terms,
            }
            progress.logged(row)
            if log:
                log.write(row)
            reporters.log(step, row)
        if run.eval_every and step % run.eval_every == 0 and main_process:
            side_started = time.perf_counter()
            evals = evaluate_during_training(model, tokenizer, config, step, out, val_source)
            reporters.log_eval(step, evals)
            side_seconds["eval"] += time.perf_counter() - side_started
        if run.save_every and step % run.save_every == 0:
            side_started = time.perf_counter()
            _save(
                out, step, module, tokenizer, optimizer, state, run.keep_checkpoints, main_process
            )
            side_seconds["checkpoint"] += time.perf_counter() - side_started
    progress.close()
    if planner is not None and main_process:
        console.say(
            f"time budget: {state.step} steps in {state.train_seconds:.1f} s of training "
            f"(budget {planner.seconds:.0f} s), last lr {lr or 0:.3g}"
        )
    _save(out, state.step, module, tokenizer, optimizer, state, run.keep_checkpoints, main_process)
    if main_process:
        save_model_dir(out, model, tokenizer)
        ckpt.save_objectives(out, dict(module.objectives.items()))
        ticked = bool(run.eval_every and state.step % run.eval_every == 0)
        if val_source is not None or config.evals:
            if not ticked:
                console.say("final evaluation")
            side_started = time.perf_counter()
            already = evals if ticked else {}
            evals = evaluate_during_training(
                model, tokenizer, config, state.step, out, val_source, final=True, done=already
            )
            reporters.log_eval(state.step, {k: v for k, v in evals.items() if k not in already})
            side_seconds["eval"] += time.perf_counter() - side_started
        summary = build_summary(config, state, precision, frozen, evals, step_times)
        summary["lr_final"] = lr
        summary["outside_budget_seconds"] = {k: round(v, 2) for k, v in side_seconds.items()}
        if evals and val_source is not None:  # for the end-of-run table's chance column
            summary["eval_sizes"] = eval_sizes(val_source)
        write_summary(out / "metrics.json", summary)
        reporters.finish(summary)
        assert log is not None  # rank 0 keeps the log
        plot_loss_curve(
            log.rows(), out / "loss_curve.png", f"{model.config.name} on {config.data.train}"
        )
    else:
        summary = {}
    distributed.barrier()
    return TrainResult(out, state.step, summary)


def plan_total_steps(run, per_epoch: int | None) -> int | None:
    """Steps from ``steps`` or ``epochs``; None when a time budget will plan them."""
    given = [x is not None for x in (run.steps, run.epochs, run.time_budget)]
    if sum(given) != 1:
        raise ValueError("give exactly one of --steps, --epochs, --time-budget")
    if run.steps is not None:
        return int(run.steps)
    if run.epochs is not None:
        if per_epoch is None:
            raise ValueError(
                "--epochs needs a data source of known size; for WebDataset "
                "shards give data.epoch_samples=N (or a sizes.json), or use --steps"
            )
        return max(1, round(run.epochs * per_epoch))
    return None


def _save(out, step, module, tokenizer, optimizer, state: TrainState, keep, main_process) -> None:
    if main_process:
        training_state = {**state.to_dict(), "optimizer": optimizer.state_dict()}
        ckpt.save_checkpoint(
            out,
            step,
            module.model,
            tokenizer,
            dict(module.objectives.items()),
            training_state,
            keep,
        )
    distributed.barrier()
