"""The CLIP dual encoder: two towers, a learnable temperature and an optional SigLIP bias."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig
from .pretrained_text import PretrainedTextTower
from .towers import TextTower, VisionTower


@dataclass
class ModelOutput:
    """What objectives receive. Embeddings are L2-normalised; token features are not."""

    image_embeds: torch.Tensor  # [B, D]
    text_embeds: torch.Tensor  # [B, D]
    logit_scale: torch.Tensor  # scalar exp(t), t ≤ logit_scale_max
    logit_bias: torch.Tensor | None = None  # scalar (SigLIP) or None
    image_tokens: torch.Tensor | None = None  # [B, N, D] projected patch tokens
    text_tokens: torch.Tensor | None = None  # [B, T, D] projected token features
    text_token_mask: torch.Tensor | None = None  # [B, T] True for real tokens
    image_features: torch.Tensor | None = None  # [B, D] projector outputs before the L2 norm
    text_features: torch.Tensor | None = None  # [B, D] (CLIP-Refine's HyCD / RaFA use them)


class CLIP(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.visual = VisionTower(
            config.vision, config.embed_dim, config.activation, config.projection
        )
        text_tower = PretrainedTextTower if config.text.pretrained else TextTower
        self.text = text_tower(config.text, config.embed_dim, config.activation, config.projection)
        self.logit_scale = nn.Parameter(torch.tensor(float(config.logit_scale_init)))
        self.logit_bias: nn.Parameter | None  # SigLIP's learnt bias b; None without one
        if config.logit_bias_init is not None:
            self.logit_bias = nn.Parameter(torch.tensor(float(config.logit_bias_init)))
        else:
            self.logit_bias = None

    def encode_image(
        self, images: torch.Tensor, *, normalize: bool = True, return_tokens: bool = False
    ):
        """images [B, 3, H, W] → embeddings [B, D]; ``return_tokens`` adds patches [B, N, D].

        ``normalize`` (keyword only) L2-normalises the pooled embedding (for cosine similarity);
        False returns the raw projection. The default is True, as clipforge has always returned
        unit vectors; OpenCLIP's and Hugging Face's ``get_image_features`` default to raw
        projections. Kept True because normalising is idempotent: OpenCLIP code that normalises
        afterwards gets the same result, while a flipped default would silently turn existing
        clipforge users' cosines into dot products. Patch tokens are never normalised.
        """
        out = self.visual(images, return_tokens=return_tokens)
        if return_tokens:
            pooled, tokens = out
            return (F.normalize(pooled, dim=-1) if normalize else pooled), tokens
        return F.normalize(out, dim=-1) if normalize else out

    def encode_text(
        self, text: torch.Tensor, *, normalize: bool = True, return_tokens: bool = False
    ):
        """token ids [B, T] → embeddings [B, D]; with ``return_tokens`` also tokens and mask.

        ``normalize`` as in :meth:`encode_image` (default True: unit vectors).
        """
        out = self.text(text, return_tokens=return_tokens)
        if return_tokens:
            pooled, tokens, mask = out
            return (F.normalize(pooled, dim=-1) if normalize else pooled), tokens, mask
        return F.normalize(out, dim=-1) if normalize else out

    def scale(self) -> torch.Tensor:
        """exp(t). The forward clamp only caps a loaded t above the limit (HF checkpoints);
        training keeps t itself in range with :meth:`clamp_logit_scale`."""
        if self.config.logit_scale_max is None:
            return self.logit_scale.exp()
        return self.logit_scale.clamp(max=self.config.logit_scale_max).exp()

    @torch.no_grad()
    def clamp_logit_scale(self) -> None:
        """Clamp the parameter t in place to [0, logit_scale_max]; call after every optimizer step.

        A forward-only clamp has zero gradient above the cap, so a t that overshoots ln 100 could
        never come back; clamping the parameter itself (OpenAI CLIP, OpenCLIP's
        ``clamp_(0, math.log(100))``, ALIP) keeps it where the gradient flows. No-op when
        ``logit_scale_max`` is None (SigLIP: big_vision leaves t free).
        """
        if self.config.logit_scale_max is not None:
            self.logit_scale.clamp_(0.0, self.config.logit_scale_max)

    def forward(
        self, images: torch.Tensor, text: torch.Tensor, return_tokens: bool = False
    ) -> ModelOutput:
        if return_tokens:
            image_features, image_tokens = self.encode_image(
                images, normalize=False, return_tokens=True
            )
            text_features, text_tokens, mask = self.encode_text(
                text, normalize=False, return_tokens=True
            )
        else:
            image_features = self.encode_image(images, normalize=False)
            text_features = self.encode_text(text, normalize=False)
            image_tokens = text_tokens = mask = None
        return ModelOutput(
            F.normalize(image_features, dim=-1),
            F.normalize(text_features, dim=-1),
            self.scale(),
            self.logit_bias,
            image_tokens,
            text_tokens,
            mask,
            image_features,
            text_features,
        )

    def set_grad_checkpointing(self, enabled: bool = True) -> None:
        self.visual.transformer.grad_checkpointing = enabled
        self.text.transformer.grad_checkpointing = enabled

    @torch.no_grad()
    def init_weights(self) -> None:
        """Truncated-normal linears (std 0.02), zero biases; embeddings keep their own init."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        if isinstance(self.text, PretrainedTextTower):  # then restore its pretrained weights
            self.text.load_pretrained_weights()
