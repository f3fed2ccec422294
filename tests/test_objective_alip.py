"""ALIP (Yang et al. 2023): raw and synthetic captions weighted by sample and pair gates built
from running mean similarities, against a hand-computed case."""

from __future__ import annotations

import math

import pytest
import torch

from clipforge.data.batch import Batch
from clipforge.models.clip import ModelOutput
from clipforge.objectives.alip import AlipLoss

from reference_math import ce, dot, t


class StubModel:
    """Returns fixed embeddings for the extra encodes an objective makes."""

    def __init__(self, image=None, text=None):
        self.image, self.text = image, text

    def encode_image(self, images, normalize=False):  # the fixed embeddings, as given
        return self.image

    def encode_text(self, ids, normalize=False):
        return self.text


def stub_batch(size=2, **extras) -> Batch:
    return Batch(
        torch.zeros(size, 3, 2, 2),
        torch.zeros(size, 2, dtype=torch.long),
        [str(i) for i in range(size)],
        extras=extras,
    )


def test_alip_gates_and_loss_by_hand():
    images, raw, synthetic, scale = (
        [[1.0, 0.0], [0.0, 1.0]],
        [[1.0, 0.0], [0.6, 0.8]],
        [[0.6, 0.8], [0.6, 0.8]],
        2.0,
    )
    m_tc = 0.99 + 0.01 * (0.6 + 1.0) / 2  # running means start at 1
    m_it = 0.99 + 0.01 * (1.0 + 0.8) / 2
    m_ic = 0.99 + 0.01 * (0.6 + 0.8) / 2
    # sample 0: s_TC = 0.6 < m_TC → gated; sample 1: s_TC = 1 ≥ m_TC → all weights 1
    w_sample = [math.exp(0.6 - m_tc) ** 2, 1.0]
    w_raw = [math.exp(1.0 - m_it) ** 2, 1.0]
    w_cap = [math.exp(0.6 - m_ic) ** 2, 1.0]

    def per_sample(texts):
        logits = [[scale * dot(i, x) for x in texts] for i in images]
        return [(ce(logits[k], k) + ce([logits[0][k], logits[1][k]], k)) / 2 for k in range(2)]

    raw_terms, cap_terms = per_sample(raw), per_sample(synthetic)
    expected = (
        sum(w_sample[k] * w_raw[k] * raw_terms[k] for k in range(2)) / 2
        + sum(w_sample[k] * w_cap[k] * cap_terms[k] for k in range(2)) / 2
    )

    objective = AlipLoss()
    objective.setup(StubModel(text=t(synthetic)))
    batch = stub_batch(alt_text=torch.zeros(2, 2), alt_text_present=torch.tensor([True, True]))
    terms = objective(ModelOutput(t(images), t(raw), t(scale)), batch)
    assert terms["loss"].item() == pytest.approx(expected, rel=1e-5)
    assert objective.mean_text_caption.item() == pytest.approx(m_tc)
    assert objective.mean_image_caption.item() == pytest.approx(m_ic)
    assert set(objective.state_dict()) == {
        "mean_text_caption",
        "mean_image_text",
        "mean_image_caption",
    }


def test_alip_ignores_missing_synthetic_captions():
    objective = AlipLoss()
    objective.setup(StubModel(text=t([[0.6, 0.8], [0.0, 1.0]])))
    batch = stub_batch(alt_text=torch.zeros(2, 2), alt_text_present=torch.tensor([True, False]))
    outputs = ModelOutput(t([[1.0, 0.0], [0.0, 1.0]]), t([[1.0, 0.0], [0.6, 0.8]]), t(2.0))
    objective(outputs, batch)
    # only sample 0 enters the running means: s_TC = 0.6, s_IC = 0.6
    assert objective.mean_text_caption.item() == pytest.approx(0.99 + 0.01 * 0.6)
    assert objective.mean_image_caption.item() == pytest.approx(0.99 + 0.01 * 0.6)
    _, _, w_cap = objective.gate_weights(
        outputs.image_embeds,
        outputs.text_embeds,
        t([[0.6, 0.8], [0.0, 1.0]]),
        torch.tensor([True, False]),
    )
    assert w_cap[1].item() == 0.0
