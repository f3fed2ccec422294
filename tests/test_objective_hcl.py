"""HCL (Robinson et al., ICLR 2021) against the released ``criterion`` (github.com/joshr17/HCL,
``image/main.py``, ``estimator='hard'``), written out below for image–text rows.

Released, per anchor: ``neg = exp(sim / T)`` over the negatives, ``pos = exp(sim⁺ / T)``,
``imp = (beta * neg.log()).exp()``, ``reweight_neg = (imp * neg).sum() / imp.mean()``,
``Ng = (−tau_plus · N · pos + reweight_neg) / (1 − tau_plus)`` clamped below at ``N e^{−1/T}``,
``loss = −log(pos / (pos + Ng))``. For CLIP the anchor is an image (text), its positive its
caption (image) and its N = B − 1 negatives the other captions (images). clipforge puts β on the
temperature-free cosine (the paper's q_β); the released ``imp`` puts it on sim / T, so the
released β_code at T equals clipforge's β = β_code / T.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from clipforge.models.clip import ModelOutput
from clipforge.objectives import OBJECTIVES

T = 0.5  # the released default temperature


def case(seed=0, size=6, dim=4):
    generator = torch.Generator().manual_seed(seed)
    images = F.normalize(torch.randn(size, dim, generator=generator, dtype=torch.float64), dim=-1)
    texts = F.normalize(
        images + 0.8 * torch.randn(size, dim, generator=generator, dtype=torch.float64), dim=-1
    )
    return images, texts


def released_criterion_rows(anchors, others, temperature, beta_code, tau_plus):
    """The released hard estimator, one row per anchor, in the exp domain as written there."""
    losses = []
    size = len(anchors)
    for i in range(size):
        sims = anchors[i] @ others.T
        pos = torch.exp(sims[i] / temperature)
        neg = torch.exp(torch.cat([sims[:i], sims[i + 1 :]]) / temperature)
        n = size - 1
        imp = (beta_code * neg.log()).exp()
        reweight_neg = (imp * neg).sum(dim=-1) / imp.mean(dim=-1)
        ng = (-tau_plus * n * pos + reweight_neg) / (1 - tau_plus)
        ng = torch.clamp(ng, min=n * math.e ** (-1 / temperature))
        losses.append(-torch.log(pos / (pos + ng)))
    return torch.stack(losses).mean()


def released(images, texts, beta_code, tau_plus, temperature=T):
    return (
        released_criterion_rows(images, texts, temperature, beta_code, tau_plus)
        + released_criterion_rows(texts, images, temperature, beta_code, tau_plus)
    ) / 2


def clipforge_loss(images, texts, temperature=T, **options):
    outputs = ModelOutput(images.float(), texts.float(), torch.tensor(1 / temperature))
    return OBJECTIVES.get("hcl")(**options)(outputs, None)["loss"].item()


@pytest.mark.parametrize("beta_code,tau_plus", [(1.0, 0.1), (1.0, 0.0), (0.0, 0.0), (2.0, 0.1)])
def test_hcl_matches_the_released_criterion_number_for_number(beta_code, tau_plus):
    images, texts = case()
    expected = released(images, texts, beta_code, tau_plus).item()
    got = clipforge_loss(images, texts, beta=beta_code / T, tau_plus=tau_plus)
    assert got == pytest.approx(expected, rel=1e-5)


def test_hcl_with_beta_zero_is_plain_infonce():
    images, texts = case(seed=1)
    logits = images @ texts.T / T
    labels = torch.arange(len(images))
    plain = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
    assert clipforge_loss(images, texts, beta=0.0) == pytest.approx(plain.item(), rel=1e-5)


def test_hcl_debiasing_clamp_is_applied():
    """A large τ⁺ drives the debiased estimate below N e^{−1/T}: the released clamp holds it."""
    images, texts = case(seed=2)
    expected = released(images, texts, 1.0, 0.6).item()
    assert clipforge_loss(images, texts, beta=1.0 / T, tau_plus=0.6) == pytest.approx(
        expected, rel=1e-5
    )


def test_the_old_beta_on_logits_form_fails_the_reference_check():
    """clipforge before issue 18 weighted negatives by exp(β · s · cos) (β = 0.5 on the logits).
    At CLIP's scale s = 1/0.07 the reference with the paper's β = 1 on cosines (β_code = β · T)
    is a different loss; the old form only coincides with it at s = 2."""
    images, texts = case()
    clip_t = 0.07
    reference = released(images, texts, 1.0 * clip_t, 0.0, temperature=clip_t).item()
    assert clipforge_loss(images, texts, temperature=clip_t) == pytest.approx(reference, rel=1e-5)
    old = released(images, texts, 0.5, 0.0, temperature=clip_t).item()  # imp = exp(0.5 · s·c)
    assert abs(old - reference) > 0.05 * reference


def test_hcl_weights_are_not_detached_and_reach_both_towers():
    images, texts = (x.float().requires_grad_(True) for x in case())
    OBJECTIVES.get("hcl")()(ModelOutput(images, texts, torch.tensor(2.0)), None)["loss"].backward()
    assert images.grad.abs().sum() > 0 and texts.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="tau_plus"):
        OBJECTIVES.get("hcl")(tau_plus=1.0)
