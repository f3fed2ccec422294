"""Condition-embedding perturbation (CEP) on top of CLIP's InfoNCE.

Chen et al., "Slight Corruption in Pre-training Data Makes Better Diffusion Models", NeurIPS 2024.
They show that slightly corrupted conditions help generalisation and propose CEP: add small
Gaussian noise to the condition (text) embedding during training only. Here the perturbed text
embeddings feed CLIP's contrastive loss, so the image tower must match a small neighbourhood of
each caption rather than a single point::

    T̃ = normalize( T + (γ / √D) · ε ),   ε ~ N(0, I_D)       # training mode only
    logits = s · I T̃ᵀ;   L = ½ [ CE(logits, diag) + CE(logitsᵀ, diag) ]

With unit-norm T, each coordinate is O(1/√D), so γ/√D noise has norm ≈ γ: γ is the relative size
of the corruption. Defaults: γ = 0.05, text only (``modalities=("text",)``; add ``"image"`` to
perturb both), ``distribution="gaussian"`` (``"uniform"`` draws ε ~ U(−√3, √3), unit variance,
the paper's other variant). In eval mode it is plain CLIP InfoNCE.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..data.batch import Batch
from ..models.clip import ModelOutput
from .base import Objective
from .clip import clip_logits


def perturb_embeddings(
    embeds: torch.Tensor,
    gamma: float,
    distribution: str = "gaussian",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """normalize(x + γ/√D · ε) for x [B, D]."""
    if distribution == "gaussian":
        noise = torch.randn(
            embeds.shape, generator=generator, device=embeds.device, dtype=embeds.dtype
        )
    elif distribution == "uniform":
        noise = (
            torch.rand(embeds.shape, generator=generator, device=embeds.device, dtype=embeds.dtype)
            * 2
            - 1
        ) * math.sqrt(3.0)
    else:
        raise ValueError(f"unknown CEP noise {distribution!r}; expected 'gaussian' or 'uniform'")
    return F.normalize(embeds + gamma / math.sqrt(embeds.shape[-1]) * noise, dim=-1)


class CepClipLoss(Objective):
    name = "cep"

    def __init__(
        self,
        gamma: float = 0.05,
        modalities: tuple[str, ...] | list[str] = ("text",),
        distribution: str = "gaussian",
        label_smoothing: float = 0.0,
    ):
        super().__init__()
        unknown = set(modalities) - {"text", "image"}
        if unknown:
            raise ValueError(f"cep modalities must be 'text' and/or 'image', got {sorted(unknown)}")
        if distribution not in ("gaussian", "uniform"):
            raise ValueError(
                f"unknown CEP noise {distribution!r}; expected 'gaussian' or 'uniform'"
            )
        self.gamma = gamma
        self.modalities = tuple(modalities)
        self.distribution = distribution
        self.label_smoothing = label_smoothing

    def forward(self, outputs: ModelOutput, batch: Batch) -> dict[str, torch.Tensor]:
        images, texts = outputs.image_embeds.float(), outputs.text_embeds.float()
        if self.training and self.gamma > 0:
            if "text" in self.modalities:
                texts = perturb_embeddings(texts, self.gamma, self.distribution)
            if "image" in self.modalities:
                images = perturb_embeddings(images, self.gamma, self.distribution)
        per_image, per_text, labels = clip_logits(images, texts, outputs.logit_scale.float())
        loss = (
            F.cross_entropy(per_image, labels, label_smoothing=self.label_smoothing)
            + F.cross_entropy(per_text, labels, label_smoothing=self.label_smoothing)
        ) / 2
        return {"loss": loss}
