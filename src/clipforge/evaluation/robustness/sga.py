"""Set-level guidance attack, image side (Lu et al., *Set-level Guidance Attack: Boosting
Adversarial Transferability of Vision-Language Pre-training Models*, ICCV 2023).

The image perturbation is computed on a *surrogate* model and transferred to the target. SGA's
set-level alignment-guided image perturbation with scale-invariant augmentation (their Eq. 4):

    x' = argmax_{‖x' − x‖∞ ≤ ε}  − Σ_{i=1}^{M} Σ_{s ∈ S}
         ⟨ f_T(t_i) / ‖f_T(t_i)‖ , f_I(g(x', s)) / ‖f_I(g(x', s))‖ ⟩

with {t_i} the image's caption set (M captions), g(·, s) resizing by factor s and S the scale set
plus the original scale (paper: {0.5, 0.75, 1.25, 1.5}), solved by PGD (:func:`.pgd.pgd`). Both
sets are what makes it transfer: the image is pushed away from every phrasing of its content and
at every scale, not from one caption at one scale (which over-fits the surrogate).

Simplified here: the text side (adversarial captions by BERT-Attack word substitution, used in
the paper both to guide the image step and as the transferred text) is left out, so the caption
set is the clean captions — or, for a labelled image with no captions, its class's prompts (one
per template), an augmented caption set in the paper's sense. The rescaled copies are resized
back to the surrogate's input size (a ViT takes one size), so a scale < 1 acts as a blur and > 1
as a zoomed crop-free resample.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .pgd import Loss


def rescaled(pixels: torch.Tensor, scale: float) -> torch.Tensor:
    """g(x, s): bilinear resize of [B, 3, S, S] to round(s·S) (differentiable)."""
    size = max(1, round(pixels.shape[-1] * scale))
    return F.interpolate(pixels, size=(size, size), mode="bilinear", align_corners=False)


def sga_loss(
    encoder, caption_sets: torch.Tensor, caption_mask: torch.Tensor, scales: tuple[float, ...]
) -> Loss:
    """The loss of Eq. 4 to ascend. caption_sets [B, M, D] normalised surrogate text embeddings,
    caption_mask [B, M] True for a real caption (images have different numbers of captions)."""
    guide = (caption_sets * caption_mask[..., None]).sum(dim=1)  # Σ_i t_i  [B, D]

    def loss(adversarial: torch.Tensor) -> torch.Tensor:
        views = [adversarial] + [rescaled(adversarial, scale) for scale in scales]
        image_sum = sum(encoder(view) for view in views)  # Σ_s f_I(g(x', s))  [B, D]
        return -(image_sum * guide).sum()

    return loss
