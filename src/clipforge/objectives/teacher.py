"""Frozen teacher models for distillation objectives (``distill``, ``hycd``).

A teacher is kept on the objective WITHOUT registering it as a submodule
(``object.__setattr__``), so its weights are neither trained, nor saved in checkpoints, nor
wrapped by DDP. It is moved to the student's device on first use.

Teachers may differ from the student in tokenizer and image preprocessing:

- text: the batch's raw captions (``Batch.captions``) are re-tokenised with the teacher's tokenizer;
- images: the student's normalised tensors are un-normalised with the student's mean/std,
  resized with ``F.interpolate`` (bicubic, antialiased) when the teacher's input size differs, and
  re-normalised with the teacher's mean/std. The crop is the student's (re-decoding images for
  the teacher would need a second data pipeline); teachers trained at another crop or aspect
  policy see slightly different framing than they were trained with.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from ..data.batch import Batch
from ..data.tokenizer import Tokenizer
from ..models.clip import CLIP
from ..models.config import PreprocessConfig


def pair_logits(
    image_embeds: torch.Tensor, text_embeds: torch.Tensor, scale: torch.Tensor | float
) -> torch.Tensor:
    """Image→text logits ``scale · I Tᵀ``, [B_i, B_t]."""
    return scale * image_embeds @ text_embeds.T


@dataclass
class Teacher:
    model: CLIP
    tokenizer: Tokenizer | None

    def to(self, device: torch.device) -> Teacher:
        if self.model.logit_scale.device != device:
            self.model.to(device)
        return self

    @torch.no_grad()
    def logits(
        self,
        batch: Batch,
        student_preprocess: PreprocessConfig,
        device: torch.device,
        use_logit_scale: bool,
        normalize: bool = True,
    ) -> torch.Tensor:
        """The teacher's image→text logits for ``batch``, [B, B]: captions re-tokenised with its
        tokenizer (the batch's own ids when it has none), images adapted to its preprocessing.
        ``normalize=False`` scores the projector outputs before the L2 norm (CLIP-Refine)."""
        self.to(device)
        text = batch.text if self.tokenizer is None else self.tokenizer(batch.captions)
        images = adapt_images(batch.images, student_preprocess, self.model.config.preprocess)
        image_embeds = self.model.encode_image(images.to(device), normalize=normalize).float()
        text_embeds = self.model.encode_text(text.to(device), normalize=normalize).float()
        return pair_logits(
            image_embeds, text_embeds, self.model.scale().float() if use_logit_scale else 1.0
        )


def freeze_teacher(model: CLIP) -> CLIP:
    model.eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model


def load_teacher(path: str | Path) -> Teacher:
    """A frozen, eval-mode teacher from any model ``clipforge.load`` accepts."""
    from ..loading import load

    model, _, tokenizer = load(path)
    return Teacher(freeze_teacher(model), tokenizer)


def frozen_copy(model: CLIP) -> CLIP:
    """A frozen snapshot of ``model`` as it is now (CLIP-Refine's teacher = the start model)."""
    return freeze_teacher(copy.deepcopy(model))


def adapt_images(
    images: torch.Tensor, source: PreprocessConfig, target: PreprocessConfig
) -> torch.Tensor:
    """Re-express images [B, 3, H, W] normalised for ``source`` as the ``target`` model expects."""
    same_norm = tuple(source.mean) == tuple(target.mean) and tuple(source.std) == tuple(target.std)
    same_size = images.shape[-1] == target.image_size and images.shape[-2] == target.image_size
    if same_norm and same_size:
        return images

    def column(values) -> torch.Tensor:
        return torch.tensor(values, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)

    pixels = images * column(source.std) + column(source.mean)  # back to [0, 1]
    if not same_size:
        pixels = F.interpolate(
            pixels,
            size=(target.image_size, target.image_size),
            mode="bicubic",
            align_corners=False,
            antialias=True,
        ).clamp(0, 1)
    return (pixels - column(target.mean)) / column(target.std)
