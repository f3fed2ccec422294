"""AdamW with CLIP's weight-decay split, and the warm-up + cosine learning-rate schedule."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn

from .config import OptimSection


def no_decay(name: str, parameter: nn.Parameter) -> bool:
    """Norms, biases, embeddings, the logit scale/bias: no weight decay (as in CLIP/OpenCLIP)."""
    return (
        parameter.ndim < 2
        or "embedding" in name
        or "logit_" in name
        or name.endswith(".bias")
        or ".ln" in name
        or "norm" in name
    )


def build_optimizer(
    named_parameters: Iterable[tuple[str, nn.Parameter]], config: OptimSection, device: torch.device
) -> torch.optim.AdamW:
    decay: list[nn.Parameter] = []
    keep: list[nn.Parameter] = []
    for name, parameter in named_parameters:
        if parameter.requires_grad:
            (keep if no_decay(name, parameter) else decay).append(parameter)
    if not decay and not keep:
        raise ValueError("nothing to train: every parameter is frozen")
    groups = [
        {"params": decay, "weight_decay": config.weight_decay},
        {"params": keep, "weight_decay": 0.0},
    ]
    # fused AdamW runs one kernel per step instead of a loop over tensors (CPU and CUDA).
    fused = device.type in ("cpu", "cuda")
    return torch.optim.AdamW(groups, lr=config.lr, betas=config.betas, eps=config.eps, fused=fused)


@dataclass
class WarmupCosine:
    """lr(step) = lr · (step+1)/warmup during warm-up, then a cosine from lr down to
    lr·min_fraction, reached at the last step (``total_steps − 1``, 0-based): a run ends decayed.

    ``total_steps`` may be set after construction (a time budget plans it from measured speed);
    the schedule is a pure function of (step, total_steps), so resume reproduces it exactly.
    """

    base_lr: float
    total_steps: int
    warmup_fraction: float = 0.05
    min_lr_fraction: float = 0.0

    @property
    def warmup_steps(self) -> int:
        return max(1, round(self.warmup_fraction * self.total_steps))

    def lr(self, step: int) -> float:
        """Learning rate for optimizer step ``step`` (0-based)."""
        warmup = self.warmup_steps
        if step < warmup:
            return self.base_lr * (step + 1) / warmup
        decay_steps = self.total_steps - 1 - warmup  # 0: the step after warm-up is the last
        progress = min(1.0, (step - warmup) / decay_steps) if decay_steps > 0 else 1.0
        floor = self.base_lr * self.min_lr_fraction
        return floor + (self.base_lr - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    def apply(self, optimizer: torch.optim.Optimizer, step: int) -> float:
        lr = self.lr(step)
        for group in optimizer.param_groups:
            group["lr"] = lr
        return lr
