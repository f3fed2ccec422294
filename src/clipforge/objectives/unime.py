"""UniME's hard-negative InfoNCE: drop probable false negatives, keep the top-k hardest.

Gu, Yang, Feng, Wang, Zhang, Long, Chen, Cai, Deng, "Breaking the Modality Barrier: Universal
Embedding Learning with Multimodal LLMs", arXiv 2504.17432, 2025 (code: github.com/deepglint/UniME,
``loss.py``: ``SimpleContrastiveLossBatchRank`` / ``DistributedContrastiveLossBatchRank``).

For queries x and keys y [B, D] (L2-normalised) with cosines c_ij = x_i · y_j, a negative j of row
i is a probable false negative when it beats the positive by a margin, c_ij > c_ii + m; of the
rest, only the k most similar enter a plain InfoNCE over 1 + k candidates::

    H_i    = top-k_{j ≠ i, c_ij ≤ c_ii + m} c_ij                    # hard negatives of row i
    L_row  = −log( exp(c_ii / τ) / (exp(c_ii / τ) + Σ_{j ∈ H_i} exp(c_ij / τ)) )

No re-weighting (contrast :mod:`clipforge.objectives.hcl`): hardness comes from the selection.
Defaults as released: τ = 0.02 (fixed), k = 8, m = 0.1. ``temperature: null`` uses the model's
learned logit scale instead.

Faithful to the released loss, except: (1) it is applied in both directions (image→text and
text→image, averaged) as CLIP pairs are symmetric — ``symmetric: false`` keeps the released
image-query direction only; (2) a row with fewer than k surviving negatives uses those it has,
where the released ``topk`` would re-admit filtered ones (or the positive) at their real score;
(3) across ranks keys and queries are gathered with gradients (OpenCLIP style) instead of
``all_gather`` without gradients and a loss multiplied by the world size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..data.batch import Batch
from ..models.clip import ModelOutput
from .base import Objective
from .common import gather_global


def filtered_top_k_nce(
    queries: torch.Tensor,
    keys: torch.Tensor,
    scale: torch.Tensor | float,
    top_k: int,
    margin: float,
) -> torch.Tensor:
    """Mean over rows of InfoNCE against the k hardest non-false negatives; [B, D] each."""
    cosines = queries @ keys.T  # [B, B]
    size = cosines.shape[0]
    positive = cosines.diagonal()
    eye = torch.eye(size, dtype=torch.bool, device=cosines.device)
    candidate = ~eye & (cosines <= positive.unsqueeze(1) + margin)
    hardness = cosines.detach().masked_fill(~candidate, float("-inf"))
    k = min(top_k, size - 1)
    values, indices = hardness.topk(k, dim=1)
    chosen = torch.zeros_like(candidate).scatter_(1, indices, torch.isfinite(values))
    logits = (scale * cosines).masked_fill(~(chosen | eye), float("-inf"))
    labels = torch.arange(size, device=cosines.device)
    return F.cross_entropy(logits, labels)


class UniMEHardNegativeLoss(Objective):
    name = "unime"

    def __init__(
        self,
        temperature: float | None = 0.02,
        top_k: int = 8,
        false_negative_margin: float = 0.1,
        symmetric: bool = True,
    ):
        super().__init__()
        if temperature is not None and temperature <= 0:
            raise ValueError(f"unime temperature must be > 0 (or null), got {temperature}")
        if top_k < 1:
            raise ValueError(f"unime top_k must be ≥ 1, got {top_k}")
        self.temperature, self.top_k = temperature, top_k
        self.false_negative_margin, self.symmetric = false_negative_margin, symmetric

    def forward(self, outputs: ModelOutput, batch: Batch) -> dict[str, torch.Tensor]:
        images = gather_global(outputs.image_embeds.float())
        texts = gather_global(outputs.text_embeds.float())
        scale = outputs.logit_scale.float() if self.temperature is None else 1.0 / self.temperature
        image_to_text = filtered_top_k_nce(
            images, texts, scale, self.top_k, self.false_negative_margin
        )
        if not self.symmetric:
            return {"loss": image_to_text}
        text_to_image = filtered_top_k_nce(
            texts, images, scale, self.top_k, self.false_negative_margin
        )
        return {
            "loss": (image_to_text + text_to_image) / 2,
            "image_to_text": image_to_text.detach(),
            "text_to_image": text_to_image.detach(),
        }
