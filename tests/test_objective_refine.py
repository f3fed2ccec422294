"""CLIP-Refine's HyCD and RaFA against the authors' code (github.com/yshinya6/clip-refine).

The reference below is written from ``updater/contrastive.py``: ``distill`` (KL(batchmean) of
the α-blended teacher softmax against the student log-softmax, times T²), ``kd_loss`` (image→text
and text→image, dot products of the *unnormalised* ``image_features`` / ``text_features`` that
``model/mod_clip.py`` returns from ``backbone.encode_*``), and ``RandRegUpdater`` (one
``Normal(0, 1)`` sample of the features' size shared by both modalities, ``F.mse_loss`` each);
defaults from ``config/01_post-pre-training/clip-refine.yaml`` (α 0.5, T 1, lr 1e-6). Below
those, the modality gap by hand and a whole refine run that writes it before and after.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.distributions as dists
import torch.nn.functional as F

from clipforge.data.batch import Batch
from clipforge.data.tokenizer import Tokenizer
from clipforge.models import create_model, model_config
from clipforge.models.io import save_model_dir
from clipforge.objectives import OBJECTIVES
from clipforge.training.refine import RefineConfig, modality_gap, refine, train_config
from clipforge.training.setup import set_dotted

from synthetic import ShapesSource, micro_model_overrides

CAPTIONS = ["a red circle", "a blue square", "a green triangle", "a red square"]


@pytest.fixture(scope="module")
def tokenizer():
    return Tokenizer.train(CAPTIONS * 20, vocab_size=300, context_length=16, min_frequency=1)


def micro_model(tokenizer, seed=0):
    config = model_config("tiny")
    for key, value in {
        **micro_model_overrides(),
        "text.vocab_size": tokenizer.vocab_size,
        "text.eos_token_id": tokenizer.eot_id,
        "text.pad_token_id": tokenizer.pad_id,
    }.items():
        set_dotted(config, key, value)
    torch.manual_seed(seed)
    return create_model(config)


def batch_of(tokenizer):
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(len(CAPTIONS), 3, 32, 32, generator=generator)
    return Batch(
        images, tokenizer(CAPTIONS), [str(i) for i in range(len(CAPTIONS))], list(CAPTIONS)
    )


def reference_distill(y_s, y_t, T=1.0, alpha=0.0):
    p_s = F.log_softmax(y_s / T, dim=1)
    p_t = F.softmax(y_t / T, dim=1)
    gt = torch.eye(y_t.shape[0], dtype=torch.long)
    p_t = alpha * gt + (1.0 - alpha) * p_t
    return F.kl_div(p_s, p_t, reduction="batchmean") * (T**2)


def reference_kd(feat_i, feat_t, feat_it, feat_tt, T, alpha):
    return (
        reference_distill(feat_i @ feat_t.T, feat_it @ feat_tt.T, T, alpha)
        + reference_distill(feat_t @ feat_i.T, feat_tt @ feat_it.T, T, alpha)
    ) / 2


def student_and_teacher(tokenizer, objective):
    """A student one step away from the frozen start copy, so the two differ."""
    student = micro_model(tokenizer)
    objective.setup(student)
    teacher = copy.deepcopy(student)
    with torch.no_grad():
        for parameter in student.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
        for model in (student, teacher):
            model.visual.proj.weight.mul_(30.0)  # feature norms ~ CLIP's, sharp dot products
            model.text.proj.weight.mul_(30.0)
    object.__setattr__(objective, "_teacher", type(objective._teacher)(teacher.eval(), None))
    return student, teacher


def raw_features(model, batch):
    with torch.no_grad():
        return (
            model.encode_image(batch.images, normalize=False),
            model.encode_text(batch.text, normalize=False),
        )


def test_hycd_dot_matches_the_released_kd_loss_number_for_number(tokenizer):
    objective = OBJECTIVES.get("hycd")(similarity="dot")
    student, teacher = student_and_teacher(tokenizer, objective)
    batch = batch_of(tokenizer)
    out = student(batch.images, batch.text)
    expected = reference_kd(
        out.image_features.detach(),
        out.text_features.detach(),
        *raw_features(teacher, batch),
        T=1.0,
        alpha=0.5,
    )
    loss = objective(out, batch)["loss"]
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert expected.item() > 0.05
    loss.backward()  # the student learns, the teacher is frozen
    assert student.visual.proj.weight.grad.abs().sum() > 0


def test_hycd_default_is_the_released_distill_on_each_models_scaled_cosines(tokenizer):
    objective = OBJECTIVES.get("hycd")()
    assert (objective.alpha, objective.temperature, objective.similarity) == (
        0.5,
        1.0,
        "scaled_cosine",
    )
    student, teacher = student_and_teacher(tokenizer, objective)
    with torch.no_grad():
        student.logit_scale.fill_(3.0)
    batch = batch_of(tokenizer)
    out = student(batch.images, batch.text)
    image_t, text_t = (F.normalize(f, dim=-1) for f in raw_features(teacher, batch))
    image_s, text_s = out.image_embeds.detach(), out.text_embeds.detach()
    s, s_t = torch.tensor(3.0).exp(), teacher.scale().detach()
    expected = (
        reference_distill(s * image_s @ text_s.T, s_t * image_t @ text_t.T, 1.0, 0.5)
        + reference_distill(s * text_s @ image_s.T, s_t * text_t @ image_t.T, 1.0, 0.5)
    ) / 2
    assert objective(out, batch)["loss"].item() == pytest.approx(expected.item(), rel=1e-5)


def test_the_old_cosine_at_tau_one_form_fails_the_reference_check(tokenizer):
    """clipforge before issue 18 distilled plain cosines at τ = 1: near-uniform targets."""
    objective = OBJECTIVES.get("hycd")(similarity="dot")
    student, teacher = student_and_teacher(tokenizer, objective)
    batch = batch_of(tokenizer)
    image_s, text_s = raw_features(student, batch)
    image_t, text_t = raw_features(teacher, batch)
    released = reference_kd(image_s, text_s, image_t, text_t, 1.0, 0.5)
    cos = [F.normalize(f, dim=-1) for f in (image_s, text_s, image_t, text_t)]
    old = reference_kd(*cos, 1.0, 0.5)
    assert abs(old.item() - released.item()) > 0.1 * released.item()
    uniform_share = F.softmax(cos[2] @ cos[3].T, dim=1).max()
    assert uniform_share < torch.e**2 / (torch.e**2 + len(CAPTIONS) - 1)  # ≤ e² ratio


def test_rafa_matches_the_released_random_feature_alignment_number_for_number(tokenizer):
    model = micro_model(tokenizer)
    batch = batch_of(tokenizer)
    out = model(batch.images, batch.text)
    feat_i, feat_t = out.image_features.detach(), out.text_features.detach()
    torch.manual_seed(11)
    feat_p = (
        dists.Normal(loc=torch.tensor([0.0]), scale=torch.tensor([1.0]))
        .sample(feat_i.size())
        .squeeze()
    )  # shared: feat_ip = feat_tp
    expected = F.mse_loss(feat_i, feat_p) + F.mse_loss(feat_t, feat_p)
    torch.manual_seed(11)
    terms = OBJECTIVES.get("rafa")()(out, batch)
    assert terms["loss"].item() == pytest.approx(expected.item(), rel=1e-6)
    # the old form aligned the L2-normalised embeddings instead of the projector outputs
    old = F.mse_loss(out.image_embeds.detach(), feat_p) + F.mse_loss(
        out.text_embeds.detach(), feat_p
    )
    assert abs(old.item() - expected.item()) > 1e-3
    terms["loss"].backward()
    assert model.visual.proj.weight.grad.abs().sum() > 0


def test_rafa_and_hycd_dot_refuse_outputs_without_projector_features():
    from clipforge.models.clip import ModelOutput

    bare = ModelOutput(torch.eye(2), torch.eye(2), torch.tensor(1.0))
    with pytest.raises(ValueError, match="projector outputs"):
        OBJECTIVES.get("rafa")()(bare, None)
    with pytest.raises(ValueError, match="similarity"):
        OBJECTIVES.get("hycd")(similarity="cosine")


def test_refine_defaults_to_the_papers_learning_rate():
    config = RefineConfig(model="m", data="d", out="o")
    assert config.lr == 1e-6
    assert train_config(config).optim.lr == 1e-6
    import argparse

    from clipforge.cli.refine import add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert parser.parse_args(["--model", "m", "--data", "d", "--out", "o"]).lr is None


# -- the modality gap and a whole refine run -------------------------------------------------


def test_modality_gap_by_hand():
    images = torch.tensor([[1.0, 0.0], [0.0, 1.0]])  # mean (0.5, 0.5)
    texts = torch.tensor([[-1.0, 0.0], [0.6, 0.8], [0.0, -1.0]])  # mean (−0.4/3, −0.2/3)
    expected = math.hypot(0.5 + 0.4 / 3, 0.5 + 0.2 / 3)
    assert modality_gap(images, texts) == pytest.approx(expected, rel=1e-6)
    assert modality_gap(images, images) == 0.0


def test_refine_end_to_end_writes_gaps(tmp_path, tokenizer):
    import json

    model = micro_model(tokenizer)  # vocabulary, end and pad ids from the tokenizer
    save_model_dir(tmp_path / "start", model, tokenizer)
    config = RefineConfig(
        model=str(tmp_path / "start"),
        data="unused",
        out=str(tmp_path / "out"),
        lr=3e-3,
        epochs=1,
        batch_size=8,
        workers=0,
        evaluate=False,
        progress=False,
    )
    report = refine(config, ShapesSource(24), ShapesSource(8, seed=1))
    saved = json.loads((tmp_path / "out" / "refine.json").read_text())
    assert saved["gap_before"] == pytest.approx(report["gap_before"])
    assert report["steps"] == 3 and report["before"]["images"] == 8
    assert report["gap_before"] > 0 and report["gap_after"] != report["gap_before"]
