"""The two towers: a ViT over image patches and a (causal) Transformer over tokens.

Each tower ends in its projection into the shared embedding space, so either can be used alone
(an image indexer needs only :class:`VisionTower`). Both return the pooled embedding [B, D] and the
projected token features [B, N, D] that fine-grained objectives (FILIP, TCL, LexLIP) use.
"""

from __future__ import annotations

import torch
from torch import nn

from .config import Activation, TextConfig, VisionConfig
from .pooling import AttentionPool
from .transformer import Transformer, make_activation


def make_projection(
    width: int, embed_dim: int, kind: str, activation: Activation, bias: bool = False
) -> nn.Module:
    """The tower's head into the shared space; ``bias`` only for the linear kind (SigLIP text)."""
    if kind == "linear":
        return nn.Linear(width, embed_dim, bias=bias)
    if kind == "mlp":  # "CLIP-improved" / SLIP-style two-layer head
        return nn.Sequential(
            nn.Linear(width, width), make_activation(activation), nn.Linear(width, embed_dim)
        )
    raise ValueError(f"unknown projection {kind!r}; expected 'linear' or 'mlp'")


class VisionTower(nn.Module):
    """ViT: patchify → [CLS] + position → LN → blocks → LN → pool → projection.

    Pooled at the class token (CLIP) or, with ``pooling="map"``, by attention pooling over the
    patches (SigLIP: no class token, no ``ln_pre``, no projection after the pool).
    """

    def __init__(
        self,
        config: VisionConfig,
        embed_dim: int,
        activation: Activation,
        projection: str = "linear",
    ):
        super().__init__()
        if config.pooling not in ("cls", "map"):
            raise ValueError(f"vision.pooling {config.pooling!r}; expected 'cls' or 'map'")
        if not config.projected and config.width != embed_dim:
            raise ValueError(
                f"vision.projected is false, so vision.width {config.width} must equal "
                f"embed_dim {embed_dim}"
            )
        self.config = config
        width = config.width
        self.patch_embed = nn.Conv2d(
            3, width, config.patch_size, config.patch_size, bias=config.patch_bias
        )
        # the class token: only for "cls" pooling (state-dict names unchanged for CLIP models)
        extra = 1 if config.pooling == "cls" else 0
        if extra:
            self.class_embedding = nn.Parameter(torch.randn(width) * width**-0.5)
        self.positional_embedding = nn.Parameter(
            torch.randn(config.num_patches + extra, width) * 0.01
        )
        self.ln_pre = nn.LayerNorm(width, eps=config.layer_norm_eps) if config.pre_norm else None
        self.transformer = Transformer(
            width, config.layers, config.heads, config.mlp_ratio, activation, config.layer_norm_eps
        )
        self.ln_post = nn.LayerNorm(width, eps=config.layer_norm_eps)
        self.pool = None
        if config.pooling == "map":
            self.pool = AttentionPool(
                width, config.heads, config.mlp_ratio, activation, config.layer_norm_eps
            )
        self.proj = (
            make_projection(width, embed_dim, projection, activation)
            if config.projected
            else nn.Identity()
        )

    def forward(self, images: torch.Tensor, return_tokens: bool = False):
        """images [B, 3, H, W] → pooled [B, D] (and patch tokens [B, N, D] if asked)."""
        x = self.patch_embed(images).flatten(2).transpose(1, 2)  # [B, N, W]
        if self.pool is None:
            cls = self.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
            x = torch.cat([cls, x], dim=1)
        x = x + self.positional_embedding.to(x.dtype)
        if self.ln_pre is not None:
            x = self.ln_pre(x)
        x = self.transformer(x)
        if self.pool is not None:  # MAP: pool the normed patches; tokens are projected alone
            x = self.ln_post(x)
            pooled = self.proj(self.pool(x))
            return (pooled, self.proj(x)) if return_tokens else pooled
        if not return_tokens:
            return self.proj(self.ln_post(x[:, 0]))
        x = self.proj(self.ln_post(x))  # [B, 1+N, D]
        return x[:, 0], x[:, 1:]


LENGTH_GROUPS, MIN_GROUP_ROWS = 4, 8  # see TextTower.pooled_by_length


