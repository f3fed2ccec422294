"""``train(config)``: one batch's path is loader → model → objectives → optimizer step.

The loop owns time and position: it plans the step count (epochs, steps, or a wall-clock
budget measured against real step times), applies the schedule, logs, evaluates, and writes
atomic checkpoints holding everything needed to continue bit-for-bit (weights, optimizer,
RNG, schedule, data position).
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from .. import distributed
from ..data.loader import set_loader_epoch
from ..data.record import BadRecordError
from ..data.sources import MapSource, StreamSource
from ..data.transforms import eval_transform
from ..models.grow import apply_grow_schedule, validate_grow_schedule
from ..models.io import save_model_dir
from . import checkpoint as ckpt
from . import run_dir
from .config import TrainConfig
from .gradcache import check_gradcache, gradcache_step
from .module import TrainModule, build_objectives
from .optim import WarmupCosine, build_optimizer
from .precision import autocast, resolve_precision
from .run_log import MetricsLog, plot_loss_curve, write_summary
from .setup import (build_model_and_tokenizer, build_train_loader, check_model_section, freeze,
                    open_train_and_val)

PLAN_AFTER_STEPS = 6          # a time budget is planned from the step times measured so far


@dataclass
class TrainResult:
    out: Path
    steps: int
    summary: dict[str, Any] = field(default_factory=dict)


class _Batches:
    """Endless batches across epochs, tracking (epoch, batches into the epoch) for resume.

    An epoch ends when the loader does, or after ``epoch_batches`` (streams: an epoch is a
    number of samples, so an endless resampled stream still has epochs)."""

    def __init__(self, loader, epoch: int = 0, batch_in_epoch: int = 0,
                 epoch_batches: int | None = None):
        self.loader, self.epoch, self.batch_in_epoch = loader, epoch, batch_in_epoch
        self.epoch_batches = epoch_batches
        already_consumed = set_loader_epoch(loader, epoch, batch_in_epoch * loader.batch_size)
        self.iterator = iter(loader)
        for _ in range(already_consumed):       # a stream resumes at a round of workers
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
                    raise ValueError(f"the training data gives no batch of "
                                     f"{self.loader.batch_size} (fewer samples than one batch "
                                     f"per rank?); lower --batch-size") from None
                self.epoch += 1
                self.batch_in_epoch = 0
                set_loader_epoch(self.loader, self.epoch, 0)
                self.iterator = iter(self.loader)


def steps_per_epoch(source, batch_size: int, world: int,
                    epoch_samples: int | None = None) -> int | None:
    """Steps per epoch: from the source's size, or for a stream from ``epoch_samples`` / the
    sample count its shards declare (None when unknown: then only --steps/--time-budget)."""
    if isinstance(source, MapSource):
        return max(1, len(source) // world // batch_size)
    samples = epoch_samples or getattr(source, "num_samples", None)
    return max(1, samples // world // batch_size) if samples else None


def train(config: TrainConfig, train_source: MapSource | StreamSource | None = None,
          val_source: MapSource | None = None) -> TrainResult:
    """Run training as ``config`` says; ``train_source``/``val_source`` replace the data specs
    (for sources built in code rather than named by a spec string)."""
    device = distributed.init_from_env()
    rank, world = distributed.rank(), distributed.world_size()
    main_process = rank == 0
    run = config.run
    out = Path(run.out)
    config.validate()
    resume = run_dir.check_out_dir(config, announce=main_process)   # nothing written yet
    resume_from = resume.checkpoint if resume else None
    torch.manual_seed(run.seed)

    objectives = build_objectives(config.objectives)
    check_model_section(config.model, objectives)
    check_gradcache(objectives, config.optim.gradcache_chunk)
    validate_grow_schedule(config.grow)
    source, val_source, val_note = open_train_and_val(config.data, run.seed, train_source,
                                                      val_source)
    if main_process:
        print(val_note, flush=True)
    model_section = config.model
    if resume_from is not None:   # the checkpoint holds the model as it was (incl. growth)
        model_section = type(config.model)(**{**config.model.__dict__, "name": str(resume_from)})
    model, tokenizer = build_model_and_tokenizer(model_section, objectives, source)
    model.to(device).train()
    if config.model.grad_checkpointing:
        model.set_grad_checkpointing(True)
    frozen = freeze(model, config.model.freeze)
    for objective in objectives.values():
        objective.setup(model)
        objective.to(device)
    if resume_from is not None:
        ckpt.load_objectives(resume_from, objectives)
    module = TrainModule(model, objectives, {s.name: s.weight for s in config.objectives})
    trained = module
    if world > 1:
        trained = DistributedDataParallel(module, find_unused_parameters=True)
    optimizer = build_optimizer(module.named_parameters(), config.optim, device)
    precision = resolve_precision(run.precision, device)
    loader = build_train_loader(source, config.data, model, tokenizer, objectives, run.seed,
                                rank, world)

    per_epoch = steps_per_epoch(source, config.data.batch_size * config.optim.accumulation, world,
                                config.data.epoch_samples)
    total_steps = plan_total_steps(run, per_epoch)
    state: dict[str, Any] = {"step": 0, "epoch": 0, "batch_in_epoch": 0, "samples": 0,
                             "skipped": 0, "skipped_per_epoch": {}, "skipped_examples": [],
                             "train_seconds": 0.0, "total_steps": total_steps}
    if resume_from is not None:
        saved = ckpt.load_training_state(resume_from)
        optimizer.load_state_dict(saved["optimizer"])
        ckpt.set_rng_state(saved["rng"])
        state.update({k: v for k, v in saved.items() if k in state})
        if resume and resume.extends:
            state["total_steps"] = run_dir.extended_total(total_steps, state["step"])
    schedule = WarmupCosine(config.optim.lr, state["total_steps"] or 10**6,
                            config.optim.warmup_fraction, config.optim.min_lr_fraction)
    batches = _Batches(loader, state["epoch"], state["batch_in_epoch"],
                       None if isinstance(source, MapSource) or per_epoch is None
                       else per_epoch * config.optim.accumulation)
    distributed.barrier()       # every rank has checked --out before rank 0 writes there
    if main_process:
        run_dir.start_run_dir(config, resume)
    log = MetricsLog(out / "metrics.jsonl", state["step"] if resume_from else None) \
        if main_process else None

    progress = tqdm(total=state["total_steps"], initial=state["step"], unit="step",
                    disable=not (run.progress and main_process), dynamic_ncols=True,
                    desc=f"train {model.config.name}")
    step_times: list[float] = []
    window_samples, window_start = 0, time.perf_counter()
    evals: dict[str, Any] = {}
    while state["total_steps"] is None or state["step"] < state["total_steps"]:
        started = time.perf_counter()
        if config.grow and apply_grow_schedule(model, config.grow, state["step"],
                                               state["total_steps"]):
            # GrowCLIP: the model grew in place; new parameters need a new optimizer.
            freeze(model, config.model.freeze)
            optimizer = build_optimizer(module.named_parameters(), config.optim, device)
            if world > 1:
                trained = DistributedDataParallel(module, find_unused_parameters=True)
        lr = schedule.apply(optimizer, state["step"])
        loss_value, terms, samples = _optimizer_step(trained, module, optimizer, batches, config,
                                                     precision, device, state)
        loss_value = distributed.mean_over_ranks(loss_value)   # each rank holds its share
        step = state["step"] = state["step"] + 1
        for objective in objectives.values():
            objective.after_step(model, step)
        state["epoch"], state["batch_in_epoch"] = batches.epoch, batches.batch_in_epoch
        state["samples"] += samples * world
        elapsed = time.perf_counter() - started
        state["train_seconds"] += elapsed
        step_times.append(elapsed)
        window_samples += samples * world

        if state["total_steps"] is None and len(step_times) >= PLAN_AFTER_STEPS:
            state["total_steps"] = plan_from_budget(run.time_budget, state, step_times)
            schedule.total_steps = state["total_steps"]
            progress.total = state["total_steps"]
        if not math.isfinite(loss_value):
            raise FloatingPointError(f"loss became {loss_value} at step {step}")
        progress.update(1)
        if step % run.log_every == 0 or step == state["total_steps"]:
            now = time.perf_counter()
            speed = window_samples / max(now - window_start, 1e-9)
            window_samples, window_start = 0, now
            row = {"step": step, "epoch": state["epoch"], "loss": loss_value, "lr": lr,
                   "samples_per_s": round(speed, 2), "logit_scale": model.scale().item(),
                   "skipped": state["skipped"], **terms}
            progress.set_postfix(loss=f"{loss_value:.3f}", sps=f"{speed:.0f}")
            if log:
                log.write(row)
        if run.eval_every and step % run.eval_every == 0 and main_process:
            evals = evaluate_during_training(model, tokenizer, config, step, out, val_source)
        if run.save_every and step % run.save_every == 0:
            _save(out, step, module, tokenizer, optimizer, state, run.keep_checkpoints,
                  main_process)
        if run.time_budget and state["train_seconds"] > run.time_budget * 60 * 1.05:
            break      # safety: the budget is a promise even if later steps slow down
    progress.close()

    _save(out, state["step"], module, tokenizer, optimizer, state, run.keep_checkpoints,
          main_process)
    if main_process:
        save_model_dir(out, model, tokenizer)
        ckpt.save_objectives(out, dict(module.objectives.items()))
        ticked = bool(run.eval_every and state["step"] % run.eval_every == 0)
        if val_source is not None or config.evals:
            evals = evaluate_during_training(model, tokenizer, config, state["step"], out,
                                             val_source, final=True, done=evals if ticked else {})
        summary = build_summary(config, state, precision, frozen, evals, step_times)
        write_summary(out / "metrics.json", summary)
        plot_loss_curve(log.rows(), out / "loss_curve.png", f"{model.config.name} on "
                        f"{config.data.train}")
    else:
        summary = {}
    distributed.barrier()
    return TrainResult(out, state["step"], summary)


def _optimizer_step(trained, module: TrainModule, optimizer, batches: _Batches,
                    config: TrainConfig, precision: str, device, state) -> tuple[float, dict, int]:
    accumulation = config.optim.accumulation
    total_loss, samples = 0.0, 0
    sums: dict[str, float] = {}
    for _ in range(accumulation):
        batch = batches.next()
        record_skipped(state, batch.skipped, config.data.strict, batches.epoch, config.data.train)
        if len(batch) == 0:
            continue
        batch = batch.to(device)
        if config.optim.gradcache_chunk:      # big contrastive batch, activations of a chunk
            loss, terms = gradcache_step(module, batch, config.optim.gradcache_chunk, precision,
                                         loss_scale=1 / accumulation)
        else:
            with autocast(precision, device):
                loss, terms = trained(batch)
            (loss / accumulation).backward()
        total_loss += loss.item() / accumulation
        samples += len(batch)
        for key, value in terms.items():
            sums[key] = sums.get(key, 0.0) + value.item() / accumulation
    if config.optim.gradcache_chunk:          # it bypasses DDP's hooks: reduce here
        distributed.average_gradients(list(module.parameters()))
    if config.optim.grad_clip:
        torch.nn.utils.clip_grad_norm_(module.parameters(), config.optim.grad_clip)
    optimizer.step()
    module.model.clamp_logit_scale()          # t back into [0, ln 100] so its gradient flows
    optimizer.zero_grad(set_to_none=True)
    return total_loss, {k: round(v, 5) for k, v in sums.items()}, samples


def record_skipped(state: dict, skipped: list, strict: bool, epoch: int, data: str = "") -> None:
    """Count bad records (and keep 20 examples); with ``strict``, stop at the first, naming it
    and the data it came from. Raised here, in the main process: from a loader worker it would
    arrive wrapped in the worker's traceback."""
    if not skipped:
        return
    if strict:
        key, reason = skipped[0]
        raise BadRecordError(key, f"{reason} (in {data or 'the training data'}; --strict stops "
                                  f"at the first bad record)")
    state["skipped"] += len(skipped)
    per_epoch = state["skipped_per_epoch"]
    per_epoch[str(epoch)] = per_epoch.get(str(epoch), 0) + len(skipped)
    examples = state["skipped_examples"]
    examples.extend({"key": k, "reason": r} for k, r in skipped[: max(0, 20 - len(examples))])


