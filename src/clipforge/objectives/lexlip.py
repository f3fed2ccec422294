"""LexLIP: images and texts as sparse bags of vocabulary words, searchable by an inverted index.

Luo, Zhao, Xu, Geng, Shen, Tao, Ma, Lin, Jiang, "LexLIP: Lexicon-Bottlenecked Language-Image
Pre-Training for Large-Scale Image-Text Sparse Retrieval", ICCV 2023. Faithful to the released
phase-2 loss (github.com/ChiYeungLaw/LexLIP-ICCV23, ``Phase2/src/modules/objectives.py``:
``compute_contrastive``, ``CL4MoCo``, ``FLOAP``), with the MoCo queue replaced by in-batch
negatives.

The lexicon heads (:class:`clipforge.models.lexicon.LexiconHeads`) give every image and caption
a non-negative, L2-normalised weight vector over the V words, w^I, w^T [B, V]. Then::

    L_nce    = ½ [ CE(w^I w^Tᵀ / τ, diag) + CE(w^T w^Iᵀ / τ, diag) ]      (cosines / τ)
    FLOPS(w) = Σ_j ( 1/B Σ_i |w_ij| )²       (Paria et al. 2020, on the *normalised* vectors:
                                             penalises words active for many samples, i.e.
                                             long posting lists)
    L = L_nce + flops_weight · [ FLOPS(w^I) + FLOPS(w^T) ]

Defaults as released: τ = 0.05 (``temperature = 0.05`` in every config), flops_weight 0.002;
head weights initialised with std ``init_std`` = 0.002 (scoring is scale-free after the
normalisation, so this only sets how linear log(1 + ·) starts). Before this form, clipforge
contrasted raw sparse dot products at τ = 1: with std 0.02 on ``tiny``/emoji that gave dot
products in the hundreds, a first loss of 17 and a collapsed model.

Simplified from the paper: phase 1 (lexicon-bottlenecked masked language modelling) is not
implemented, the MoCo momentum encoders and queue of phase 2 are replaced by in-batch negatives
over the global batch (the released loss with the queue holding the other samples' keys and the
momentum encoder equal to the online one), and the heads are a LayerNorm + linear map rather than
a BERT MLM head. Combine with ``clip`` to keep the dense embeddings trained.

Saving: the trainer writes objective state to ``objectives.safetensors`` with keys
``lexlip.heads.{image_norm,image_proj,text_norm,text_proj}.{weight,bias}``;
``clipforge.search.lexicon.load_lexicon_heads`` rebuilds the heads from them.
"""

from __future__ import annotations

import torch

from ..data.batch import Batch
from ..models.clip import CLIP, ModelOutput
from ..models.lexicon import LexiconHeads
from .base import Objective
from .common import gather_global, symmetric_info_nce

__all__ = ["LexLipLoss", "flops_regulariser"]


def flops_regulariser(weights: torch.Tensor) -> torch.Tensor:
    """Σ_j (mean_i |w_ij|)² over a batch of sparse vectors [B, V]."""
    return (weights.abs().mean(dim=0) ** 2).sum()


class LexLipLoss(Objective):
    name = "lexlip"
    needs_tokens = True

    def __init__(
        self, temperature: float = 0.05, flops_weight: float = 0.002, init_std: float = 0.002
    ):
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"lexlip temperature must be > 0, got {temperature}")
        self.temperature, self.flops_weight, self.init_std = temperature, flops_weight, init_std
        self.heads: LexiconHeads | None = None

    def setup(self, model: CLIP) -> None:
        heads = LexiconHeads(model.config.embed_dim, model.config.text.vocab_size, self.init_std)
        self.heads = heads.to(next(model.parameters()).device)

    def forward(self, outputs: ModelOutput, batch: Batch) -> dict[str, torch.Tensor]:
        if self.heads is None:
            raise ValueError("the lexlip objective was not set up with a model (setup(model))")
        if outputs.image_tokens is None or outputs.text_tokens is None:
            raise ValueError("the lexlip objective needs token features (return_tokens=True)")
        image_weights = self.heads.encode_image_sparse(outputs.image_tokens.float())  # unit norm
        text_weights = self.heads.encode_text_sparse(
            outputs.text_tokens.float(), outputs.text_token_mask
        )
        all_images, all_texts = gather_global(image_weights), gather_global(text_weights)
        contrastive = symmetric_info_nce(all_images @ all_texts.T / self.temperature)
        flops = flops_regulariser(image_weights) + flops_regulariser(text_weights)
        active = (
            (image_weights > 0).float().sum(1).mean() + (text_weights > 0).float().sum(1).mean()
        ) / 2
        return {
            "loss": contrastive + self.flops_weight * flops,
            "contrastive": contrastive.detach(),
            "flops": flops.detach(),
            "active_words": active.detach(),
        }
