"""Multihead attention pooling ("MAP"): how SigLIP's ViT turns patch tokens into one vector.

One learnt probe query attends over all patch tokens, then a pre-norm MLP with a residual
(Zhai et al., "Scaling Vision Transformers", CVPR 2022; big_vision ``MAPHead``; Hugging Face
``SiglipMultiheadAttentionPoolingHead``)::

    h = MHA(q = probe, k = v = tokens)        # [B, 1, W]
    pooled = (h + MLP(LN(h)))[:, 0]           # [B, W]

It replaces the class token: a ViT with ``pooling="map"`` has none.
"""

from __future__ import annotations

import torch
from torch import nn

from .config import Activation
from .transformer import MLP


class AttentionPool(nn.Module):
    """tokens [B, N, W] → pooled [B, W]; ``heads`` as the tower's, MLP hidden = ratio × W."""

    def __init__(
        self, width: int, heads: int, mlp_ratio: float, activation: Activation, eps: float
    ):
        super().__init__()
        self.probe = nn.Parameter(torch.randn(1, 1, width) * width**-0.5)
        # torch's own module: in_proj_weight [3W, W] packs q, k, v as SigLIP checkpoints store them
        self.attention = nn.MultiheadAttention(width, heads, batch_first=True)
        self.norm = nn.LayerNorm(width, eps=eps)
        self.mlp = MLP(width, int(width * mlp_ratio), activation)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        probe = self.probe.to(tokens.dtype).expand(tokens.shape[0], -1, -1)  # [B, 1, W]
        pooled = self.attention(probe, tokens, tokens, need_weights=False)[0]
        return (pooled + self.mlp(self.norm(pooled)))[:, 0]
