"""ALIP: contrastive learning from raw text and synthetic captions, weighted by their agreement.

Yang, Deng, An, Li, Feng, Guo, Yang, Liu, "ALIP: Adaptive Language-Image Pre-training with
Synthetic Caption", ICCV 2023.

Each image has its raw (web) text T and a synthetic caption C (loader extra ``alt_text``: the
record's second caption, with ``alt_text_present`` [B]). Noisy pairs are down-weighted by two
gates, computed without gradient from cosine similarities and their running means
m ← 0.99·m + 0.01·mean(batch) (initialised at 1, kept in buffers so a resumed run continues)::

    Language Consistency Gate      s_TC = T_i·C_i     w_sample_i = min(exp(s_TC − m_TC)², 1)
    Description Consistency Gate   s_IT = I_i·T_i     w_raw_i = exp(s_IT − m_IT)²
                                   s_IC = I_i·C_i     w_cap_i = exp(s_IC − m_IC)²
                                   (w_raw, w_cap are 1 wherever s_TC ≥ m_TC)

    ℓ_i(I, X) = ½ [ CE(s·I Xᵀ, i)_row i + CE(s·X Iᵀ, i)_row i ]
    L = mean_i w_sample_i·w_raw_i·ℓ_i(I, T)  +  mean_i w_sample_i·w_cap_i·ℓ_i(I, C)

These are the gates of the authors' released training script (which squares the exponential);
the running means are updated in :meth:`forward` from the current (global) batch, before the
weights are computed, as there. Samples without a synthetic caption (``alt_text_present`` False)
contribute only their raw-text term, with weight 1, and are left out of the running means.
This objective replaces ``clip`` (its raw-text term is CLIP's loss, reweighted).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..data.batch import Batch
from ..models.clip import CLIP, ModelOutput
from .base import Objective
from .common import gather_global


def per_sample_nce(images: torch.Tensor, texts: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """ℓ_i = ½ [image i → texts + text i → images] cross-entropies, [B]."""
    logits = scale * images @ texts.T
    labels = torch.arange(logits.shape[0], device=logits.device)
    return (
        F.cross_entropy(logits, labels, reduction="none")
        + F.cross_entropy(logits.T, labels, reduction="none")
    ) / 2


class AlipLoss(Objective):
    name = "alip"
    extra_inputs = ("alt_text",)

    def __init__(self, ema_momentum: float = 0.99):
        super().__init__()
        if not 0.0 <= ema_momentum < 1.0:
            raise ValueError(f"alip ema_momentum must be in [0, 1), got {ema_momentum}")
        self.ema_momentum = ema_momentum
        for name in ("mean_text_caption", "mean_image_text", "mean_image_caption"):
            self.register_buffer(name, torch.ones(()))

    def setup(self, model: CLIP) -> None:
        object.__setattr__(self, "_model", model)

    @torch.no_grad()
    def _update(self, name: str, similarities: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """m ← μ·m + (1−μ)·mean(similarities over present samples); unchanged if none is."""
        buffer = getattr(self, name)
        if self.training:
            weights = present.to(similarities.dtype)
            count = weights.sum()
            mean = (similarities * weights).sum() / count.clamp(min=1.0)
            updated = self.ema_momentum * buffer + (1 - self.ema_momentum) * mean
            buffer.copy_(torch.where(count > 0, updated, buffer))
        return buffer

    @torch.no_grad()
    def gate_weights(
        self,
        images: torch.Tensor,
        raw: torch.Tensor,
        synthetic: torch.Tensor,
        present: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(w_sample, w_raw, w_cap), each [B]; updates the running means from this batch."""
        text_caption = (raw * synthetic).sum(dim=1)
        image_text = (images * raw).sum(dim=1)
        image_caption = (images * synthetic).sum(dim=1)
        mean_tc = self._update("mean_text_caption", text_caption, present)
        mean_it = self._update("mean_image_text", image_text, present)
        mean_ic = self._update("mean_image_caption", image_caption, present)
        sample_raw = torch.exp(text_caption - mean_tc) ** 2
        consistent = sample_raw >= 1  # s_TC ≥ m_TC: trust both texts
        ones = torch.ones_like(sample_raw)
        w_sample = torch.where(consistent, ones, sample_raw)
        w_raw = torch.where(consistent, ones, torch.exp(image_text - mean_it) ** 2)
        w_cap = torch.where(consistent, ones, torch.exp(image_caption - mean_ic) ** 2)
        w_sample = torch.where(present, w_sample, ones)
        w_raw = torch.where(present, w_raw, ones)
        w_cap = torch.where(present, w_cap, torch.zeros_like(w_cap))
        return w_sample, w_raw, w_cap

    def forward(self, outputs: ModelOutput, batch: Batch) -> dict[str, torch.Tensor]:
        model = getattr(self, "_model", None)
        if model is None:
            raise ValueError("the alip objective was not set up with a model (setup(model))")
        if "alt_text" not in batch.extras:
            raise ValueError("the alip objective needs the loader extra 'alt_text'")
        present = batch.extras.get("alt_text_present")
        if present is None:
            present = torch.ones(len(batch.extras["alt_text"]), dtype=torch.bool)
        images = gather_global(outputs.image_embeds.float())
        raw = gather_global(outputs.text_embeds.float())
        synthetic = gather_global(
            model.encode_text(batch.extras["alt_text"], normalize=True).float()
        )
        present = gather_global(present.to(images.device).bool())
        w_sample, w_raw, w_cap = self.gate_weights(
            images.detach(), raw.detach(), synthetic.detach(), present
        )
        scale = outputs.logit_scale.float()
        raw_loss = (w_sample * w_raw * per_sample_nce(images, raw, scale)).mean()
        caption_loss = (w_sample * w_cap * per_sample_nce(images, synthetic, scale)).mean()
        weight_caption = (w_cap * present).sum() / present.sum().clamp(min=1)
        return {
            "loss": raw_loss + caption_loss,
            "raw_text": raw_loss.detach(),
            "synthetic": caption_loss.detach(),
            "weight_sample": w_sample.mean(),
            "weight_raw": w_raw.mean(),
            "weight_caption": weight_caption,
        }
