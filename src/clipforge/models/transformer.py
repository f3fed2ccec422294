"""Pre-norm Transformer blocks shared by both towers.

x ← x + Attn(LN(x));  x ← x + MLP(LN(x)). Attention uses a fused QKV projection and
``torch.nn.functional.scaled_dot_product_attention`` so PyTorch picks the fastest kernel
(flash / memory-efficient / oneDNN) for the device and dtype.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from .config import Activation


class QuickGELU(nn.Module):
    """x · σ(1.702 x): the activation OpenAI CLIP was trained with."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


def make_activation(name: Activation) -> nn.Module:
    if name == "gelu":
        return nn.GELU()
    if name == "quick_gelu":
        return QuickGELU()
    if name == "gelu_tanh":  # 0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³))), SigLIP's
        return nn.GELU(approximate="tanh")
    raise ValueError(f"unknown activation {name!r}; expected 'gelu', 'quick_gelu' or 'gelu_tanh'")


class SelfAttention(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        if width % heads:
            raise ValueError(f"width {width} is not divisible by heads {heads}")
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.out_proj = nn.Linear(width, width)

    def forward(
        self, x: torch.Tensor, causal: bool = False, attn_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        batch, tokens, width = x.shape  # [B, T, W]
        qkv = self.qkv(x).view(batch, tokens, 3, self.heads, width // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each [B, H, T, W/H]
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, is_causal=causal and attn_mask is None
        )
        return self.out_proj(out.transpose(1, 2).reshape(batch, tokens, width))


class MLP(nn.Module):
    def __init__(self, width: int, hidden: int, activation: Activation):
        super().__init__()
        self.fc1 = nn.Linear(width, hidden)
        self.act = make_activation(activation)
        self.fc2 = nn.Linear(hidden, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    def __init__(
        self, width: int, heads: int, mlp_ratio: float, activation: Activation, eps: float = 1e-5
    ):
        super().__init__()
        self.ln_1 = nn.LayerNorm(width, eps=eps)
        self.attn = SelfAttention(width, heads)
        self.ln_2 = nn.LayerNorm(width, eps=eps)
        self.mlp = MLP(width, int(width * mlp_ratio), activation)

    def forward(
        self, x: torch.Tensor, causal: bool = False, attn_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), causal=causal, attn_mask=attn_mask)
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    """A stack of pre-norm blocks; ``grad_checkpointing`` trades compute for activation memory."""

    def __init__(
        self,
        width: int,
        layers: int,
        heads: int,
        mlp_ratio: float,
        activation: Activation,
        eps: float = 1e-5,
    ):
        super().__init__()
        self.blocks = nn.ModuleList(
            Block(width, heads, mlp_ratio, activation, eps) for _ in range(layers)
        )
        self.grad_checkpointing = False

    def forward(
        self, x: torch.Tensor, causal: bool = False, attn_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        for block in self.blocks:
            if self.grad_checkpointing and self.training and torch.is_grad_enabled():
                x = checkpoint(block, x, causal, attn_mask, use_reentrant=False)
            else:
                x = block(x, causal=causal, attn_mask=attn_mask)
        return x
