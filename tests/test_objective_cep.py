"""CEP-CLIP (Chen et al. 2024): CLIP on text embeddings perturbed by Gaussian noise during
training only, against a hand-computed case."""

from __future__ import annotations

import math

import pytest
import torch

from clipforge.models.clip import ModelOutput
from clipforge.objectives.cep import CepClipLoss

from reference_math import dot, infonce_rows, transpose, unit

IMAGES3 = unit([[1.0, 0.2], [0.3, 1.0], [-1.0, 0.5]])
TEXTS3 = unit([[0.9, 0.4], [0.1, 1.0], [-0.8, -0.2]])


def outputs(images, texts, scale) -> ModelOutput:
    return ModelOutput(torch.tensor(images), torch.tensor(texts), torch.tensor(scale))


def test_cep_by_hand_and_only_in_training():
    images, texts = [[1.0, 0.0], [0.0, 1.0]], [[1.0, 0.0], [0.6, 0.8]]
    objective = CepClipLoss(gamma=0.5)
    torch.manual_seed(123)
    loss = objective.train()(outputs(images, texts, 2.0), None)["loss"].item()
    torch.manual_seed(123)
    noise = torch.randn(2, 2).tolist()
    perturbed = unit(
        [[t + 0.5 / math.sqrt(2) * n for t, n in zip(text, row)] for text, row in zip(texts, noise)]
    )
    logits = [[2 * dot(i, t) for t in perturbed] for i in images]
    expected = (infonce_rows(logits) + infonce_rows(transpose(logits))) / 2
    assert loss == pytest.approx(expected, rel=1e-5)
    # eval mode: plain CLIP (same numbers as test_objective_clip_siglip's hand case)
    logits = [[2 * dot(i, t) for t in texts] for i in images]
    plain = (infonce_rows(logits) + infonce_rows(transpose(logits))) / 2
    assert objective.eval()(outputs(images, texts, 2.0), None)["loss"].item() == pytest.approx(
        plain, rel=1e-6
    )


def test_cep_gradients_flow():
    for objective in (CepClipLoss().train(),):
        images = torch.tensor(IMAGES3, requires_grad=True)
        texts = torch.tensor(TEXTS3, requires_grad=True)
        objective(ModelOutput(images, texts, torch.tensor(3.0)), None)["loss"].backward()
        assert images.grad.abs().sum() > 0 and texts.grad.abs().sum() > 0
