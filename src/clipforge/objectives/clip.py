"""CLIP's symmetric InfoNCE loss.

Radford et al., "Learning Transferable Visual Models From Natural Language Supervision", ICML 2021.

For L2-normalised image/text embeddings I, T [B, D] and learnable temperature s = exp(t)
(t initialised to ln(1/0.07), clamped at ln 100 by the model)::

    logits = s · I Tᵀ                                   # [B, B]
    L = ½ [ CE(logits, diag) + CE(logitsᵀ, diag) ]

Across ranks (OpenCLIP semantics): features are all-gathered (with gradients by default). With
``local_loss`` each rank scores only its own rows against the global batch — memory
O(B_local × B_global) — and the labels are offset by ``rank · B_local``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .. import distributed
from ..data.batch import Batch
from ..models.clip import ModelOutput
from .base import Objective


def clip_logits(
    image_embeds: torch.Tensor,
    text_embeds: torch.Tensor,
    logit_scale: torch.Tensor,
    local_loss: bool = False,
    gather_with_grad: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Image→text and text→image logits plus the index of each row's positive."""
    batch = image_embeds.shape[0]
    if distributed.world_size() > 1:
        all_images = distributed.all_gather_features(image_embeds, gather_with_grad)
        all_texts = distributed.all_gather_features(text_embeds, gather_with_grad)
        if local_loss:
            per_image = logit_scale * image_embeds @ all_texts.T  # [B, world·B]
            per_text = logit_scale * text_embeds @ all_images.T
            labels = torch.arange(batch, device=image_embeds.device) + distributed.rank() * batch
            return per_image, per_text, labels
        image_embeds, text_embeds = all_images, all_texts
    per_image = logit_scale * image_embeds @ text_embeds.T
    labels = torch.arange(per_image.shape[0], device=per_image.device)
    return per_image, per_image.T, labels


class ClipLoss(Objective):
    name = "clip"

    def __init__(
        self, local_loss: bool = False, gather_with_grad: bool = True, label_smoothing: float = 0.0
    ):
        super().__init__()
        self.local_loss = local_loss
        self.gather_with_grad = gather_with_grad
        self.label_smoothing = label_smoothing

    def forward(self, outputs: ModelOutput, batch: Batch) -> dict[str, torch.Tensor]:
        per_image, per_text, labels = clip_logits(
            outputs.image_embeds.float(),
            outputs.text_embeds.float(),
            outputs.logit_scale.float(),
            self.local_loss,
            self.gather_with_grad,
        )
        loss = (
            F.cross_entropy(per_image, labels, label_smoothing=self.label_smoothing)
            + F.cross_entropy(per_text, labels, label_smoothing=self.label_smoothing)
        ) / 2
        return {"loss": loss}
