"""LexLIP's lexicon heads: patch / token features → unit-norm, non-negative bags of words.

Luo et al., "LexLIP: Lexicon-Bottlenecked Language-Image Pre-Training for Large-Scale Image-Text
Sparse Retrieval", ICCV 2023 (code: github.com/ChiYeungLaw/LexLIP-ICCV23). A model part, not a
loss: the ``lexlip`` objective trains these heads and ``clipforge.search`` encodes with them, so
both import them from here.

Each head maps every patch token x_k (image) or real text token y_r (caption, padding excluded)
to MLM-style logits over the V words of the tokenizer's vocabulary; ReLU, max-pooling over tokens
and a log saturation give a mostly-zero weight per word (SPLADE-style, as the released
``encode_image`` / ``encode_text``), then the vector is L2-normalised as the released
``compute_contrastive`` does (``F.normalize(bottleneck_repre)``)::

    u_j = log(1 + max_k relu(h(x_k)_j))              [B, V]
    w   = u / ‖u‖₂                                   (non-negative, unit norm, as sparse as u)
    h(x) = W·LayerNorm(x) + b                        (one head per modality, D → V)

Because w is unit-norm, the sparse index's plain dot product of two such vectors is their cosine
— the score the objective trains (up to its temperature) and the released code ranks by.
Simplified from the paper: a LayerNorm + linear map rather than a BERT MLM head.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


class LexiconHeads(nn.Module):
    """Patch/token features [B, N, D] → L2-normalised non-negative lexicon weights [B, V].

    Weights are saved as ``{image_norm,image_proj,text_norm,text_proj}.{weight,bias}``.
    """

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
    def from_state_dict(cls, state: dict[str, torch.Tensor], config: Any = None) -> LexiconHeads:
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
        weights = torch.log1p(torch.relu(logits.amax(dim=1)))  # [B, V], ≥ 0
        return F.normalize(weights, dim=-1)  # all-zero rows stay 0

    def encode_image_sparse(self, image_tokens: torch.Tensor) -> torch.Tensor:
        """Patch tokens [B, N, D] → unit-norm lexicon weights [B, V] (≥ 0)."""
        tokens = image_tokens.to(self.image_proj.weight.dtype)
        return self._pool(self.image_proj(self.image_norm(tokens)), None)

    def encode_text_sparse(
        self, text_tokens: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Token features [B, T, D] and mask [B, T] (True = real) → unit-norm weights [B, V]."""
        tokens = text_tokens.to(self.text_proj.weight.dtype)
        return self._pool(self.text_proj(self.text_norm(tokens)), mask)
