"""CLIP🚀 against clip-rocket's CL2LLoss (facebookresearch/clip-rocket, losses.py), written out
independently: the clean pair on the model's head without smoothing, the augmented pair on the
second head at its own scale with label smoothing, (global + A·local)/(1 + A) per side."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import clipforge
from clipforge.data.batch import Batch
from clipforge.models import model_config
from clipforge.objectives.improved import ImprovedClipLoss


def tiny_model():
    config = model_config("tiny")
    config.embed_dim = 16
    config.vision.image_size = config.preprocess.image_size = 16
    config.vision.patch_size, config.vision.width, config.vision.layers = 8, 24, 1
    config.vision.heads = config.text.heads = 2
    config.text.width, config.text.layers = 20, 1
    config.text.context_length, config.text.vocab_size = 8, 50
    torch.manual_seed(0)
    return clipforge.create_model(config)


def batch_of(size=6):
    generator = torch.Generator().manual_seed(3)

    def ids():
        out = torch.randint(3, 50, (size, 8), generator=generator)
        out[:, 0], out[:, 6], out[:, 7] = 1, 2, 0
        return out

    return Batch(
        torch.randn(size, 3, 16, 16, generator=generator),
        ids(),
        [str(i) for i in range(size)],
        extras={
            "image_view2": torch.randn(size, 3, 16, 16, generator=generator),
            "text_view2": ids(),
        },
    )


def backbone(model, tower, encode, inputs):
    """Pooled backbone features: the tower's projection swapped for the identity."""
    projection = tower.proj
    tower.proj = nn.Identity()
    try:
        return encode(inputs, normalize=False)
    finally:
        tower.proj = projection


def reference_cl2l(
    z_image, z_text, h_image_local, h_text_local, logit_scale, h_logit_scale, smoothing, avg_or_sum
):
    """CL2LLoss.forward in one process (labels 0…B−1, nothing to gather)."""
    z_image, z_text = F.normalize(z_image), F.normalize(z_text)
    h_image_local = [F.normalize(h) for h in h_image_local]
    h_text_local = [F.normalize(h) for h in h_text_local]
    labels = torch.arange(len(z_image))
    global_image = F.cross_entropy(logit_scale * z_image @ z_text.t(), labels)
    global_text = F.cross_entropy(logit_scale * z_text @ z_image.t(), labels)
    augs = len(h_image_local)
    image_logits = [h_logit_scale * h @ t.t() for t in h_text_local for h in h_image_local]
    text_logits = [h_logit_scale * h @ i.t() for i in h_image_local for h in h_text_local]
    local_image = sum(
        F.cross_entropy(x, labels, label_smoothing=smoothing) for x in image_logits
    ) / len(image_logits)
    local_text = sum(
        F.cross_entropy(x, labels, label_smoothing=smoothing) for x in text_logits
    ) / len(text_logits)
    image_side = (global_image + local_image * augs) / (1 + augs)
    text_side = (global_text + local_text * augs) / (1 + augs)
    return ((image_side + text_side) / 2 * (2 if avg_or_sum == "sum" else 1)).item()


def setup_case(**kwargs):
    model, batch = tiny_model(), batch_of()
    objective = ImprovedClipLoss(head_hidden=32, **kwargs)
    objective.setup(model)
    with torch.no_grad():
        objective.head_logit_scale.fill_(math.log(7.0))
    return model, batch, objective


def reference_for(model, batch, objective, smoothing=0.1, avg_or_sum="sum"):
    with torch.no_grad():
        out = model(batch.images, batch.text)
        image_feats = backbone(model, model.visual, model.encode_image, batch.extras["image_view2"])
        text_feats = backbone(model, model.text, model.encode_text, batch.extras["text_view2"])
        return reference_cl2l(
            out.image_embeds,
            out.text_embeds,
            [objective.image_head(image_feats)],
            [objective.text_head(text_feats)],
            model.logit_scale.exp(),
            7.0,
            smoothing,
            avg_or_sum,
        )


@pytest.mark.parametrize("avg_or_sum", ["sum", "avg"])
def test_loss_matches_clip_rocket_cl2l(avg_or_sum):
    model, batch, objective = setup_case(loss_avg_or_sum=avg_or_sum)
    out = model(batch.images, batch.text)
    loss = objective(out, batch)["loss"]
    assert loss.item() == pytest.approx(
        reference_for(model, batch, objective, 0.1, avg_or_sum), rel=1e-5
    )
    loss.backward()
    assert objective.head_logit_scale.grad.abs() > 0
    assert all(p.grad is not None for p in objective.image_head.parameters())
    assert model.visual.patch_embed.weight.grad.abs().sum() > 0


def test_the_old_four_pair_formula_fails_the_check():
    model, batch, objective = setup_case()
    reference = reference_for(model, batch, objective)
    with torch.no_grad():
        out = model(batch.images, batch.text)
        views = {
            "i1": out.image_embeds,
            "t1": out.text_embeds,
            "i2": model.encode_image(batch.extras["image_view2"], normalize=True),
            "t2": model.encode_text(batch.extras["text_view2"], normalize=True),
        }
        scale, labels = model.logit_scale.exp(), torch.arange(6)

        def nce(i, t):
            logits = scale * views[i] @ views[t].T
            return (
                (
                    F.cross_entropy(logits, labels, label_smoothing=0.1)
                    + F.cross_entropy(logits.T, labels, label_smoothing=0.1)
                )
                / 2
            ).item()

        old = (nce("i1", "t1") + nce("i1", "t2") + nce("i2", "t1") + nce("i2", "t2")) / 4
    assert abs(old - reference) > 0.05 * reference


def test_clean_pair_alone_is_unsmoothed_clip_and_the_head_scale_is_clamped():
    model, batch, objective = setup_case(label_smoothing=0.5, loss_avg_or_sum="avg")
    with torch.no_grad():
        out = model(batch.images, batch.text)
        bare = Batch(batch.images, batch.text, batch.keys)
        logits = model.logit_scale.exp() * out.image_embeds @ out.text_embeds.T
        labels = torch.arange(6)
        clip = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
        assert objective(out, bare)["loss"].item() == pytest.approx(clip.item(), rel=1e-5)
    with torch.no_grad():
        objective.head_logit_scale.fill_(6.0)
    objective.after_step(model, 1)
    assert objective.head_logit_scale.item() == pytest.approx(math.log(100))
    with pytest.raises(ValueError, match="loss_avg_or_sum"):
        ImprovedClipLoss(loss_avg_or_sum="mean")
