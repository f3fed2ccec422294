"""TCL against the released code's contrastive loss (uta-smile/TCL, models/model_pretrain.py).

The reference below is the code's ``loss_ita`` written out independently: ALBEF momentum-distilled
cross-modal terms, intra-modal terms against the momentum bank, and ``in_batch_g2l_loss`` (each
global against its own locals vs the other samples' locals), over plain loops where that is clearer.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import clipforge
from clipforge.data.batch import Batch
from clipforge.models import model_config
from clipforge.objectives.tcl import (
    TripleContrastiveLoss,
    in_batch_local_global,
    pool_patches,
    word_mask,
)


def reference_g2l(locals_, globals_, temp, mask=None):
    """The code's in_batch_g2l_loss: −log p(own global) of each real local, mean per sample,
    then over samples."""
    batch, count = locals_.shape[:2]
    mask = torch.ones(batch, count, dtype=torch.bool) if mask is None else mask
    per_sample = []
    for i in range(batch):
        negatives = [
            float(globals_[i] @ locals_[j, k]) / temp
            for j in range(batch)
            for k in range(count)
            if j != i and mask[j, k]
        ]
        losses = []
        for k in range(count):
            if mask[i, k]:
                positive = float(globals_[i] @ locals_[i, k]) / temp
                row = [positive, *negatives]
                losses.append(-positive + math.log(sum(math.exp(v) for v in row)))
        per_sample.append(sum(losses) / max(1, int(mask[i].sum())))
    return sum(per_sample) / batch


def old_g2l(locals_, globals_, temp, mask):
    """clipforge before the fix: each local token picks its global among the batch's globals."""
    batch, count = locals_.shape[:2]
    losses = [
        F.cross_entropy((globals_ @ locals_[i, k]) / temp, torch.tensor(i)).item()
        for i in range(batch)
        for k in range(count)
        if mask[i, k]
    ]
    return sum(losses) / len(losses)


def soft_ce(logits, targets):
    return float(-(targets * F.log_softmax(logits, dim=1)).sum(1).mean())


def patch_pooling(patches):
    """The code's patch_pooling: a side × side grid averaged with kernel = stride = √side."""
    batch, count, dim = patches.shape
    side = int(math.sqrt(count))
    kernel = int(math.sqrt(side))
    grid = patches.reshape(batch, side, side, dim).permute(0, 3, 1, 2)
    return F.avg_pool2d(grid, kernel, stride=kernel).permute(0, 2, 3, 1).reshape(batch, -1, dim)


def tiny_model():
    config = model_config("tiny")
    config.embed_dim = 16
    config.vision.image_size = config.preprocess.image_size = 16
    config.vision.patch_size, config.vision.width, config.vision.layers = 4, 16, 1  # 4 × 4 patches
    config.vision.heads = config.text.heads = 2
    config.text.width, config.text.layers = 16, 1
    config.text.context_length, config.text.vocab_size = 8, 50
    torch.manual_seed(0)
    return clipforge.create_model(config)


def token_ids(size, generator):
    ids = torch.zeros(size, 8, dtype=torch.long)
    for row in range(size):
        n = 3 + row % 4
        ids[row, 0] = 1
        ids[row, 1:n] = torch.randint(3, 50, (n - 1,), generator=generator)
        ids[row, n] = 2
    return ids


def batch_of(size=4):
    generator = torch.Generator().manual_seed(1)
    extras = {
        "image_view2": torch.randn(size, 3, 16, 16, generator=generator),
        "text_view2": token_ids(size, generator),
    }
    return Batch(
        torch.randn(size, 3, 16, 16, generator=generator),
        token_ids(size, generator),
        [str(i) for i in range(size)],
        extras=extras,
    )


def random_case(generator, batch=3, count=4, dim=5):
    locals_ = F.normalize(torch.randn(batch, count, dim, generator=generator), dim=-1)
    globals_ = F.normalize(torch.randn(batch, dim, generator=generator), dim=-1)
    mask = torch.tensor(
        [[True, True, True, True], [True, True, False, False], [True, False, False, False]]
    )
    return locals_, globals_, mask


def test_local_global_matches_the_released_in_batch_g2l_loss():
    locals_, globals_, mask = random_case(torch.Generator().manual_seed(0))
    temp = 0.2
    got = in_batch_local_global(locals_, globals_, torch.tensor(1 / temp), mask).item()
    assert got == pytest.approx(reference_g2l(locals_, globals_, temp, mask), rel=1e-5)
    unmasked = in_batch_local_global(locals_, globals_, torch.tensor(1 / temp)).item()
    assert unmasked == pytest.approx(reference_g2l(locals_, globals_, temp), rel=1e-5)


def test_the_old_local_global_formula_fails_the_released_check():
    locals_, globals_, mask = random_case(torch.Generator().manual_seed(0))
    temp = 0.2
    reference = reference_g2l(locals_, globals_, temp, mask)
    assert abs(old_g2l(locals_, globals_, temp, mask) - reference) > 0.05 * abs(reference)


