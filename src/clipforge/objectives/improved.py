"""CLIP🚀: the clean pair on CLIP's head, augmented pairs on a second head with label smoothing.

Fini, Pinto, Zelezny, Brown, Mairal, Bordes, Vincent, "Improved baselines for vision-language
pre-training", TMLR 2023; code github.com/facebookresearch/clip-rocket (``losses.py``
``CL2LLoss``, ``models.py`` ``CL2L`` with ``--separate-proj``).

The clean pair (I, T) — the batch's image and caption — is scored by the model's own projection
at its logit scale s, without label smoothing. The augmented views (Ĩ, T̃) — loader extras
``image_view2`` (a second random crop) and ``text_view2`` (an EDA-augmented caption) — go through
the same backbones and then a second head h (an MLP on the backbone features: Linear–BN–ReLU,
Linear–BN–ReLU, Linear; 4096 hidden, as ``CL2L._build_mlp``) scored at its own learned scale s_h
(initialised at 1/0.1, clamped to [0, 100] after each step like s), with label-smoothed
cross-entropy CE_ε. With A the number of augmented views per modality (here 1)::

    G_I = CE(s·I Tᵀ, diag)              G_T = CE(s·T Iᵀ, diag)
    H_I = mean_{a,b} CE_ε(s_h·h(Ĩ_a) h(T̃_b)ᵀ, diag)   H_T likewise from the text side
    L = c · ½ [ (G_I + A·H_I)/(1+A) + (G_T + A·H_T)/(1+A) ]      c = 2 ("sum") or 1 ("avg")

Defaults: ε = 0.1 and ``loss_avg_or_sum="sum"`` (the paper's reproduction commands), the main
projection linear as clip-rocket's ``--clip-proj-type`` default. Simplified from the code: one
augmented view per modality (the code samples 2 image crops and 2 captions), and the heads'
BatchNorm uses per-rank statistics (the code uses SyncBatchNorm). Without the extras in a batch
(evaluation) the loss is plain CLIP on the clean pair (A = 0).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn

from ..data.batch import Batch
from ..models.clip import CLIP, ModelOutput
from .base import Objective
from .clip import clip_logits


def augmented_head(in_dim: int, hidden: int, out_dim: int, layers: int = 3) -> nn.Sequential:
    """clip-rocket's projector MLP: (Linear → BatchNorm → ReLU) × (layers − 1) → Linear."""
    blocks: list[nn.Module] = []
    width = in_dim
    for _ in range(layers - 1):
        blocks += [nn.Linear(width, hidden), nn.BatchNorm1d(hidden), nn.ReLU()]
        width = hidden
    return nn.Sequential(*blocks, nn.Linear(width, out_dim))


class ProjectedTower(Protocol):
    """A model tower whose ``proj`` maps its pooled backbone features to the embedding."""

    proj: nn.Module


def projection_width(tower: ProjectedTower, fallback: int) -> int:
    """Input width of a tower's projection (its backbone feature size)."""
    linear = next((m for m in tower.proj.modules() if isinstance(m, nn.Linear)), None)
    return fallback if linear is None else linear.in_features


@contextmanager
def backbone_features(tower: ProjectedTower) -> Iterator[list[torch.Tensor]]:
    """Collects the inputs of ``tower.proj`` — the pooled backbone features [B, W] — while open."""
    captured: list[torch.Tensor] = []
    handle = tower.proj.register_forward_pre_hook(lambda module, args: captured.append(args[0]))
    try:
        yield captured
    finally:
        handle.remove()


class ImprovedClipLoss(Objective):
    name = "clip_improved"
    extra_inputs = ("image_view2", "text_view2")

    _model: CLIP  # set in setup(), not registered as a submodule

    def __init__(
        self,
        label_smoothing: float = 0.1,
        loss_avg_or_sum: str = "sum",
        head_hidden: int = 4096,
        head_layers: int = 3,
        head_scale_init: float = 10.0,
        local_loss: bool = False,
        gather_with_grad: bool = True,
    ):
        super().__init__()
        if loss_avg_or_sum not in ("avg", "sum"):
            raise ValueError(
                f"clip_improved loss_avg_or_sum must be 'avg' or 'sum', got {loss_avg_or_sum!r}"
            )
        if head_layers < 1 or head_hidden < 1 or head_scale_init <= 0:
            raise ValueError(
                "clip_improved needs head_layers >= 1, head_hidden >= 1 and head_scale_init > 0"
            )
        self.label_smoothing, self.loss_avg_or_sum = label_smoothing, loss_avg_or_sum
        self.head_hidden, self.head_layers = head_hidden, head_layers
        self.local_loss, self.gather_with_grad = local_loss, gather_with_grad
        self.head_logit_scale = nn.Parameter(torch.tensor(math.log(head_scale_init)))

    def setup(self, model: CLIP) -> None:
        object.__setattr__(self, "_model", model)
        dim = model.config.embed_dim
        self.image_head = augmented_head(
            projection_width(model.visual, dim), self.head_hidden, dim, self.head_layers
        )
        self.text_head = augmented_head(
            projection_width(model.text, dim), self.head_hidden, dim, self.head_layers
        )

    @torch.no_grad()
    def after_step(self, model: CLIP, step: int) -> None:
        self.head_logit_scale.clamp_(0.0, math.log(100))

    def cross_entropies(
        self, images: torch.Tensor, texts: torch.Tensor, scale: torch.Tensor, smoothing: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        per_image, per_text, labels = clip_logits(
            images, texts, scale, self.local_loss, self.gather_with_grad
        )
        return (
            F.cross_entropy(per_image, labels, label_smoothing=smoothing),
            F.cross_entropy(per_text, labels, label_smoothing=smoothing),
        )

    def augmented_embeds(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """h(Ĩ), h(T̃): the views through the backbones and the second heads, normalised."""
        model = self._model
        with backbone_features(model.visual) as image_feats:
            model.encode_image(batch.extras["image_view2"], normalize=True)
        with backbone_features(model.text) as text_feats:
            model.encode_text(batch.extras["text_view2"], normalize=True)
        return (
            F.normalize(self.image_head(image_feats[-1].float()), dim=-1),
            F.normalize(self.text_head(text_feats[-1].float()), dim=-1),
        )

    def forward(self, outputs: ModelOutput, batch: Batch) -> dict[str, torch.Tensor]:
        if not hasattr(self, "image_head"):
            raise RuntimeError("clip_improved: setup(model) was not called before the first batch")
        images = F.normalize(outputs.image_embeds.float(), dim=-1)
        texts = F.normalize(outputs.text_embeds.float(), dim=-1)
        global_image, global_text = self.cross_entropies(
            images, texts, outputs.logit_scale.float(), 0.0
        )
        terms = {"clean": ((global_image + global_text) / 2).detach()}
        views = 0
        local_image = local_text = torch.zeros((), device=images.device)
        if {"image_view2", "text_view2"} <= batch.extras.keys():
            views = 1
            head_images, head_texts = self.augmented_embeds(batch)
            local_image, local_text = self.cross_entropies(
                head_images, head_texts, self.head_logit_scale.exp(), self.label_smoothing
            )
            terms["augmented"] = ((local_image + local_text) / 2).detach()
        image_side = (global_image + views * local_image) / (1 + views)
        text_side = (global_text + views * local_text) / (1 + views)
        factor = 2.0 if self.loss_avg_or_sum == "sum" else 1.0
        return {"loss": factor * (image_side + text_side) / 2, **terms}