class TextTower(nn.Module):
    """Causal Transformer pooled at the first end-of-text token (the last token if none).

    SigLIP's variant (``causal=False, pool_at="last"``) attends both ways and pools at the last
    position; its projection has a bias.
    """

    def __init__(
        self, config: TextConfig, embed_dim: int, activation: Activation, projection: str = "linear"
    ):
        super().__init__()
        self.config = config
        width = config.width
        self.token_embedding = nn.Embedding(config.vocab_size, width)
        self.positional_embedding = nn.Parameter(torch.randn(config.context_length, width) * 0.01)
        self.transformer = Transformer(
            width, config.layers, config.heads, config.mlp_ratio, activation, config.layer_norm_eps
        )
        self.ln_final = nn.LayerNorm(width, eps=config.layer_norm_eps)
        self.proj = make_projection(
            width, embed_dim, projection, activation, bias=config.projection_bias
        )
        nn.init.normal_(self.token_embedding.weight, std=0.02)

    def eos_positions(self, text: torch.Tensor) -> torch.Tensor:
        """Index of the first EOS token per row, [B]; rows without one pool at the last token."""
        is_eos = text == self.config.eos_token_id
        first = is_eos.int().argmax(dim=1)
        return torch.where(is_eos.any(dim=1), first, torch.full_like(first, text.shape[1] - 1))

    def pool_positions(self, text: torch.Tensor) -> torch.Tensor:
        """Where each row is pooled, [B]: its first EOS (``pool_at="eot"``) or the last position."""
        if self.config.pool_at == "last":
            return torch.full((text.shape[0],), text.shape[1] - 1, device=text.device)
        return self.eos_positions(text)

    def token_mask(self, text: torch.Tensor) -> torch.Tensor:
        """True for real tokens (up to and including EOS), False for padding; [B, T]."""
        positions = torch.arange(text.shape[1], device=text.device)
        return positions[None, :] <= self.eos_positions(text)[:, None]

    def forward(self, text: torch.Tensor, return_tokens: bool = False):
        """text [B, T] token ids → pooled [B, D] (and tokens [B, T, D], mask [B, T] if asked)."""
        if text.shape[1] > self.config.context_length:
            raise ValueError(
                f"text has {text.shape[1]} tokens; the model's context is "
                f"{self.config.context_length}"
            )
        pool_at = self.pool_positions(text)
        if not return_tokens and self.config.causal:
            return self.proj(self.pooled_by_length(text, pool_at))
        x = self.encode_tokens(text)  # [B, T, W]
        pooled = self.proj(x[torch.arange(x.shape[0], device=x.device), pool_at])
        if not return_tokens:
            return pooled
        return pooled, self.proj(x), self.token_mask(text)

    def encode_tokens(self, text: torch.Tensor) -> torch.Tensor:
        """token ids [B, T] → final-LN token features [B, T, W] (before the projection)."""
        return self.encode_token_embeddings(self.token_embedding(text))

    def encode_token_embeddings(self, token_embeds: torch.Tensor) -> torch.Tensor:
        """Token embeddings [B, T, W] (rows of ``token_embedding`` or learnt vectors in their
        place) → final-LN token features [B, T, W]; positions are added here."""
        x = token_embeds + self.positional_embedding[: token_embeds.shape[1]]
        return self.ln_final(self.transformer(x, causal=self.config.causal))

    def forward_embeddings(self, token_embeds: torch.Tensor, pool_at: torch.Tensor) -> torch.Tensor:
        """Token embeddings [B, T, W] and pooling positions [B] → pooled, projected [B, D].

        The entry point for soft prompts (CoOp): learnt context vectors replace some rows of the
        token embeddings; ``pool_at`` is :meth:`pool_positions` of the ids they stand in for.
        Equal to :meth:`forward` when the embeddings are ``token_embedding(ids)``.
        """
        x = self.encode_token_embeddings(token_embeds)
        return self.proj(x[torch.arange(x.shape[0], device=x.device), pool_at])

    def pooled_by_length(self, text: torch.Tensor, eos: torch.Tensor) -> torch.Tensor:
        """The EOS features [B, W], skipping the padding.

        Causal attention: a token never sees the tokens after it, so nothing after a caption's
        EOS can change its pooled feature. Captions are sorted by length and encoded in up to
        ``LENGTH_GROUPS`` groups, each cut after its longest caption. Exact, and the tower's
        work follows the captions' real lengths instead of the context (web captions are ~15
        of 77 tokens); the groups keep ≥ ``MIN_GROUP_ROWS`` rows so each matmul stays large.
        """
        groups = max(1, min(LENGTH_GROUPS, text.shape[0] // MIN_GROUP_ROWS))
        order = eos.argsort()
        parts = []
        for rows in order.chunk(groups):
            length = int(eos[rows].max()) + 1
            x = self.encode_tokens(text[rows, :length])
            parts.append(x[torch.arange(len(rows), device=x.device), eos[rows]])
        return torch.cat(parts)[order.argsort()]
