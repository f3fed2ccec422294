"""SigLIP's pairwise sigmoid loss.

Zhai et al., "Sigmoid Loss for Language Image Pre-Training", ICCV 2023.

Every image-text pair is an independent binary problem. With z_ij = +1 for matching pairs and −1
otherwise, temperature s = exp(t′) and bias b::

    L = −(1/B) Σ_i Σ_j log σ( z_ij · (s · I_i·T_j + b) )

Defaults from the paper: t′ initialised to ln 10, b to −10, and t′ not capped (big_vision
leaves it free; ``logit_scale_max: None``) — declared in ``model_defaults`` so a fresh model
gets them. Across ranks the texts of every rank are visited in turn (a ring of
neighbour exchanges), so each rank holds only B_local × B_local logits at a time.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .. import distributed
from ..data.batch import Batch
from ..models.clip import ModelOutput
from .base import Objective


def sigmoid_pair_loss(
    image_embeds: torch.Tensor,
    text_embeds: torch.Tensor,
    logit_scale: torch.Tensor,
    logit_bias: torch.Tensor | float,
    positives: bool,
) -> torch.Tensor:
    """Σ over pairs of −log σ(z · logits), z = +1 on the diagonal when ``positives``, else −1."""
    logits = logit_scale * image_embeds @ text_embeds.T + logit_bias
    labels = -torch.ones_like(logits)
    if positives:
        labels += 2 * torch.eye(logits.shape[0], device=logits.device, dtype=logits.dtype)
    return -F.logsigmoid(labels * logits).sum()


class SigLipLoss(Objective):
    name = "siglip"
    model_defaults = {
        "logit_scale_init": math.log(10.0),
        "logit_bias_init": -10.0,
        "logit_scale_max": None,
    }

    def forward(self, outputs: ModelOutput, batch: Batch) -> dict[str, torch.Tensor]:
        if outputs.logit_bias is None:
            raise ValueError(
                "the siglip objective needs a model with a logit bias "
                "(model config logit_bias_init, e.g. -10)"
            )
        images = outputs.image_embeds.float()
        texts = outputs.text_embeds.float()
        scale, bias = outputs.logit_scale.float(), outputs.logit_bias.float()
        loss = sigmoid_pair_loss(images, texts, scale, bias, positives=True)
        world, rank = distributed.world_size(), distributed.rank()
        if world > 1:
            from .exchange import neighbour_texts

            for texts_from_other in neighbour_texts(texts, world, rank):
                loss = loss + sigmoid_pair_loss(
                    images, texts_from_other, scale, bias, positives=False
                )
        return {"loss": loss / images.shape[0]}