def test_start_and_end_of_text_are_not_locals():
    mask = torch.tensor(
        [
            [True, True, True, True, False],
            [True, True, False, False, False],
            [True, True, True, True, True],
        ]
    )
    expected = torch.tensor(
        [
            [False, True, True, False, False],
            [False, False, False, False, False],
            [False, True, True, True, False],
        ]
    )
    assert torch.equal(word_mask(mask), expected)


def test_patch_pooling_matches_the_released_grid():
    patches = torch.randn(2, 16, 3)
    assert torch.allclose(pool_patches(patches), patch_pooling(patches), atol=1e-6)


def test_momentum_loss_matches_the_released_loss_ita():
    model, batch = tiny_model(), batch_of()
    objective = TripleContrastiveLoss(queue_size=8, distill_alpha=0.4, alpha_warmup_steps=4)
    objective.setup(model)
    objective.steps_done.fill_(2)  # α ramped to 0.4 · 2/4
    with torch.no_grad():  # a momentum encoder that has drifted
        for parameter in objective.momentum_model.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    queue_images, queue_texts = objective.image_queue.clone(), objective.text_queue.clone()
    outputs = model(batch.images, batch.text, return_tokens=True)
    terms = objective(outputs, batch)

    temp, alpha = 1 / model.logit_scale.exp().item(), 0.2
    with torch.no_grad():
        momentum = objective.momentum_model
        image_m, patches_m = momentum.encode_image(batch.extras["image_view2"], return_tokens=True)
        # the code feeds the momentum text encoder the same caption
        text_m, words_m, mask_m = momentum.encode_text(batch.text, return_tokens=True)
        image_m, text_m = F.normalize(image_m, dim=-1), F.normalize(text_m, dim=-1)
        image_feat = F.normalize(outputs.image_embeds, dim=-1)
        text_feat = F.normalize(outputs.text_embeds, dim=-1)
        image_all = torch.cat([image_m, queue_images])
        text_all = torch.cat([text_m, queue_texts])
        targets = torch.zeros(4, 12)
        targets.fill_diagonal_(1)
        i2t_targets = alpha * F.softmax(image_m @ text_all.T / temp, 1) + (1 - alpha) * targets
        t2i_targets = alpha * F.softmax(text_m @ image_all.T / temp, 1) + (1 - alpha) * targets
        loss_i2t = soft_ce(image_feat @ text_all.T / temp, i2t_targets)
        loss_t2i = soft_ce(text_feat @ image_all.T / temp, t2i_targets)
        loss_i2i = soft_ce(image_feat @ image_all.T / temp, targets)
        loss_t2t = soft_ce(text_feat @ text_all.T / temp, targets)
        # text locals: tokens after the start token, padding and end-of-text off (see word_mask)
        words = F.normalize(words_m, dim=-1)
        word_ok = mask_m.clone()
        word_ok[:, 0] = False
        word_ok[torch.arange(4), (batch.text == 2).int().argmax(1)] = False
        loss_t2t_l = reference_g2l(words, text_feat, temp, word_ok)
        loss_i2i_l = reference_g2l(patch_pooling(F.normalize(patches_m, dim=-1)), image_feat, temp)
    loss_ita = (loss_t2t_l + loss_i2i_l + loss_i2t + loss_t2i + loss_i2i + loss_t2t) / 6
    assert terms["loss"].item() == pytest.approx(3 * loss_ita, rel=1e-5)
    assert terms["local_global"].item() == pytest.approx((loss_t2t_l + loss_i2i_l) / 2, rel=1e-5)
    assert objective.queue_ptr.item() == 4
    assert torch.allclose(objective.image_queue[:4], image_m, atol=1e-6)


def test_online_variant_and_gradients():
    model, batch = tiny_model(), batch_of()
    objective = TripleContrastiveLoss(momentum_encoder=False, queue_size=0)
    objective.setup(model)
    outputs = model(batch.images, batch.text, return_tokens=True)
    terms = objective(outputs, batch)
    terms["loss"].backward()
    assert terms["intra_modal"].item() > 0 and terms["local_global"].item() > 0
    assert all(p.grad is not None for p in model.visual.parameters() if p.requires_grad)
    no_views = Batch(batch.images, batch.text, batch.keys)
    assert objective(outputs, no_views)["intra_modal"].item() == 0.0


def test_momentum_update_and_bad_options():
    model = tiny_model()
    objective = TripleContrastiveLoss(momentum=0.9, queue_size=6)
    objective.setup(model)
    assert not any(p.requires_grad for p in objective.parameters())
    old = objective.momentum_model.logit_scale.item()
    with torch.no_grad():
        model.logit_scale.add_(1.0)
    objective.after_step(model, 1)
    assert objective.momentum_model.logit_scale.item() == pytest.approx(
        0.9 * old + 0.1 * model.logit_scale.item()
    )
    assert objective.steps_done.item() == 1
    assert {"image_queue", "text_queue", "queue_ptr", "steps_done"} <= set(objective.state_dict())
    with pytest.raises(ValueError, match="momentum_encoder"):
        TripleContrastiveLoss(momentum_encoder=False, queue_size=4)
    with pytest.raises(ValueError, match="square"):
        pool_patches(torch.zeros(1, 6, 2))
