"""Invariance to viewpoint and augmentation, Omniview-Tuning style (Ruan et al., *Omniview-Tuning:
Boosting Viewpoint Invariance of Vision-Language Pre-training Models*, ECCV 2024).

Each image x is shown in fixed, deterministic views v(x) — a 2-D stand-in for their 3-D viewpoint
changes — and the model is scored on how little it cares:

* ``views_consistency`` — mean over images and views of cos(f(v(x)), f(x));
* ``views_prediction_agreement`` — fraction of (image, view) whose zero-shot top-1 class is the
  one predicted for x itself (labelled data only);
* ``clean_acc1`` — zero-shot top-1 accuracy on the original images (the reference for the
  per-view accuracies);
* per view ``views_consistency_<view>``, ``views_prediction_agreement_<view>`` and
  ``views_acc1_<view>``.

Views (pixels in [0, 1], [B, 3, S, S] → same shape; white fill as the eval transform's
background): ``rotation`` 15°, ``perspective`` the top edge narrowed by 20 % (a tilt away from the
viewer), ``crop`` the central 75 % zoomed to full size, ``flip`` horizontal, ``colour`` brightness
×1.2, contrast ×0.8 and saturation ×0.5.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

View = Callable[[torch.Tensor], torch.Tensor]


def _sample(pixels: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """Resample with a [B, S, S, 2] grid in [−1, 1]; outside → white."""
    shifted = F.grid_sample(pixels - 1.0, grid, mode="bilinear", align_corners=False)
    return (shifted + 1.0).clamp(0.0, 1.0)  # zero padding of (x − 1) is white


def rotation(pixels: torch.Tensor, degrees: float = 15.0) -> torch.Tensor:
    angle = math.radians(degrees)
    theta = torch.tensor(
        [[math.cos(angle), -math.sin(angle), 0.0], [math.sin(angle), math.cos(angle), 0.0]],
        device=pixels.device,
    )
    grid = F.affine_grid(theta.expand(len(pixels), 2, 3), list(pixels.shape), align_corners=False)
    return _sample(pixels, grid)


def perspective(pixels: torch.Tensor, narrow: float = 0.2) -> torch.Tensor:
    """A keystone (trapezoid) warp: each output row samples a span that widens linearly towards
    the top, by ``narrow`` there, so the top of the picture shrinks like a plane tilted away."""
    size = pixels.shape[-1]
    ys, xs = torch.meshgrid(
        torch.linspace(-1, 1, size, device=pixels.device),
        torch.linspace(-1, 1, size, device=pixels.device),
        indexing="ij",
    )
    widen = 1.0 + narrow * (1.0 - ys) / 2.0
    grid = torch.stack([xs * widen, ys], dim=-1)
    return _sample(pixels, grid.expand(len(pixels), size, size, 2))


def crop(pixels: torch.Tensor, keep: float = 0.75) -> torch.Tensor:
    size = pixels.shape[-1]
    side = max(1, round(size * keep))
    start = (size - side) // 2
    centre = pixels[..., start : start + side, start : start + side]
    return F.interpolate(centre, size=(size, size), mode="bilinear", align_corners=False)


def flip(pixels: torch.Tensor) -> torch.Tensor:
    return pixels.flip(-1)


def colour(pixels: torch.Tensor) -> torch.Tensor:
    bright = pixels * 1.2
    mean = bright.mean(dim=(1, 2, 3), keepdim=True)
    contrast = (bright - mean) * 0.8 + mean
    grey = contrast * torch.tensor([0.299, 0.587, 0.114], device=pixels.device).view(1, 3, 1, 1)
    grey = grey.sum(dim=1, keepdim=True)
    return ((contrast - grey) * 0.5 + grey).clamp(0.0, 1.0)


VIEW_FUNCTIONS: dict[str, View] = {
    "rotation": rotation,
    "perspective": perspective,
    "crop": crop,
    "flip": flip,
    "colour": colour,
}


class ViewScores:
    """Running sums of cos(f(v(x)), f(x)), prediction agreement and accuracy per view."""

    def __init__(self, views: dict[str, View]):
        self.views = views
        self.cosine = dict.fromkeys(views, 0.0)
        self.agree = dict.fromkeys(views, 0)
        self.correct = dict.fromkeys(views, 0)
        self.images = 0
        self.labelled = 0
        self.correct_original = 0

    @torch.no_grad()
    def add(self, encoder, pixels, classifier=None, labels=None) -> None:
        """One batch; ``classifier`` [C, D] and ``labels`` [B] (−1: none) for the predictions."""
        original = encoder(pixels)  # [B, D]
        has_label = labels is not None and classifier is not None
        if has_label:
            known = labels >= 0
            base = (original @ classifier.T).argmax(dim=-1)
            self.correct_original += int((base == labels)[known].sum())
        for name, view in self.views.items():
            embeds = encoder(view(pixels))
            self.cosine[name] += float((embeds * original).sum())
            if has_label:
                predicted = (embeds @ classifier.T).argmax(dim=-1)
                self.agree[name] += int((predicted == base)[known].sum())
                self.correct[name] += int((predicted == labels)[known].sum())
        self.images += len(pixels)
        if has_label:
            self.labelled += int(known.sum())

    def metrics(self) -> dict[str, float]:
        names = list(self.views)
        out = {"views_consistency": sum(self.cosine.values()) / (self.images * len(names))}
        if self.labelled:
            out["clean_acc1"] = self.correct_original / self.labelled
            out["views_prediction_agreement"] = sum(self.agree.values()) / (
                self.labelled * len(names)
            )
        for name in names:
            out[f"views_consistency_{name}"] = self.cosine[name] / self.images
            if self.labelled:
                out[f"views_prediction_agreement_{name}"] = self.agree[name] / self.labelled
                out[f"views_acc1_{name}"] = self.correct[name] / self.labelled
        return out