def plan_total_steps(run, per_epoch: int | None) -> int | None:
    """Steps from ``steps`` or ``epochs``; None when a time budget will plan them."""
    given = [x is not None for x in (run.steps, run.epochs, run.time_budget)]
    if sum(given) != 1:
        raise ValueError("give exactly one of --steps, --epochs, --time-budget")
    if run.steps is not None:
        return int(run.steps)
    if run.epochs is not None:
        if per_epoch is None:
            raise ValueError("--epochs needs a data source of known size; for WebDataset "
                             "shards give data.epoch_samples=N (or a sizes.json), or use --steps")
        return max(1, round(run.epochs * per_epoch))
    return None


def plan_from_budget(minutes: float, state: dict, step_times: list[float]) -> int:
    """Fit the schedule to the budget using the median of the steps after the first."""
    typical = statistics.median(step_times[1:])
    remaining = minutes * 60 - state["train_seconds"]
    return state["step"] + max(1, int(remaining / typical))


def _save(out, step, module, tokenizer, optimizer, state, keep, main_process) -> None:
    if main_process:
        training_state = {**state, "optimizer": optimizer.state_dict()}
        ckpt.save_checkpoint(out, step, module.model, tokenizer, dict(module.objectives.items()),
                             training_state, keep)
    distributed.barrier()


