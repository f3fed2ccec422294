"""filip, tcl, lightclip, dreamlip, alip, lexlip: hand-computed cases, masking, gradients, state,
and a two-step training run of each shipped config."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

import clipforge
from clipforge.data.batch import Batch
from clipforge.models import model_config
from clipforge.models.clip import ModelOutput
from clipforge.objectives import OBJECTIVES
from clipforge.objectives.alip import AlipLoss
from clipforge.objectives.dreamlip import DreamLipLoss
from clipforge.objectives.filip import FilipLoss, filip_similarity
from clipforge.objectives.lexlip import LexiconHeads, LexLipLoss
from clipforge.objectives.lightclip import LightClipLoss, soft_targets
from clipforge.training import TrainConfig, train

from synthetic import ShapesSource, micro_model_overrides

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
NAMES = ("filip", "tcl", "lightclip", "dreamlip", "alip", "lexlip")


# -- plain-python reference maths ------------------------------------------------------------


def dot(a, b):
    return sum(x * y for x, y in zip(a, b))


def ce(logits, target):
    """−log softmax(logits)[target]."""
    return -logits[target] + math.log(sum(math.exp(v) for v in logits))


def soft_ce(logits, targets):
    log_z = math.log(sum(math.exp(v) for v in logits))
    return -sum(q * (v - log_z) for q, v in zip(targets, logits))


def nce(a_rows, b_rows, scale):
    """½ [CE over rows + CE over columns] of scale·A Bᵀ with positives on the diagonal."""
    logits = [[scale * dot(a, b) for b in b_rows] for a in a_rows]
    n = len(a_rows)
    rows = sum(ce(logits[i], i) for i in range(n)) / n
    cols = sum(ce([logits[j][i] for j in range(n)], i) for i in range(n)) / n
    return (rows + cols) / 2


def t(values):
    return torch.tensor(values, dtype=torch.float32)


class StubModel:
    """Returns fixed embeddings for the extra encodes an objective makes."""

    def __init__(self, image=None, text=None):
        self.image, self.text = image, text

    def encode_image(self, images):
        return self.image

    def encode_text(self, ids):
        return self.text


def stub_batch(size=2, **extras) -> Batch:
    return Batch(
        torch.zeros(size, 3, 2, 2),
        torch.zeros(size, 2, dtype=torch.long),
        [str(i) for i in range(size)],
        extras=extras,
    )


# -- FILIP -----------------------------------------------------------------------------------

FILIP_IMAGES = [[[1.0, 0.0], [0.0, 1.0]], [[1.0, 0.0], [1.0, 0.0]]]  # [B=2, N=2, D=2]
FILIP_TEXTS = [[[1.0, 0.0], [0.6, 0.8]], [[0.0, 1.0], [1.0, 0.0]]]  # [B=2, T=2, D=2]
FILIP_MASK = [[True, True], [True, False]]  # text 1: one pad


def filip_outputs(texts=FILIP_TEXTS, scale=2.0):
    return ModelOutput(
        t([[1.0, 0.0], [0.0, 1.0]]),
        t([[1.0, 0.0], [0.0, 1.0]]),
        t(scale),
        image_tokens=t(FILIP_IMAGES),
        text_tokens=t(texts),
        text_token_mask=torch.tensor(FILIP_MASK),
    )


def test_filip_scores_and_loss_by_hand():
    # image side S^I[i,j] = mean over patches of max over real words; text side the converse
    image_side = [[(1 + 0.8) / 2, (0 + 1) / 2], [(1 + 1) / 2, (0 + 0) / 2]]
    text_side = [[(1 + 0.8) / 2, 1.0], [(1 + 0.6) / 2, 0.0]]
    s_i, s_t = filip_similarity(t(FILIP_IMAGES), t(FILIP_TEXTS), torch.tensor(FILIP_MASK))
    assert torch.allclose(s_i, t(image_side)) and torch.allclose(s_t, t(text_side))
    image_to_text = (
        ce([2 * v for v in image_side[0]], 0) + ce([2 * v for v in image_side[1]], 1)
    ) / 2
    text_to_image = (
        ce([2 * text_side[0][0], 2 * text_side[1][0]], 0)
        + ce([2 * text_side[0][1], 2 * text_side[1][1]], 1)
    ) / 2
    loss = FilipLoss()(filip_outputs(), None)["loss"].item()
    assert loss == pytest.approx((image_to_text + text_to_image) / 2, rel=1e-6)


def test_filip_ignores_padding_tokens():
    changed = [FILIP_TEXTS[0], [[0.0, 1.0], [0.3, -0.7]]]  # only the pad moves
    assert FilipLoss()(filip_outputs(changed), None)["loss"].item() == pytest.approx(
        FilipLoss()(filip_outputs(), None)["loss"].item(), rel=1e-6
    )
    unmasked, _ = filip_similarity(t(FILIP_IMAGES), t(FILIP_TEXTS), None)
    assert unmasked[0, 1].item() == pytest.approx(1.0)  # the pad [1,0] would match patch 0


# -- LightCLIP -------------------------------------------------------------------------------


def test_lightclip_loss_by_hand_and_progressive_softening():
    images, texts, scale = [[1.0, 0.0], [0.0, 1.0]], [[1.0, 0.0], [0.6, 0.8]], 2.0
    outputs = ModelOutput(
        t(images),
        t(texts),
        t(scale),
        image_tokens=t([[v] for v in images]),
        text_tokens=t([[v] for v in texts]),
        text_token_mask=torch.ones(2, 1).bool(),
    )
    objective = LightClipLoss(
        smoothing_start=0.0, smoothing_end=0.1, ramp_steps=1000, token_weight=0.5
    )
    objective.after_step(None, 500)
    assert objective.smoothing().item() == pytest.approx(0.05)
    eps = 0.05
    logits = [[scale * dot(a, b) for b in texts] for a in images]
    rows = (soft_ce(logits[0], [1 - eps, eps]) + soft_ce(logits[1], [eps, 1 - eps])) / 2
    cols = (
        soft_ce([logits[0][0], logits[1][0]], [1 - eps, eps])
        + soft_ce([logits[0][1], logits[1][1]], [eps, 1 - eps])
    ) / 2
    token = nce(images, texts, scale)  # one patch and one word each: S^T = I·Tᵀ
    terms = objective(outputs, None)
    assert terms["loss"].item() == pytest.approx((rows + cols) / 2 + 0.5 * token, rel=1e-6)
    objective.after_step(None, 5000)
    assert objective.smoothing().item() == pytest.approx(0.1)
    assert objective.state_dict()["step"].item() == 5000  # saved, so a resume continues


def test_lightclip_similarity_weighted_negatives_by_hand():
    logits = [[3.0, 1.0, 2.0], [0.0, 1.0, 0.0], [1.0, 1.0, 1.0]]
    targets = soft_targets(t(logits), 0.2, "similarity")
    e = math.exp
    expected = [
        [0.8, 0.2 * e(1) / (e(1) + e(2)), 0.2 * e(2) / (e(1) + e(2))],
        [0.1, 0.8, 0.1],
        [0.1, 0.1, 0.8],
    ]
    assert torch.allclose(targets, t(expected))
    assert torch.allclose(
        soft_targets(t(logits), 0.2, "uniform"),
        t([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8]]),
    )


# -- ALIP ------------------------------------------------------------------------------------


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


# -- LexLIP ----------------------------------------------------------------------------------


def test_lexicon_heads_round_trip_through_the_run_directory(tmp_path):
    from clipforge.search.lexicon import load_lexicon_heads
    from clipforge.training.checkpoint import save_objectives

    model = tiny_model()
    objective = LexLipLoss()
    objective.setup(model)
    assert objective.heads.image_proj.weight.shape == (50, 32)  # vocab × embed_dim
    assert all(key.startswith("heads.") for key in objective.state_dict())
    save_objectives(tmp_path, {"lexlip": objective})
    heads = load_lexicon_heads(tmp_path, model)
    tokens = torch.randn(3, 4, 32)
    assert torch.equal(
        heads.encode_image_sparse(tokens), objective.heads.encode_image_sparse(tokens)
    )
    rebuilt = LexiconHeads.from_state_dict(objective.heads.state_dict())
    assert (rebuilt.embed_dim, rebuilt.vocab_size) == (32, 50)


# -- every objective on a real (tiny) model --------------------------------------------------


def tiny_model():
    config = model_config("tiny")
    config.embed_dim = 32
    config.vision.image_size = config.preprocess.image_size = 16
    config.vision.patch_size, config.vision.width, config.vision.layers = 8, 32, 1
    config.vision.heads = config.text.heads = 2
    config.text.width, config.text.layers = 32, 1
    config.text.context_length, config.text.vocab_size = 8, 50
    torch.manual_seed(0)
    return clipforge.create_model(config)


def token_ids(batch, length=8, generator=None):
    ids = torch.zeros(batch, length, dtype=torch.long)
    for row in range(batch):
        n = 2 + row % 4
        ids[row, 0] = 1
        ids[row, 1:n] = torch.randint(3, 50, (n - 1,), generator=generator)
        ids[row, n] = 2
    return ids


def real_batch(size=4) -> Batch:
    generator = torch.Generator().manual_seed(1)
    subs = torch.stack([token_ids(3, generator=generator) for _ in range(size)])
    sub_mask = torch.tensor([[True, True, False]] * (size - 1) + [[True, False, False]])
    extras = {
        "image_view2": torch.randn(size, 3, 16, 16, generator=generator),
        "text_view2": token_ids(size, generator=generator),
        "sub_captions": subs,
        "sub_caption_mask": sub_mask,
        "alt_text": token_ids(size, generator=generator),
        "alt_text_present": torch.tensor([True] * (size - 1) + [False]),
    }
    return Batch(
        torch.randn(size, 3, 16, 16, generator=generator),
        token_ids(size, generator=generator),
        [str(i) for i in range(size)],
        extras=extras,
    )


@pytest.mark.parametrize("name", NAMES)
def test_forward_backward_on_a_tiny_model(name):
    model = tiny_model()
    kwargs = {"queue_size": 8} if name == "tcl" else {}
    objective = OBJECTIVES.get(name)(**kwargs)
    objective.setup(model)
    batch = real_batch()
    outputs = model(batch.images, batch.text, return_tokens=objective.needs_tokens)
    terms = objective(outputs, batch)
    terms["loss"].backward()
    assert math.isfinite(terms["loss"].item())
    for tower in (model.visual, model.text):
        assert sum(p.grad.abs().sum().item() for p in tower.parameters() if p.grad is not None) > 0
    for parameter in objective.parameters():
        if parameter.requires_grad:
            assert parameter.grad is not None and parameter.grad.abs().sum() > 0


def test_dreamlip_ignores_masked_sub_captions():
    model, batch = tiny_model(), real_batch()
    objective = DreamLipLoss()
    objective.setup(model)
    outputs = model(batch.images, batch.text, return_tokens=True)
    before = objective(outputs, batch)["loss"].item()
    batch.extras["sub_captions"][:, 2] = 7  # slot 2 is masked everywhere
    assert objective(outputs, batch)["loss"].item() == pytest.approx(before, rel=1e-6)


# -- configs ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_config_parses_and_trains_two_steps(name, tmp_path):
    config = TrainConfig.from_yaml(
        CONFIGS / f"{name}.yaml",
        [
            f"run.out={tmp_path / name}",
            "run.steps=2",
            "run.time_budget=null",
            "run.progress=false",
            "run.log_every=1",
            "data.val=null",
            "data.workers=0",
            "data.batch_size=8",
            "model.tokenizer_vocab_size=300",
        ],
    )
    assert name in [spec.name for spec in config.objectives]
    assert all(spec.name in OBJECTIVES for spec in config.objectives)
    assert config.run.out == str(tmp_path / name)
    config.model.overrides = micro_model_overrides()
    train(config, ShapesSource(24))
    rows = [
        json.loads(line) for line in (tmp_path / name / "metrics.jsonl").read_text().splitlines()
    ]
    assert [row["step"] for row in rows] == [1, 2]
    assert all(math.isfinite(row[f"{name}/loss"]) for row in rows)
    if name == "lexlip":  # the heads travel with the run, for sparse search
        from clipforge.search.lexicon import load_lexicon_heads

        model, _, _ = clipforge.load(tmp_path / name)
        assert load_lexicon_heads(tmp_path / name, model) is not None


def test_tcl_momentum_state_is_saved_with_the_run(tmp_path):
    from safetensors.torch import load_file

    config = TrainConfig.from_yaml(
        CONFIGS / "tcl.yaml",
        [
            f"run.out={tmp_path}",
            "run.steps=2",
            "run.time_budget=null",
            "run.progress=false",
            "data.val=null",
            "data.workers=0",
            "data.batch_size=8",
            "model.tokenizer_vocab_size=300",
        ],
    )
    config.objectives[0].params["queue_size"] = 12
    config.model.overrides = micro_model_overrides()
    train(config, ShapesSource(24))
    saved = load_file(str(tmp_path / "objectives.safetensors"))
    assert saved["tcl.queue_ptr"].item() == 4  # 2 steps × 8 samples, wrapped
    assert "tcl.momentum_model.visual.proj.weight" in saved
    model, _, _ = clipforge.load(tmp_path)
    assert not torch.equal(
        saved["tcl.momentum_model.visual.proj.weight"], model.visual.proj.weight
    )  # EMA lags the trained weights
