"""LightCLIP (Nie et al. 2023): progressively softened image–text targets plus a word–patch
term, against hand-computed cases. Its word-only token term is checked with FILIP's
(test_objective_filip.py)."""

from __future__ import annotations

import math

import pytest
import torch

from clipforge.models.clip import ModelOutput
from clipforge.objectives.lightclip import LightClipLoss, soft_targets

from reference_math import dot, nce, soft_ce, t


def test_lightclip_loss_by_hand_and_progressive_softening():
    images, texts, scale = [[1.0, 0.0], [0.0, 1.0]], [[1.0, 0.0], [0.6, 0.8]], 2.0
    outputs = ModelOutput(
        t(images),
        t(texts),
        t(scale),
        image_tokens=t([[v] for v in images]),
        text_tokens=t([[v] for v in texts]),
        text_token_mask=torch.ones(2, 1).bool(),
    )
    objective = LightClipLoss(
        smoothing_start=0.0, smoothing_end=0.1, ramp_steps=1000, token_weight=0.5
    )
    objective.after_step(None, 500)
    assert objective.smoothing().item() == pytest.approx(0.05)
    eps = 0.05
    logits = [[scale * dot(a, b) for b in texts] for a in images]
    rows = (soft_ce(logits[0], [1 - eps, eps]) + soft_ce(logits[1], [eps, 1 - eps])) / 2
    cols = (
        soft_ce([logits[0][0], logits[1][0]], [1 - eps, eps])
        + soft_ce([logits[0][1], logits[1][1]], [eps, 1 - eps])
    ) / 2
    token = nce(images, texts, scale)  # one patch and one word each: S^T = I·Tᵀ
    terms = objective(outputs, None)
    assert terms["loss"].item() == pytest.approx((rows + cols) / 2 + 0.5 * token, rel=1e-6)
    objective.after_step(None, 5000)
    assert objective.smoothing().item() == pytest.approx(0.1)
    assert objective.state_dict()["step"].item() == 5000  # saved, so a resume continues


def test_lightclip_similarity_weighted_negatives_by_hand():
    logits = [[3.0, 1.0, 2.0], [0.0, 1.0, 0.0], [1.0, 1.0, 1.0]]
    targets = soft_targets(t(logits), 0.2, "similarity")
    e = math.exp
    expected = [
        [0.8, 0.2 * e(1) / (e(1) + e(2)), 0.2 * e(2) / (e(1) + e(2))],
        [0.1, 0.8, 0.1],
        [0.1, 0.1, 0.8],
    ]
    assert torch.allclose(targets, t(expected))
    assert torch.allclose(
        soft_targets(t(logits), 0.2, "uniform"),
        t([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8]]),
    )
