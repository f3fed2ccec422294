"""Few-shot prompt tuning: the training loop of CoOp, optionally gradient-regulated (GRAM).

The loss is CoOp's: cross-entropy of the image–class logits at the model's own logit scale,
``logits = exp(t) · ⟨f(x), w_c(ctx)⟩`` with f(x) the frozen, normalised image features and w_c the
class weights of :class:`.learner.PromptLearner`. Only the context (and GRAM's gate) is learnt:
the model's parameters are set to ``requires_grad=False`` for the loop and restored after.

Each step uses every shot once, each through a random one of its cached views (CoOp augments
with random crops and flips; the view cache makes a step cost one text-tower pass). Adam with a
cosine decay to 0: at clipforge's scale a few hundred full-batch steps, not CoOp's SGD over 50–200
epochs of batch 32. ``regulation="gram"`` replaces the plain step by
:func:`.gram.regulated_meta_step` (support: the step's views; query: another view of each shot).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from ..embedding import frozen
from .gram import Loss, regulated_meta_step
from .learner import PromptLearner

REGULATIONS = ("gram", "none")


@dataclass
class PromptTuningConfig:
    """How the context is learnt. Defaults: CoOp's unified context and ``"{c}."`` prompt; M = 4
    rather than CoOp's 16, as clipforge's small models have 32-token contexts."""

    n_ctx: int = 4  # context vectors M (CoOp: 16 at 77 tokens; ignored with ctx_init)
    ctx_init: str | None = None  # e.g. "a photo of a": start from these words' embeddings
    class_specific: bool = False  # CoOp's CSC: one context per class
    templates: tuple[str, ...] = ("{c}.",)  # the context goes right before {c}
    steps: int = 100  # optimiser steps (full batch)
    lr: float = 1e-2  # Adam, cosine-decayed to 0
    regulation: Literal["gram", "none"] = "gram"  # "none": plain CoOp
    inner_lr: float = 1.0  # GRAM's α of the regulated inner step
    second_order: bool = False  # GRAM: back-propagate through the inner gradient
    views: int = 4  # cached views per shot: the eval view + views−1 augmented ones
    seed: int = 0  # shot sampling, context init, view choice and augmentation

    def __post_init__(self):
        if self.regulation not in REGULATIONS:
            raise ValueError(f"regulation {self.regulation!r}; expected one of {REGULATIONS}")
        if self.steps < 1 or self.lr <= 0 or self.inner_lr < 0:
            raise ValueError(
                f"steps must be ≥ 1, lr > 0 and inner_lr ≥ 0 (got {self.steps}, {self.lr}, "
                f"{self.inner_lr})"
            )
        if self.views < 1:
            raise ValueError(f"views must be ≥ 1, got {self.views}")


def prompt_loss(
    learner: PromptLearner,
    ctx: torch.Tensor,
    features: torch.Tensor,
    labels: torch.Tensor,
    logit_scale: torch.Tensor,
) -> torch.Tensor:
    """CE of ``logit_scale · features @ w(ctx)ᵀ``; features [N, D] normalised, labels [N]."""
    logits = logit_scale * features @ learner.class_weights(ctx).T  # [N, C]
    return F.cross_entropy(logits, labels)


def _loss_on(
    learner: PromptLearner, features: torch.Tensor, labels: torch.Tensor, scale: torch.Tensor
) -> Loss:
    """The prompt loss on these features, as a function of the context alone."""
    return lambda ctx: prompt_loss(learner, ctx, features, labels, scale)


def train_prompt(
    model,
    learner: PromptLearner,
    features: torch.Tensor,
    labels: list[int],
    config: PromptTuningConfig,
) -> list[float]:
    """Learn ``learner.ctx`` on cached features [V, N, D]; returns the loss of every step."""
    device = learner.ctx.device
    features = features.to(device)
    targets = torch.tensor(labels, device=device)
    rows = torch.arange(len(labels), device=device)
    generator = torch.Generator().manual_seed(config.seed)
    views = features.shape[0]
    with frozen(model):
        scale = model.scale().detach().float()
        gate = torch.ones_like(learner.ctx, requires_grad=True)  # GRAM's φ
        trained = [learner.ctx, gate] if config.regulation == "gram" else [learner.ctx]
        optimizer = torch.optim.Adam(trained, lr=config.lr)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, config.steps)
        losses = []
        for _ in range(config.steps):
            optimizer.zero_grad(set_to_none=True)
            view = torch.randint(views, (len(labels),), generator=generator).to(device)
            support = features[view, rows]
            if config.regulation == "gram":
                other = (
                    view
                    + torch.randint(1, max(views, 2), (len(labels),), generator=generator).to(
                        device
                    )
                ) % views
                query = features[other, rows]
                _, loss = regulated_meta_step(
                    learner.ctx,
                    gate,
                    _loss_on(learner, support, targets, scale),
                    _loss_on(learner, query, targets, scale),
                    config.inner_lr,
                    config.second_order,
                )
            else:
                loss = prompt_loss(learner, learner.ctx, support, targets, scale)
                loss.backward()
            optimizer.step()
            schedule.step()
            with torch.no_grad():
                gate.clamp_(min=0.0)
            losses.append(float(loss.detach()))
    return losses
