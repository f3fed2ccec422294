"""Distillation from a saved teacher run (Hinton et al. 2015; CLIP-KD): temperature-softened KL
between the teacher's and the student's image–text logits, both directions, against a
hand-computed case; the teacher's images re-normalised and resized to its own preprocessing."""

from __future__ import annotations

import pytest
import torch

from clipforge.data.batch import Batch
from clipforge.data.tokenizer import Tokenizer
from clipforge.models import create_model, model_config
from clipforge.models.config import PreprocessConfig
from clipforge.models.io import save_model_dir
from clipforge.objectives.distill import DistillLoss
from clipforge.objectives.teacher import adapt_images
from clipforge.training.setup import set_dotted

from reference_math import kl_rows, softmax, transpose
from synthetic import micro_model_overrides

CAPTIONS = ["a red circle", "a blue square", "a green triangle"]


def micro_model(seed: int = 0, **overrides):
    config = model_config("tiny")
    for key, value in {**micro_model_overrides(), "text.vocab_size": 300, **overrides}.items():
        set_dotted(config, key, value)
    torch.manual_seed(seed)
    return create_model(config)


@pytest.fixture(scope="module")
def tokenizer():
    return Tokenizer.train(
        CAPTIONS * 20 + ["a yellow circle", "a drawing of a shape"],
        vocab_size=300,
        context_length=16,
        min_frequency=1,
    )


def make_batch(tokenizer, image_size: int = 32, seed: int = 0) -> Batch:
    generator = torch.Generator().manual_seed(seed)
    images = torch.randn(len(CAPTIONS), 3, image_size, image_size, generator=generator)
    return Batch(images, tokenizer(CAPTIONS), [f"k{i}" for i in range(3)], list(CAPTIONS))


def test_adapt_images_renormalises_and_resizes():
    student = PreprocessConfig(image_size=8, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    teacher = PreprocessConfig(image_size=4, mean=(0.4, 0.3, 0.5), std=(0.2, 0.1, 0.5))
    images = torch.zeros(1, 3, 8, 8)  # pixel value 0.5 everywhere
    adapted = adapt_images(images, student, teacher)
    assert adapted.shape == (1, 3, 4, 4)
    expected = [(0.5 - 0.4) / 0.2, (0.5 - 0.3) / 0.1, 0.0]
    assert torch.allclose(adapted[0, :, 0, 0], torch.tensor(expected), atol=1e-5)
    assert adapt_images(images, student, student) is images


def test_distill_by_hand_with_a_saved_teacher(tmp_path, tokenizer):
    teacher = micro_model(
        seed=1, **{"text.vocab_size": tokenizer.vocab_size, "text.eos_token_id": tokenizer.eot_id}
    )
    save_model_dir(tmp_path / "teacher", teacher, tokenizer)
    student = micro_model(seed=2).train()
    objective = DistillLoss(teacher=str(tmp_path / "teacher"), temperature=2.0)
    objective.setup(student)
    batch = make_batch(tokenizer)
    out = student(batch.images, batch.text)
    loss = objective(out, batch)["loss"]
    with torch.no_grad():
        t_img = teacher.eval().encode_image(batch.images, normalize=True)
        t_txt = teacher.encode_text(tokenizer(CAPTIONS), normalize=True)
        t_logits = (teacher.scale() * t_img @ t_txt.T).tolist()
        s_logits = (out.logit_scale * out.image_embeds @ out.text_embeds.T).tolist()

    def direction(t, s):
        return kl_rows(
            [softmax([x / 2 for x in row]) for row in t],
            [softmax([x / 2 for x in row]) for row in s],
        )

    expected = (
        4
        * (direction(t_logits, s_logits) + direction(transpose(t_logits), transpose(s_logits)))
        / 2
    )
    assert loss.item() == pytest.approx(expected, rel=1e-4)
    loss.backward()
    assert student.text.proj.weight.grad.abs().sum() > 0
    assert all(
        p.grad is None and not p.requires_grad for p in objective._teacher.model.parameters()
    )


def test_distill_from_itself_is_zero(tmp_path, tokenizer):
    model = micro_model(
        **{"text.vocab_size": tokenizer.vocab_size, "text.eos_token_id": tokenizer.eot_id}
    ).eval()
    save_model_dir(tmp_path / "same", model, tokenizer)
    objective = DistillLoss(teacher=str(tmp_path / "same"))
    objective.setup(model)
    batch = make_batch(tokenizer)
    with torch.no_grad():
        loss = objective(model(batch.images, batch.text), batch)["loss"]
    assert loss.item() == pytest.approx(0.0, abs=1e-6)
