"""A universal adversarial perturbation: one δ for every image.

After "One Perturbation is Enough: On Generating Universal Adversarial Perturbations against
Vision-Language Pre-training Models" (Fang et al., 2024) and Moosavi-Dezfooli et al. (CVPR 2017):
a single δ with ‖δ‖∞ ≤ ε is *trained* on one split by sign-gradient ascent over mini-batches,

    δ ← Π_ε(δ + α · sign Σ_{i ∈ batch} ∇_δ L(clip(x_i + δ, 0, 1))),

for ``epochs`` passes (α = ε/4 by default), then *tested*, frozen, on another split. L is the
zero-shot cross-entropy of the true class when the training split has labels, else minus the
cosine of each image to its own captions (:mod:`.pgd`). The paper trains a generator network
(and attacks text too); here δ itself is the parameter — the classic UAP form — which is what
"one perturbation" needs to transfer across images.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import torch

from ...common.files import atomic_write_bytes
from .pgd import Loss

FORMAT = "clipforge-uap-1"


def train_uap(
    batches: Callable[[], Iterable[tuple[torch.Tensor, Loss]]],
    shape: tuple[int, ...],
    eps: float,
    step_size: float,
    epochs: int,
    device,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """δ [3, S, S] from ``epochs`` passes over ``batches()``: (pixels, loss of adversarial
    pixels) pairs."""
    noise = torch.rand(shape, generator=generator)
    delta = ((2 * noise - 1) * eps).to(device)
    for _ in range(epochs):
        for pixels, loss in batches():
            delta.requires_grad_(True)
            adversarial = (pixels + delta).clamp(0.0, 1.0)
            (grad,) = torch.autograd.grad(loss(adversarial), delta)
            delta = (delta.detach() + step_size * grad.sign()).clamp(-eps, eps)
    return delta.detach()


def apply_uap(pixels: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    return (pixels + delta.to(pixels.device)).clamp(0.0, 1.0)


def save_perturbation(path: Path, deltas: dict[float, torch.Tensor], meta: dict) -> Path:
    """``{"format", "eps": [...], "delta": [E, 3, S, S], **meta}`` as a torch file, atomically."""
    import io

    eps = sorted(deltas)
    buffer = io.BytesIO()
    torch.save(
        {
            "format": FORMAT,
            "eps": eps,
            "delta": torch.stack([deltas[e].cpu() for e in eps]),
            **meta,
        },
        buffer,
    )
    return atomic_write_bytes(path, buffer.getvalue())


def load_perturbation(path: Path, size: int) -> dict[float, torch.Tensor]:
    """The δ per ε saved by :func:`save_perturbation`, checked against the model's image size."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: no such perturbation file")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many kinds on a bad file
        raise ValueError(f"{path}: not a clipforge perturbation file ({error})") from None
    if not isinstance(saved, dict) or saved.get("format") != FORMAT:
        raise ValueError(f"{path}: not a clipforge perturbation file (format {FORMAT})")
    delta = saved["delta"]
    if tuple(delta.shape[1:]) != (3, size, size):
        raise ValueError(
            f"{path}: perturbation is {tuple(delta.shape[1:])}, the model takes (3, {size}, {size})"
        )
    return {float(e): d for e, d in zip(saved["eps"], delta)}
