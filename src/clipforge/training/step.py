"""One optimizer step: micro-batches → forward → objectives → backward → clip → AdamW.

The one mechanism both ``train()`` and ``clipforge bench train`` run, so a benchmark times
exactly the step a run takes (GradCache, accumulation, extra inputs, every objective).
"""

from __future__ import annotations

from typing import Protocol

import torch

from .. import distributed
from ..data.batch import Batch
from .config import OptimSection
from .gradcache import gradcache_step
from .module import TrainModule
from .precision import autocast
from .state import TrainState


class BatchSupply(Protocol):
    """Gives the next batch; ``epoch`` is the data epoch it came from (for skip counts)."""

    epoch: int

    def next(self) -> Batch: ...


def optimizer_step(
    trained: torch.nn.Module,
    module: TrainModule,
    optimizer: torch.optim.Optimizer,
    batches: BatchSupply,
    optim: OptimSection,
    precision: str,
    device: torch.device,
    state: TrainState,
    stop_at_bad_record_of: str | None = None,
) -> tuple[float, dict[str, float], int]:
    """Run ``optim.accumulation`` micro-batches and one optimizer update.

    ``trained`` is ``module`` or its DDP wrapper. Returns (mean loss, mean of each named term,
    samples used); bad records are counted in ``state``, or with ``stop_at_bad_record_of`` (the
    data spec, under --strict) the first one stops the run, naming it and that data.
    """
    accumulation = optim.accumulation
    total_loss, samples = 0.0, 0
    sums: dict[str, float] = {}
    for _ in range(accumulation):
        batch = batches.next()
        state.record_skipped(batch.skipped, batches.epoch, stop_at_bad_record_of)
        if len(batch) == 0:
            continue
        batch = batch.to(device)
        if optim.gradcache_chunk:  # big contrastive batch, activations of a chunk at a time
            loss, terms = gradcache_step(
                module, batch, optim.gradcache_chunk, precision, loss_scale=1 / accumulation
            )
        else:
            with autocast(precision, device):
                loss, terms = trained(batch)
            (loss / accumulation).backward()
        total_loss += loss.item() / accumulation
        samples += len(batch)
        for key, value in terms.items():
            sums[key] = sums.get(key, 0.0) + value.item() / accumulation
    if optim.gradcache_chunk:  # it bypasses DDP's hooks: reduce here
        distributed.average_gradients(list(module.parameters()))
    if optim.grad_clip:
        torch.nn.utils.clip_grad_norm_(module.parameters(), optim.grad_clip)
    optimizer.step()
    module.model.clamp_logit_scale()  # in place to [0, ln 100]: a capped scale keeps its gradient
    optimizer.zero_grad(set_to_none=True)
    return total_loss, {k: round(v, 5) for k, v in sums.items()}, samples
