"""DreamLIP against the released loss (zyf0619sjtu/DreamLIP, open_clip/loss.py: ClipLoss with
use_declip_loss and use_finegrained_loss), written out independently below."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from clipforge.data.batch import Batch
from clipforge.models.clip import ModelOutput
from clipforge.objectives.dreamlip import DreamLipLoss

from tiny_clip import real_batch, tiny_model

B, K, N, D = 3, 2, 4, 5


def released_itc(images, texts, scale):
    """CLIP_loss + (De)CLIP_loss: per caption slot, CE both ways / (2·n), summed over slots."""
    n = texts.shape[1]
    labels = torch.arange(images.shape[0])
    total = 0.0
    for slot in range(n):
        logits_per_image = scale * images @ texts[:, slot].T
        logits_per_text = scale * texts[:, slot] @ images.T
        total += (
            F.cross_entropy(logits_per_image, labels) + F.cross_entropy(logits_per_text, labels)
        ).item() / (2 * n)
    return total


def released_grouping(texts, patches, scale_local, delta):
    """finegrained_loss on texts [B, n, D] and patches [B, N, D]: min-max weights over an image's
    normalised patches, threshold, weighted sum, pairwise_contrastive_loss over all B·n rows."""
    patches, texts = F.normalize(patches, dim=-1), F.normalize(texts, dim=-1)
    similarity = torch.einsum("btd,bpd->btp", texts, patches)
    low, high = similarity.min(-1, keepdim=True).values, similarity.max(-1, keepdim=True).values
    normalised = (similarity - low) / (high - low + 1e-10)
    threshold = 1.0 / patches.shape[1] if delta < 0 else delta
    normalised = torch.where(normalised < threshold, torch.tensor(0.0), normalised)
    weights = normalised / normalised.sum(-1, keepdim=True)
    grouped = F.normalize(torch.einsum("btp,bpd->btd", weights, patches), dim=-1)
    flat_text, flat_group = texts.reshape(-1, D), grouped.reshape(-1, D)
    labels = torch.eye(len(flat_text))
    logits_per_image = scale_local * flat_group @ flat_text.T
    logits_per_text = scale_local * flat_text @ flat_group.T
    return (
        0.5
        * (
            F.cross_entropy(logits_per_text, labels) + F.cross_entropy(logits_per_image, labels)
        ).item()
    )


def old_loss(images, captions, subs, patches, scale, threshold=None):
    """clipforge before the fix: multi-positive NCE over sub-captions + grouping of raw patches at
    the model's scale (with clip's whole-caption term added by the config)."""
    flat = subs.reshape(-1, D)
    owners = torch.arange(B).repeat_interleave(K)
    logits = scale * images @ flat.T
    targets = (owners[None] == torch.arange(B)[:, None]).float() / K
    multi = (
        -(targets * logits.log_softmax(1)).sum(1).mean() + F.cross_entropy(logits.T, owners)
    ) / 2
    own = patches[owners]
    sim = torch.einsum("mnd,md->mn", F.normalize(own, dim=-1), flat)
    low, high = sim.amin(1, keepdim=True), sim.amax(1, keepdim=True)
    scaled = (sim - low) / (high - low)
    weights = torch.where(scaled >= 1 / N, scaled, torch.zeros_like(scaled))
    weights = weights / weights.sum(1, keepdim=True)
    grouped = F.normalize(torch.einsum("mn,mnd->md", weights, own), dim=-1)
    g_logits = scale * grouped @ flat.T
    labels = torch.arange(len(flat))
    grouping = (F.cross_entropy(g_logits, labels) + F.cross_entropy(g_logits.T, labels)) / 2
    clip_term = (
        F.cross_entropy(scale * images @ captions.T, torch.arange(B))
        + F.cross_entropy(scale * captions @ images.T, torch.arange(B))
    ) / 2
    return (clip_term + multi + grouping).item()


class TableModel:
    """encode_text returns the embedding whose index is the first token id."""

    def __init__(self, table):
        self.table = table

    def encode_text(self, ids, normalize=False):  # the table's rows, as given
        return self.table[ids[:, 0]]


def case(seed=0):
    generator = torch.Generator().manual_seed(seed)
    images = F.normalize(torch.randn(B, D, generator=generator), dim=-1)
    captions = F.normalize(torch.randn(B, D, generator=generator), dim=-1)
    subs = F.normalize(torch.randn(B, K, D, generator=generator), dim=-1)
    patches = torch.randn(B, N, D, generator=generator) * 3
    ids = torch.arange(B * K).reshape(B, K, 1).repeat(1, 1, 2)
    batch = Batch(
        torch.zeros(B, 3, 2, 2),
        torch.zeros(B, 2, dtype=torch.long),
        [str(i) for i in range(B)],
        extras={"sub_captions": ids},
    )
    outputs = ModelOutput(
        images,
        captions,
        torch.tensor(4.0),
        image_tokens=patches,
        text_tokens=torch.zeros(B, 2, D),
        text_token_mask=torch.ones(B, 2).bool(),
    )
    return images, captions, subs, patches, batch, outputs


def objective_for(subs, **kwargs):
    objective = DreamLipLoss(**kwargs)
    objective.setup(TableModel(subs.reshape(-1, D)))
    return objective


@pytest.mark.parametrize("delta", [0.0, 0.3, -1.0])
def test_loss_matches_the_released_composition(delta):
    images, captions, subs, patches, batch, outputs = case()
    objective = objective_for(subs, threshold=delta)
    with torch.no_grad():
        objective.logit_scale_local.fill_(math.log(7.0))
    terms = objective(outputs, batch)
    texts = torch.cat([captions[:, None], subs], dim=1)  # caption 0 = raw
    itc, grouping = released_itc(images, texts, 4.0), released_grouping(texts, patches, 7.0, delta)
    assert terms["itc"].item() == pytest.approx(itc, rel=1e-5)
    assert terms["grouping"].item() == pytest.approx(grouping, rel=1e-5)
    assert terms["loss"].item() == pytest.approx(itc + grouping, rel=1e-5)


def test_the_old_formula_fails_the_released_check():
    images, captions, subs, patches, batch, outputs = case()
    texts = torch.cat([captions[:, None], subs], dim=1)
    reference = released_itc(images, texts, 4.0) + released_grouping(texts, patches, 1 / 0.07, 0.0)
    assert objective_for(subs)(outputs, batch)["loss"].item() == pytest.approx(reference, rel=1e-5)
    old = old_loss(images, captions, subs, patches, 4.0)
    assert abs(old - reference) > 0.05 * reference


def test_masked_slots_leave_their_terms_and_the_local_scale_is_learned_and_clamped():
    images, captions, subs, _, batch, outputs = case()
    batch.extras["sub_caption_mask"] = torch.tensor([[True, False], [True, False], [True, False]])
    objective = objective_for(subs)
    terms = objective(outputs, batch)
    texts = torch.cat([captions[:, None], subs[:, :1]], dim=1)  # slot 2 is empty
    assert terms["itc"].item() == pytest.approx(released_itc(images, texts, 4.0), rel=1e-5)
    terms["loss"].backward()
    assert objective.logit_scale_local.grad.abs() > 0
    with torch.no_grad():
        objective.logit_scale_local.fill_(9.0)
    objective.after_step(None, 1)
    assert objective.logit_scale_local.item() == pytest.approx(math.log(100))


def test_needs_its_extras():
    _, _, subs, _, batch, outputs = case()
    with pytest.raises(ValueError, match="sub_captions"):
        objective_for(subs)(outputs, Batch(batch.images, batch.text, batch.keys))


# -- on a real (tiny) model ------------------------------------------------------------------


def test_dreamlip_ignores_masked_sub_captions():
    model, batch = tiny_model(), real_batch()
    objective = DreamLipLoss()
    objective.setup(model)
    outputs = model(batch.images, batch.text, return_tokens=True)
    before = objective(outputs, batch)["loss"].item()
    batch.extras["sub_captions"][:, 2] = 7  # slot 2 is masked everywhere
    assert objective(outputs, batch)["loss"].item() == pytest.approx(before, rel=1e-6)
