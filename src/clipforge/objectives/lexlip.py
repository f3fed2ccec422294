"""LexLIP: images and texts as sparse bags of vocabulary words, searchable by an inverted index.

Luo, Zhao, Xu, Geng, Shen, Tao, Ma, Lin, Jiang, "LexLIP: Lexicon-Bottlenecked Language-Image
Pre-Training for Large-Scale Image-Text Sparse Retrieval", ICCV 2023.

Lexicon heads map every patch token x_k (image) and every real text token y_r (caption) to
MLM-style logits over the V words of the tokenizer's vocabulary; max-pooling over tokens and a
log saturation give non-negative, mostly-zero lexicon weights (SPLADE-style)::

    w^I_j = log(1 + relu(max_k  h_I(x_k)_j))         [B, V]
    w^T_j = log(1 + relu(max_r  h_T(y_r)_j))         (padding tokens excluded)
    h(x) = W·LayerNorm(x) + b                        (one head per modality, D → V)

    L_nce   = ½ [ CE(w^I w^Tᵀ / τ, diag) + CE(w^T w^Iᵀ / τ, diag) ]
    FLOPS(w) = Σ_j ( 1/B Σ_i |w_ij| )²               (Paria et al. 2020: penalises words that
                                                      are active for many samples, i.e. long
                                                      posting lists)
    L = L_nce + flops_weight · [ FLOPS(w^I) + FLOPS(w^T) ]

Defaults: τ = 1 (raw sparse dot products, as sparse retrievers score), flops_weight 0.002, head
weights initialised with std ``init_std`` = 0.002. The small init keeps the first sparse dot
products small, so the contrastive term starts near ln B like CLIP's. Measured with std 0.02 on
``tiny``/emoji: ~3,000 of 4,096 words active per sample, dot products in the hundreds, a first
loss of 17, and the whole model collapsed (the dense CLIP loss stuck at ln 64 from step 10).
Simplified from the paper: its phase 1 (lexicon-bottlenecked masked language modelling) and the
momentum queue of phase 2 are not implemented; the heads are a LayerNorm + linear map rather than
a BERT MLM head. Combine with ``clip`` to keep the dense embeddings trained.

Saving: the trainer writes objective state to ``objectives.safetensors`` with keys
``lexlip.heads.{image_norm,image_proj,text_norm,text_proj}.{weight,bias}``; strip the
``lexlip.heads.`` prefix and call :meth:`LexiconHeads.from_state_dict` to rebuild the heads
(``clipforge.search.lexicon.load_lexicon_heads`` does this).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..data.batch import Batch
from ..models.clip import CLIP, ModelOutput
from .base import Objective
from .common import gather_global, symmetric_info_nce


class LexiconHeads(nn.Module):
    """Patch/token features [B, N, D] → non-negative lexicon weights [B, V]."""

    def __init__(self, embed_dim: int, vocab_size: int, init_std: float = 0.002):
        super().__init__()
        self.embed_dim, self.vocab_size = embed_dim, vocab_size
        self.image_norm = nn.LayerNorm(embed_dim)
        self.image_proj = nn.Linear(embed_dim, vocab_size)
        self.text_norm = nn.LayerNorm(embed_dim)
        self.text_proj = nn.Linear(embed_dim, vocab_size)
        for proj in (self.image_proj, self.text_proj):
            nn.init.trunc_normal_(proj.weight, std=init_std)
            nn.init.zeros_(proj.bias)

    @classmethod
    def from_state_dict(cls, state: dict[str, torch.Tensor], config: Any = None
                        ) -> "LexiconHeads":
        """Rebuild heads from their own state dict (sizes read from the weights)."""
        if "image_proj.weight" not in state:
            raise ValueError(f"not a LexiconHeads state dict; keys: {sorted(state)[:6]}")
        vocab_size, embed_dim = state["image_proj.weight"].shape
        heads = cls(embed_dim, vocab_size)
        heads.load_state_dict(state)
        return heads

    @staticmethod
    def _pool(logits: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        if mask is not None:
            logits = logits.masked_fill(~mask.bool()[..., None], float("-inf"))
        return torch.log1p(torch.relu(logits.amax(dim=1)))

    def encode_image_sparse(self, image_tokens: torch.Tensor) -> torch.Tensor:
        """Patch tokens [B, N, D] → lexicon weights [B, V] (≥ 0)."""
        tokens = image_tokens.to(self.image_proj.weight.dtype)
        return self._pool(self.image_proj(self.image_norm(tokens)), None)

    def encode_text_sparse(self, text_tokens: torch.Tensor, mask: torch.Tensor | None = None
                           ) -> torch.Tensor:
        """Token features [B, T, D] and mask [B, T] (True = real) → lexicon weights [B, V]."""
        tokens = text_tokens.to(self.text_proj.weight.dtype)
        return self._pool(self.text_proj(self.text_norm(tokens)), mask)


def flops_regulariser(weights: torch.Tensor) -> torch.Tensor:
    """Σ_j (mean_i |w_ij|)² over a batch of sparse vectors [B, V]."""
    return (weights.abs().mean(dim=0) ** 2).sum()


class LexLipLoss(Objective):
    name = "lexlip"
    needs_tokens = True

    def __init__(self, temperature: float = 1.0, flops_weight: float = 0.002,
                 init_std: float = 0.002):
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"lexlip temperature must be > 0, got {temperature}")
        self.temperature, self.flops_weight, self.init_std = temperature, flops_weight, init_std
        self.heads: LexiconHeads | None = None

    def setup(self, model: CLIP) -> None:
        heads = LexiconHeads(model.config.embed_dim, model.config.text.vocab_size,
                             self.init_std)
        self.heads = heads.to(next(model.parameters()).device)

    def forward(self, outputs: ModelOutput, batch: Batch) -> dict[str, torch.Tensor]:
        if self.heads is None:
            raise ValueError("the lexlip objective was not set up with a model (setup(model))")
        if outputs.image_tokens is None or outputs.text_tokens is None:
            raise ValueError("the lexlip objective needs token features (return_tokens=True)")
        image_weights = self.heads.encode_image_sparse(outputs.image_tokens.float())
        text_weights = self.heads.encode_text_sparse(outputs.text_tokens.float(),
                                                     outputs.text_token_mask)
        all_images, all_texts = gather_global(image_weights), gather_global(text_weights)
        contrastive = symmetric_info_nce(all_images @ all_texts.T / self.temperature)
        flops = flops_regulariser(image_weights) + flops_regulariser(text_weights)
        active = ((image_weights > 0).float().sum(1).mean()
                  + (text_weights > 0).float().sum(1).mean()) / 2
        return {"loss": contrastive + self.flops_weight * flops,
                "contrastive": contrastive.detach(), "flops": flops.detach(),
                "active_words": active.detach()}
