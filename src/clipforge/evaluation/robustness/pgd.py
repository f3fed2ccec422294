"""Projected gradient descent in the L∞ ball (Madry et al., *Towards Deep Learning Models
Resistant to Adversarial Attacks*, ICLR 2018), and the two losses it ascends on CLIP.

    δ₀ ~ U[−ε, ε] (random start) or 0
    δ_{t+1} = Π_{‖δ‖∞ ≤ ε, x+δ ∈ [0,1]} (δ_t + α · sign ∇_δ L(x + δ_t))

Defaults (``clipforge eval robustness``): 10 steps, α = ε/4, random start. The losses:

* zero-shot: L = CE(s · f(x+δ) W_classesᵀ, y) — the true class's cross-entropy over the class
  text embeddings W (the same classifier as :func:`..zeroshot.build_classifier`), s the model's
  logit scale;
* retrieval (image → text): L = −Σ_i ⟨f(x_i+δ_i), t̄_i⟩ with t̄_i the mean embedding of image
  i's own captions: the image is pushed away from them.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

Loss = Callable[[torch.Tensor], torch.Tensor]  # adversarial pixels [B, 3, S, S] → scalar


def project(pixels: torch.Tensor, delta: torch.Tensor, eps: float) -> torch.Tensor:
    """δ clipped to [−ε, ε] and so that x + δ stays in [0, 1]."""
    delta = delta.clamp(-eps, eps)
    return (pixels + delta).clamp(0.0, 1.0) - pixels


def pgd(
    loss: Loss,
    pixels: torch.Tensor,
    eps: float,
    step_size: float,
    steps: int,
    random_start: bool = True,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Adversarial pixels maximising ``loss`` (summed over the batch); ‖x_adv − x‖∞ ≤ ε."""
    pixels = pixels.detach()
    if random_start:
        noise = torch.rand(pixels.shape, generator=generator, device="cpu").to(pixels.device)
        delta = project(pixels, (2 * noise - 1) * eps, eps)
    else:
        delta = torch.zeros_like(pixels)
    for _ in range(steps):
        delta.requires_grad_(True)
        (grad,) = torch.autograd.grad(loss(pixels + delta), delta)
        delta = project(pixels, delta.detach() + step_size * grad.sign(), eps)
    return (pixels + delta).detach()


def zeroshot_loss(encoder, classifier: torch.Tensor, labels: torch.Tensor) -> Loss:
    """CE of the true class; ``classifier`` [C, D] normalised class embeddings, labels [B]."""

    def loss(adversarial: torch.Tensor) -> torch.Tensor:
        logits = encoder.logit_scale * encoder(adversarial) @ classifier.T  # [B, C]
        return F.cross_entropy(logits, labels, reduction="sum")

    return loss


def retrieval_loss(encoder, own_captions: torch.Tensor) -> Loss:
    """Minus the cosine to the mean of the image's own captions; own_captions [B, D]."""

    def loss(adversarial: torch.Tensor) -> torch.Tensor:
        return -(encoder(adversarial) * own_captions).sum()

    return loss