def evaluate_during_training(model, tokenizer, config: TrainConfig, step: int, out: Path,
                             val_source: MapSource | None = None, final: bool = False,
                             done: dict[str, Any] | None = None) -> dict[str, Any]:
    """Zero-shot + retrieval on the validation source, and the ``evals:`` entries due at
    ``step`` (all of them when ``final``); appended to ``eval.jsonl``. ``done``: metrics this
    run already computed at ``step`` (the last step fell on ``eval_every``), not recomputed."""
    from ..evaluation import EncodeConfig, evaluate, run_scheduled
    from ..evaluation.scheduled import SEPARATOR
    import json
    done = dict(done or {})
    was_training = model.training
    model.eval()
    preprocess = eval_transform(model.config.preprocess)
    metrics: dict[str, Any] = {}
    if val_source is not None and not any(SEPARATOR not in k for k in done):
        metrics.update(evaluate(model, preprocess, tokenizer, val_source,
                                workers=config.data.workers))
    metrics.update(run_scheduled(model, preprocess, tokenizer, config.evals, step, final,
                                 EncodeConfig(workers=config.data.workers, progress=False),
                                 {key.split(SEPARATOR)[0] for key in done if SEPARATOR in key}))
    model.train(was_training)
    if metrics:
        with (out / "eval.jsonl").open("a") as handle:
            handle.write(json.dumps({"step": step, **metrics}) + "\n")
    return {**done, **metrics}


def build_summary(config, state, precision, frozen, evals, step_times) -> dict[str, Any]:
    measured = step_times[1:] or step_times
    return {
        "steps": state["step"], "epochs": state["epoch"], "samples_seen": state["samples"],
        "train_seconds": round(state["train_seconds"], 2), "precision": precision,
        "step_ms_median": round(1000 * statistics.median(measured), 2) if measured else None,
        "frozen_parameters": frozen,
        "skipped_records": {"count": state["skipped"], "per_epoch": state["skipped_per_epoch"],
                            "examples": state["skipped_examples"]},
        "eval": evals, "config": config.to_dict(),
    }
