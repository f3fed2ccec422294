"""mlcd, cep, distill, clip_improved against hand-computed cases; the
modality gap; CLIP-Refine end to end; the literature configs parse."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from clipforge.data.batch import Batch
from clipforge.data.tokenizer import Tokenizer
from clipforge.models import create_model, model_config
from clipforge.models.clip import ModelOutput
from clipforge.models.config import PreprocessConfig
from clipforge.models.io import save_model_dir
from clipforge.objectives import OBJECTIVES
from clipforge.objectives.cep import CepClipLoss
from clipforge.objectives.distill import DistillLoss
from clipforge.objectives.teacher import adapt_images
from clipforge.training.config import TrainConfig
from clipforge.training.module import build_objectives
from clipforge.training.refine import RefineConfig, modality_gap, refine
from clipforge.training.setup import set_dotted

from synthetic import ShapesSource, micro_model_overrides

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
MY_CONFIGS = ["mlcd", "cep", "hcl", "unime", "distill", "refine", "grow", "lit", "clip-improved"]
CAPTIONS = ["a red circle", "a blue square", "a green triangle"]


def outputs(images, texts, scale) -> ModelOutput:
    return ModelOutput(torch.tensor(images), torch.tensor(texts), torch.tensor(scale))


def unit(vectors):
    return [[x / math.sqrt(sum(v * v for v in row)) for x in row] for row in vectors]


def dot(a, b):
    return sum(x * y for x, y in zip(a, b))


def infonce_rows(logits):
    """Mean over rows of −log softmax(row)[diagonal], plain Python."""
    total = 0.0
    for r, row in enumerate(logits):
        total += -row[r] + math.log(sum(math.exp(x) for x in row))
    return total / len(logits)


def transpose(matrix):
    return [list(col) for col in zip(*matrix)]


def softmax(row):
    exps = [math.exp(x) for x in row]
    return [e / sum(exps) for e in exps]


def kl_rows(p_rows, q_rows):
    return sum(
        sum(p * math.log(p / q) for p, q in zip(pr, qr) if p > 0) for pr, qr in zip(p_rows, q_rows)
    ) / len(p_rows)


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


# -- cep ----------------------------------------------------------------------------------------


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
    # eval mode: plain CLIP (same numbers as test_objectives_core's hand case)
    logits = [[2 * dot(i, t) for t in texts] for i in images]
    plain = (infonce_rows(logits) + infonce_rows(transpose(logits))) / 2
    assert objective.eval()(outputs(images, texts, 2.0), None)["loss"].item() == pytest.approx(
        plain, rel=1e-6
    )


# -- a 3 × 2 case (hcl, unime: tests/test_objective_hcl.py, test_objective_unime.py) ---------

IMAGES3 = unit([[1.0, 0.2], [0.3, 1.0], [-1.0, 0.5]])
TEXTS3 = unit([[0.9, 0.4], [0.1, 1.0], [-0.8, -0.2]])


# -- modality gap (rafa / hycd: test_objective_refine.py) ------------------------------------


def test_modality_gap_by_hand():
    images = torch.tensor([[1.0, 0.0], [0.0, 1.0]])  # mean (0.5, 0.5)
    texts = torch.tensor([[-1.0, 0.0], [0.6, 0.8], [0.0, -1.0]])  # mean (−0.4/3, −0.2/3)
    expected = math.hypot(0.5 + 0.4 / 3, 0.5 + 0.2 / 3)
    assert modality_gap(images, texts) == pytest.approx(expected, rel=1e-6)
    assert modality_gap(images, images) == 0.0


def test_refine_end_to_end_writes_gaps(tmp_path, tokenizer):
    import json

    model = micro_model(
        **{
            "text.vocab_size": tokenizer.vocab_size,
            "text.eos_token_id": tokenizer.eot_id,
            "text.pad_token_id": tokenizer.pad_id,
        }
    )
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


# -- distill -------------------------------------------------------------------------------------


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
        t_img = teacher.eval().encode_image(batch.images)
        t_txt = teacher.encode_text(tokenizer(CAPTIONS))
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


def test_cep_gradients_flow():
    for objective in (CepClipLoss().train(),):
        images = torch.tensor(IMAGES3, requires_grad=True)
        texts = torch.tensor(TEXTS3, requires_grad=True)
        objective(ModelOutput(images, texts, torch.tensor(3.0)), None)["loss"].backward()
        assert images.grad.abs().sum() > 0 and texts.grad.abs().sum() > 0


# -- configs -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", MY_CONFIGS)
def test_literature_configs_parse_and_name_registered_objectives(name):
    from clipforge.models.grow import GrowStage, validate_grow_schedule

    config = TrainConfig.from_yaml(CONFIGS / f"{name}.yaml")
    assert config.objectives and all(spec.name in OBJECTIVES for spec in config.objectives)
    objectives = build_objectives(config.objectives)  # kwargs fit the constructors
    assert set(objectives) == {spec.name for spec in config.objectives}
    validate_grow_schedule(config.grow)
    if name == "grow":
        assert config.grow[0] == GrowStage(at_fraction=0.3, vision_layers=2, text_layers=2)
    if name == "lit":
        assert config.model.freeze == ["text.encoder"]
        assert config.model.overrides["text.pretrained"].startswith("pkg:")
