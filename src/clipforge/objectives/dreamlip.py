"""DreamLIP: every sentence of a long caption is its own positive, and groups its own patches.

Zheng, Zhang, Wu, Lu, Ma, Jin, Chen, Shen, "DreamLIP: Language-Image Pre-training with Long
Captions", ECCV 2024; code github.com/zyf0619sjtu/DreamLIP (``open_clip/loss.py``, ``ClipLoss``
with ``use_declip_loss`` and ``use_finegrained_loss``).

Long (e.g. MLLM-written) captions describe many parts of an image. The loader splits each caption
into up to K sentences (extras ``sub_captions`` [B, K, T], ``sub_caption_mask`` [B, K]); with the
whole caption as caption 0 (``include_caption``), image i has captions T_i0 … T_iK. All features
are L2-normalised; s is the model's logit scale and s_l a separate learned local scale.

1. Per-caption contrastive terms (the code's CLIP + "(De)CLIP" losses): caption slot t is a CLIP
   problem of its own between the images and their t-th captions, averaged over the n slots::

       L_itc = 1/n Σ_t ½ [ CE(s·I T_tᵀ, diag) + CE(s·T_t Iᵀ, diag) ]

2. Sub-caption-specific grouping (the code's ``finegrained_loss``, SPARC-style): each caption c of
   image i weighs the normalised patches p̂_ik of its own image::

       a_k = minmax_k( t̂_c · p̂_ik ),   w_k = a_k·[a_k ≥ δ] / Σ_k' a_k'·[a_k' ≥ δ]
       ĝ_c = normalise( Σ_k w_k p̂_ik )
       L_sgl = ½ [ CE(s_l·T Ĝᵀ, diag) + CE(s_l·Ĝ Tᵀ, diag) ]     over all M captions of the batch

   L = itc_weight · L_itc + grouping_weight · L_sgl

Defaults are the code's: δ = 0 (``sgl_delta``; a negative δ means 1/N), both weights 1, s_l
initialised at ln(1/0.07) and clamped to [0, ln 100] after each step as the code does. Terms use
the all-gathered batch, as the code does. Differences from the code: a caption slot the loader
could not fill (fewer sentences) is masked out of its term instead of repeating a sentence; the
code's grouping reshapes captions stacked slot-major as [B, n] (pairing captions with other
images' patches when n > 1) — here each caption groups its own image's patches, as the paper says.
Since caption 0 is the whole caption, do not add ``clip`` alongside. Shapes: patch tokens
[B, N, D], sub-caption embeddings [M, D].
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..data.batch import Batch
from ..models.clip import CLIP, ModelOutput
from .base import Objective
from .common import gather_global, symmetric_info_nce


def per_caption_nce(
    images: torch.Tensor, captions: torch.Tensor, mask: torch.Tensor, scale: torch.Tensor
) -> torch.Tensor:
    """L_itc: images [B, D], captions [B, n, D], mask [B, n]; slots with no caption are skipped."""
    terms = []
    for slot in range(captions.shape[1]):
        valid = mask[:, slot]
        if not valid.any():
            continue
        rows = valid.nonzero().flatten()
        logits = scale * images @ captions[valid, slot].T  # [B, V]
        image_to_text = F.cross_entropy(logits[rows], torch.arange(len(rows), device=rows.device))
        text_to_image = F.cross_entropy(logits.T, rows)
        terms.append((image_to_text + text_to_image) / 2)
    return torch.stack(terms).mean()


def group_patches(
    patches: torch.Tensor, captions: torch.Tensor, owners: torch.Tensor, threshold: float = 0.0
) -> torch.Tensor:
    """Grouped features ĝ [M, D] of captions [M, D] (normalised) over the normalised patches
    [B, N, D] of their own image ``owners`` [M]."""
    own = patches[owners]  # [M, N, D]
    similarity = torch.einsum("md,mnd->mn", captions, own)
    low = similarity.amin(dim=1, keepdim=True)
    high = similarity.amax(dim=1, keepdim=True)
    scaled = (similarity - low) / (high - low + 1e-10)
    limit = 1.0 / patches.shape[1] if threshold < 0 else threshold
    weights = torch.where(scaled < limit, torch.zeros_like(scaled), scaled)
    total = weights.sum(dim=1, keepdim=True)
    weights = torch.where(
        total > 0,
        weights / total.clamp(min=1e-12),
        torch.full_like(weights, 1.0 / weights.shape[1]),
    )  # all-equal scores
    return F.normalize(torch.einsum("mn,mnd->md", weights, own), dim=-1)


class DreamLipLoss(Objective):
    name = "dreamlip"
    needs_tokens = True
    extra_inputs = ("sub_captions",)

    _model: CLIP  # set in setup(), not registered as a submodule

    def __init__(
        self,
        itc_weight: float = 1.0,
        grouping_weight: float = 1.0,
        threshold: float = 0.0,
        include_caption: bool = True,
        max_sub_captions: int | None = None,
        local_scale_init: float = 1 / 0.07,
    ):
        super().__init__()
        self.itc_weight, self.grouping_weight = itc_weight, grouping_weight
        self.threshold = threshold
        self.include_caption, self.max_sub_captions = include_caption, max_sub_captions
        self.logit_scale_local = nn.Parameter(torch.tensor(math.log(local_scale_init)))

    def setup(self, model: CLIP) -> None:
        object.__setattr__(self, "_model", model)

    @torch.no_grad()
    def after_step(self, model: CLIP, step: int) -> None:
        self.logit_scale_local.clamp_(0.0, math.log(100))

    def captions(self, outputs: ModelOutput, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised caption embeddings [B, n, D] (zeros where masked) and their mask [B, n]."""
        if "sub_captions" not in batch.extras:
            raise ValueError("the dreamlip objective needs the loader extra 'sub_captions'")
        ids = batch.extras["sub_captions"]  # [B, K, T]
        mask = batch.extras.get("sub_caption_mask")
        mask = (
            torch.ones(ids.shape[:2], dtype=torch.bool, device=ids.device)
            if mask is None
            else mask.bool()
        )
        if self.max_sub_captions:
            ids, mask = ids[:, : self.max_sub_captions], mask[:, : self.max_sub_captions]
        embeds = outputs.image_embeds.new_zeros(*mask.shape, outputs.image_embeds.shape[1]).float()
        if mask.any():
            embeds = embeds.masked_scatter(
                mask[..., None],
                F.normalize(self._model.encode_text(ids[mask], normalize=True).float(), dim=-1),
            )
        if self.include_caption:
            caption = F.normalize(outputs.text_embeds.float(), dim=-1)[:, None]
            embeds = torch.cat([caption, embeds], dim=1)
            mask = torch.cat([torch.ones_like(mask[:, :1]), mask], dim=1)
        return embeds, mask

    def forward(self, outputs: ModelOutput, batch: Batch) -> dict[str, torch.Tensor]:
        if getattr(self, "_model", None) is None:
            raise ValueError("the dreamlip objective was not set up with a model (setup(model))")
        if outputs.image_tokens is None:
            raise ValueError("the dreamlip objective needs token features (return_tokens=True)")
        captions, mask = self.captions(outputs, batch)
        captions, mask = gather_global(captions), gather_global(mask)
        if not mask.any():  # nothing to contrast: a zero that keeps the graph
            zero = outputs.image_embeds.sum() * 0.0 + self.logit_scale_local * 0.0
            return {"loss": zero, "itc": zero.detach(), "grouping": zero.detach()}
        images = gather_global(F.normalize(outputs.image_embeds.float(), dim=-1))
        patches = gather_global(F.normalize(outputs.image_tokens.float(), dim=-1))
        itc = per_caption_nce(images, captions, mask, outputs.logit_scale.float())
        owners = torch.arange(mask.shape[0], device=mask.device)[:, None].expand_as(mask)[mask]
        texts = captions[mask]  # [M, D]
        grouped = group_patches(patches, texts, owners, self.threshold)
        logits = self.logit_scale_local.exp() * texts @ grouped.T
        grouping = symmetric_info_nce(logits)
        loss = self.itc_weight * itc + self.grouping_weight * grouping
        return {
            "loss": loss,
            "itc": itc.detach(),
            "grouping": grouping.detach(),
            "local_scale": self.logit_scale_local.exp().detach(),
        }
