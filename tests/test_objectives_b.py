"""mlcd, cep, hardneg, distill, rafa, hycd, clip_improved against hand-computed cases; the
modality gap; CLIP-Refine end to end; the literature configs parse."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from clipforge.data.batch import Batch
from clipforge.data.tokenizer import Tokenizer
from clipforge.models import create_model, model_config
from clipforge.models.clip import ModelOutput
from clipforge.models.config import PreprocessConfig
from clipforge.models.io import save_model_dir
from clipforge.objectives import OBJECTIVES
from clipforge.objectives.cep import CepClipLoss
from clipforge.objectives.distill import DistillLoss
from clipforge.objectives.hardneg import HardNegativeLoss
from clipforge.objectives.improved import ImprovedClipLoss
from clipforge.objectives.mlcd import MultiLabelClusterLoss, spherical_kmeans
from clipforge.objectives.refine import HybridContrastiveDistillation, RandomFeatureAlignment
from clipforge.objectives.teacher import adapt_images
from clipforge.training.config import TrainConfig
from clipforge.training.module import build_objectives
from clipforge.training.refine import RefineConfig, modality_gap, refine
from clipforge.training.setup import set_dotted

from synthetic import ShapesSource, micro_model_overrides

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
MY_CONFIGS = ["mlcd", "cep", "hardneg", "distill", "refine", "grow", "lit", "clip-improved"]
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
    return sum(sum(p * math.log(p / q) for p, q in zip(pr, qr) if p > 0)
               for pr, qr in zip(p_rows, q_rows)) / len(p_rows)


def micro_model(seed: int = 0, **overrides):
    config = model_config("tiny")
    for key, value in {**micro_model_overrides(), "text.vocab_size": 300, **overrides}.items():
        set_dotted(config, key, value)
    torch.manual_seed(seed)
    return create_model(config)


@pytest.fixture(scope="module")
def tokenizer():
    return Tokenizer.train(CAPTIONS * 20 + ["a yellow circle", "a drawing of a shape"],
                           vocab_size=300, context_length=16, min_frequency=1)


def make_batch(tokenizer, image_size: int = 32, seed: int = 0) -> Batch:
    generator = torch.Generator().manual_seed(seed)
    images = torch.randn(len(CAPTIONS), 3, image_size, image_size, generator=generator)
    return Batch(images, tokenizer(CAPTIONS), [f"k{i}" for i in range(3)], list(CAPTIONS))


# -- mlcd ---------------------------------------------------------------------------------------

def mlcd_with_centres(centres, **kwargs) -> MultiLabelClusterLoss:
    objective = MultiLabelClusterLoss(**kwargs)
    objective.setup(SimpleNamespace(config=SimpleNamespace(embed_dim=len(centres[0]))))
    objective.centres.copy_(torch.tensor(centres))
    objective.centres_ready.fill_(True)
    return objective.eval()


def test_mlcd_by_hand():
    # centres ±x, ±y; l = 1 positive, every other centre a negative (ratio 1); σ = 2, m = 0.1
    centres = [[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]]
    objective = mlcd_with_centres(centres, num_clusters=4, positives=1, negative_ratio=1.0,
                                  scale=2.0, margin=0.1, bank_size=8)
    images = [[1.0, 0.0], [0.6, 0.8]]
    out = outputs(images, images, 1.0)
    # row 0: cos = [1, 0, −1, 0] → positive centre 0
    row0 = (math.log(1 + math.exp(-2 * (1 - 0.1)))
            + math.log(1 + math.exp(0) + math.exp(-2) + math.exp(0)))
    # row 1: cos = [0.6, 0.8, −0.6, −0.8] → positive centre 1
    row1 = (math.log(1 + math.exp(-2 * (0.8 - 0.1)))
            + math.log(1 + math.exp(1.2) + math.exp(-1.2) + math.exp(-1.6)))
    assert objective(out, None)["loss"].item() == pytest.approx((row0 + row1) / 2, rel=1e-6)


def test_mlcd_samples_a_fraction_of_negatives_disjoint_from_positives():
    torch.manual_seed(0)
    centres = F.normalize(torch.randn(20, 4), dim=-1).tolist()
    objective = mlcd_with_centres(centres, num_clusters=20, positives=3, negative_ratio=0.25,
                                  bank_size=32)
    embeds = F.normalize(torch.randn(5, 4), dim=-1)
    positives, negatives = objective.sample_labels(embeds)
    assert positives.sum(dim=1).tolist() == [3] * 5
    assert negatives.sum(dim=1).tolist() == [math.ceil(0.25 * 17)] * 5
    assert not (positives & negatives).any()
    nearest = (embeds @ torch.tensor(centres).T).topk(3, dim=1).indices
    assert positives.gather(1, nearest).all()


def test_mlcd_fills_its_bank_clusters_then_trains():
    objective = MultiLabelClusterLoss(num_clusters=3, positives=1, negative_ratio=1.0,
                                      bank_size=12, refresh_every=5)
    objective.setup(SimpleNamespace(config=SimpleNamespace(embed_dim=3)))
    objective.train()
    directions = torch.eye(3)
    generator = torch.Generator().manual_seed(0)
    for step in range(1, 4):   # 3 steps × 4 embeddings = the 12 the bank needs (min(12, 4·3))
        points = directions.repeat(2, 1)[:4] + 0.05 * torch.randn(4, 3, generator=generator)
        images = F.normalize(points, dim=-1).requires_grad_(True)
        loss = objective(ModelOutput(images, images.detach(), torch.tensor(1.0)), None)["loss"]
        assert loss.item() == 0.0                          # no centres yet
        objective.after_step(None, step)
    assert bool(objective.centres_ready) and int(objective.bank_filled) == 12
    # the clusters are the three axes
    assert (objective.centres @ directions).max(dim=0).values.min() > 0.99
    images = F.normalize(directions + 0.05, dim=-1).requires_grad_(True)
    loss = objective(ModelOutput(images, images.detach(), torch.tensor(1.0)), None)["loss"]
    loss.backward()
    assert loss.item() > 0 and images.grad.abs().sum() > 0


def test_spherical_kmeans_recovers_separated_clusters():
    generator = torch.Generator().manual_seed(1)
    axes = torch.eye(4)
    points = torch.cat([axes[i] + 0.1 * torch.randn(25, 4, generator=generator)
                        for i in range(4)])
    centres = spherical_kmeans(points, 4, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(centres.norm(dim=-1), torch.ones(4), atol=1e-5)
    assert (centres @ axes.T).max(dim=0).values.min() > 0.95


# -- cep ----------------------------------------------------------------------------------------

def test_cep_by_hand_and_only_in_training():
    images, texts = [[1.0, 0.0], [0.0, 1.0]], [[1.0, 0.0], [0.6, 0.8]]
    objective = CepClipLoss(gamma=0.5)
    torch.manual_seed(123)
    loss = objective.train()(outputs(images, texts, 2.0), None)["loss"].item()
    torch.manual_seed(123)
    noise = torch.randn(2, 2).tolist()
    perturbed = unit([[t + 0.5 / math.sqrt(2) * n for t, n in zip(text, row)]
                      for text, row in zip(texts, noise)])
    logits = [[2 * dot(i, t) for t in perturbed] for i in images]
    expected = (infonce_rows(logits) + infonce_rows(transpose(logits))) / 2
    assert loss == pytest.approx(expected, rel=1e-5)
    # eval mode: plain CLIP (same numbers as test_objectives_core's hand case)
    logits = [[2 * dot(i, t) for t in texts] for i in images]
    plain = (infonce_rows(logits) + infonce_rows(transpose(logits))) / 2
    assert objective.eval()(outputs(images, texts, 2.0), None)["loss"].item() == \
        pytest.approx(plain, rel=1e-6)


# -- hardneg ------------------------------------------------------------------------------------

IMAGES3 = unit([[1.0, 0.2], [0.3, 1.0], [-1.0, 0.5]])
TEXTS3 = unit([[0.9, 0.4], [0.1, 1.0], [-0.8, -0.2]])


def reweighted_rows(logits, beta, keep=None):
    total = 0.0
    for r, row in enumerate(logits):
        negatives = [j for j in range(len(row)) if j != r and (keep is None or j in keep(row, r))]
        mean = sum(math.exp(beta * row[j]) for j in negatives) / len(negatives)
        denominator = math.exp(row[r]) + sum(math.exp(beta * row[j]) / mean * math.exp(row[j])
                                             for j in negatives)
        total += -row[r] + math.log(denominator)
    return total / len(logits)


def test_hardneg_by_hand():
    scale = 3.0
    logits = [[scale * dot(i, t) for t in TEXTS3] for i in IMAGES3]
    out = outputs(IMAGES3, TEXTS3, scale)
    expected = (reweighted_rows(logits, 0.5) + reweighted_rows(transpose(logits), 0.5)) / 2
    assert HardNegativeLoss(beta=0.5)(out, None)["loss"].item() == pytest.approx(expected, rel=1e-6)
    # β = 0: plain InfoNCE
    plain = (infonce_rows(logits) + infonce_rows(transpose(logits))) / 2
    assert HardNegativeLoss(beta=0.0)(out, None)["loss"].item() == pytest.approx(plain, rel=1e-6)

    # top-1: only the hardest negative of each row stays (its weight is then 1)
    def hardest(row, r):
        return {max((j for j in range(len(row)) if j != r), key=lambda j: row[j])}
    expected = (reweighted_rows(logits, 0.5, hardest)
                + reweighted_rows(transpose(logits), 0.5, hardest)) / 2
    assert HardNegativeLoss(beta=0.5, top_k=1)(out, None)["loss"].item() == \
        pytest.approx(expected, rel=1e-6)


def test_hardneg_drops_probable_false_negatives():
    # text 0 is a near-duplicate of text 1: image 0 scores its negative above its positive
    images, texts = unit([[1.0, 0.0], [0.0, 1.0]]), unit([[0.9, 0.1], [1.0, 0.0]])
    scale = 2.0
    logits = [[scale * dot(i, t) for t in texts] for i in images]
    assert logits[0][1] > logits[0][0]
    loss = HardNegativeLoss(beta=0.5, false_negative_margin=0.0)(
        outputs(images, texts, scale), None)["loss"].item()

    def rows(matrix):
        # 2 × 2: one negative per row, kept only if it does not beat the positive (margin 0);
        # a row left without negatives costs −l_p + log(exp(l_p)) = 0
        total = 0.0
        for r, row in enumerate(matrix):
            positive, negative = row[r], row[1 - r]
            if negative <= positive:
                total += -positive + math.log(math.exp(positive) + math.exp(negative))
        return total / 2
    expected = (rows(logits) + rows(transpose(logits))) / 2
    assert expected > 0
    assert loss == pytest.approx(expected, rel=1e-6)


def test_hardneg_gradients_reach_embeddings():
    images = torch.tensor(IMAGES3, requires_grad=True)
    texts = torch.tensor(TEXTS3, requires_grad=True)
    HardNegativeLoss(beta=0.5, top_k=1)(ModelOutput(images, texts, torch.tensor(3.0)),
                                        None)["loss"].backward()
    assert images.grad.abs().sum() > 0 and texts.grad.abs().sum() > 0


# -- rafa / hycd / modality gap ------------------------------------------------------------------

def test_rafa_by_hand():
    images, texts = [[1.0, 0.0], [0.0, 1.0]], [[0.6, 0.8], [1.0, 0.0]]
    torch.manual_seed(7)
    terms = RandomFeatureAlignment()(outputs(images, texts, 1.0), None)
    torch.manual_seed(7)
    reference = torch.randn(2, 2).tolist()
    mse = [sum((x - r) ** 2 for row, ref in zip(side, reference) for x, r in zip(row, ref)) / 4
           for side in (images, texts)]
    assert terms["loss"].item() == pytest.approx(mse[0] + mse[1], rel=1e-6)
    assert terms["image"].item() == pytest.approx(mse[0], rel=1e-6)


def test_rafa_gradient_pulls_both_modalities_to_one_reference():
    images = torch.tensor([[1.0, 0.0]], requires_grad=True)
    texts = torch.tensor([[0.0, 1.0]], requires_grad=True)
    torch.manual_seed(3)
    RandomFeatureAlignment()(ModelOutput(images, texts, torch.tensor(1.0)), None)["loss"].backward()
    torch.manual_seed(3)
    reference = torch.randn(1, 2)
    assert torch.allclose(images.grad, (images - reference).detach())   # d/dx mean((x−r)²)·2/2
    assert torch.allclose(texts.grad, (texts - reference).detach())


def test_hycd_by_hand_against_the_frozen_start_model(tokenizer):
    model = micro_model().train()
    objective = HybridContrastiveDistillation(alpha=0.5, temperature=0.5)
    objective.setup(model)
    batch = make_batch(tokenizer)
    out = model(batch.images, batch.text)
    with torch.no_grad():
        cos = (out.image_embeds @ out.text_embeds.T).tolist()
    loss = objective(out, batch)["loss"]

    def direction(matrix):
        targets = [[0.5 * (i == j) + 0.5 * p for j, p in enumerate(softmax([x / 0.5 for x in row]))]
                   for i, row in enumerate(matrix)]
        student = [softmax([x / 0.5 for x in row]) for row in matrix]
        return kl_rows(targets, student)
    expected = 0.25 * (direction(cos) + direction(transpose(cos))) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    # gradients reach the student; the teacher is a frozen, separate copy
    loss.backward()
    assert model.visual.proj.weight.grad.abs().sum() > 0
    teacher = objective._teacher.model
    assert teacher is not model and not teacher.training
    assert all(not p.requires_grad for p in teacher.parameters())
    assert "_teacher" not in dict(objective.named_modules()) and not objective.state_dict()


def test_modality_gap_by_hand():
    images = torch.tensor([[1.0, 0.0], [0.0, 1.0]])              # mean (0.5, 0.5)
    texts = torch.tensor([[-1.0, 0.0], [0.6, 0.8], [0.0, -1.0]])  # mean (−0.4/3, −0.2/3)
    expected = math.hypot(0.5 + 0.4 / 3, 0.5 + 0.2 / 3)
    assert modality_gap(images, texts) == pytest.approx(expected, rel=1e-6)
    assert modality_gap(images, images) == 0.0


def test_refine_end_to_end_writes_gaps(tmp_path, tokenizer):
    import json
    model = micro_model(**{"text.vocab_size": tokenizer.vocab_size,
                           "text.eos_token_id": tokenizer.eot_id,
                           "text.pad_token_id": tokenizer.pad_id})
    save_model_dir(tmp_path / "start", model, tokenizer)
    config = RefineConfig(model=str(tmp_path / "start"), data="unused", out=str(tmp_path / "out"),
                          lr=3e-3, epochs=1, batch_size=8, workers=0, evaluate=False,
                          progress=False)
    report = refine(config, ShapesSource(24), ShapesSource(8, seed=1))
    saved = json.loads((tmp_path / "out" / "refine.json").read_text())
    assert saved["gap_before"] == pytest.approx(report["gap_before"])
    assert report["steps"] == 3 and report["before"]["images"] == 8
    assert report["gap_before"] > 0 and report["gap_after"] != report["gap_before"]


# -- distill -------------------------------------------------------------------------------------

def test_adapt_images_renormalises_and_resizes():
    student = PreprocessConfig(image_size=8, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    teacher = PreprocessConfig(image_size=4, mean=(0.4, 0.3, 0.5), std=(0.2, 0.1, 0.5))
    images = torch.zeros(1, 3, 8, 8)                 # pixel value 0.5 everywhere
    adapted = adapt_images(images, student, teacher)
    assert adapted.shape == (1, 3, 4, 4)
    expected = [(0.5 - 0.4) / 0.2, (0.5 - 0.3) / 0.1, 0.0]
    assert torch.allclose(adapted[0, :, 0, 0], torch.tensor(expected), atol=1e-5)
    assert adapt_images(images, student, student) is images


def test_distill_by_hand_with_a_saved_teacher(tmp_path, tokenizer):
    teacher = micro_model(seed=1, **{"text.vocab_size": tokenizer.vocab_size,
                                     "text.eos_token_id": tokenizer.eot_id})
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
        return kl_rows([softmax([x / 2 for x in row]) for row in t],
                       [softmax([x / 2 for x in row]) for row in s])
    expected = 4 * (direction(t_logits, s_logits)
                    + direction(transpose(t_logits), transpose(s_logits))) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-4)
    loss.backward()
    assert student.text.proj.weight.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in objective._teacher.model.parameters())


def test_distill_from_itself_is_zero(tmp_path, tokenizer):
    model = micro_model(**{"text.vocab_size": tokenizer.vocab_size,
                           "text.eos_token_id": tokenizer.eot_id}).eval()
    save_model_dir(tmp_path / "same", model, tokenizer)
    objective = DistillLoss(teacher=str(tmp_path / "same"))
    objective.setup(model)
    batch = make_batch(tokenizer)
    with torch.no_grad():
        loss = objective(model(batch.images, batch.text), batch)["loss"]
    assert loss.item() == pytest.approx(0.0, abs=1e-6)


# -- clip_improved -------------------------------------------------------------------------------

def smoothed_rows(logits, eps):
    total = 0.0
    for r, row in enumerate(logits):
        log_z = math.log(sum(math.exp(x) for x in row))
        nll = [log_z - x for x in row]
        total += (1 - eps) * nll[r] + eps * sum(nll) / len(row)
    return total / len(logits)


def test_clip_improved_by_hand(tokenizer):
    model = micro_model()
    objective = ImprovedClipLoss(label_smoothing=0.1)
    objective.setup(model)
    batch = make_batch(tokenizer)
    batch.extras["image_view2"] = torch.randn(3, 3, 32, 32)
    batch.extras["text_view2"] = tokenizer(["red circle a", "a square blue", "triangle"])
    out = model(batch.images, batch.text)
    loss = objective(out, batch)["loss"]
    with torch.no_grad():
        views = {"i1": out.image_embeds, "t1": out.text_embeds,
                 "i2": model.encode_image(batch.extras["image_view2"]),
                 "t2": model.encode_text(batch.extras["text_view2"])}
        scale = out.logit_scale.item()

    def nce(i, t):
        logits = (scale * views[i] @ views[t].T).tolist()
        return (smoothed_rows(logits, 0.1) + smoothed_rows(transpose(logits), 0.1)) / 2
    expected = (nce("i1", "t1") + nce("i1", "t2") + nce("i2", "t1") + nce("i2", "t2")) / 4
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    loss.backward()
    assert model.visual.patch_embed.weight.grad.abs().sum() > 0
    assert ImprovedClipLoss.extra_inputs == ("image_view2", "text_view2")


def test_cep_and_rafa_gradients_flow():
    for objective in (CepClipLoss().train(), RandomFeatureAlignment()):
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
    objectives = build_objectives(config.objectives)        # kwargs fit the constructors
    assert set(objectives) == {spec.name for spec in config.objectives}
    validate_grow_schedule(config.grow)
    if name == "grow":
        assert config.grow[0] == GrowStage(at_fraction=0.3, vision_layers=2, text_layers=2)
    if name == "lit":
        assert config.model.freeze == ["text.encoder"]
        assert config.model.overrides["text.pretrained"].startswith("pkg:")
