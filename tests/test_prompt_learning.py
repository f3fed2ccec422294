"""clipforge adapt prompt: CoOp context vectors, GRAM regulation, saved prompts, few-shot curves."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

import clipforge
from clipforge.cli.main import main
from clipforge.data.tokenizer import Tokenizer
from clipforge.evaluation import EncodeConfig, build_classifier
from clipforge.evaluation.prompt_learning import (
    PromptLearner,
    PromptTuningConfig,
    k_shot_indices,
    load_prompt,
    regulated_meta_step,
    save_prompt,
    train_prompt,
)
from clipforge.evaluation.templates import load_templates
from clipforge.models import CLIP
from clipforge.models.io import save_model_dir

from synthetic import COLORS, SHAPES, draw
from tiny_clip import micro_config

CLASSES = ["red circle", "blue square", "green triangle"]
QUIET = EncodeConfig(batch_size=64, workers=0, progress=False)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def micro_model(seed=0):
    captions = [
        f"a {style} of a {color} {shape}."
        for style in ("photo", "drawing", "emoji")
        for color in COLORS
        for shape in SHAPES
    ] + ["x x x"]
    tokenizer = Tokenizer.train(captions, vocab_size=300, context_length=16, min_frequency=1)
    config = micro_config(tokenizer, context_length=16)
    torch.manual_seed(seed)
    model = CLIP(config)
    model.init_weights()
    return model, tokenizer


@pytest.fixture(scope="module")
def micro(tmp_path_factory):
    model, tokenizer = micro_model()
    directory = save_model_dir(tmp_path_factory.mktemp("model"), model, tokenizer)
    return clipforge.load(directory), directory


def make_folder(root, per_class, offset=0):
    for name in CLASSES:
        color, shape = name.split()
        folder = root / name.replace(" ", "_")
        folder.mkdir(parents=True)
        for index in range(per_class):
            draw(color, shape, jitter=(index + offset) % 4).save(folder / f"{index}.png")
    return root


def run_cli(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


# --- the learner -----------------------------------------------------------------------------


def test_forward_embeddings_equals_forward(micro):
    (model, _, tokenizer), _ = micro
    ids = tokenizer(["a photo of a red circle.", "a blue square", "x"])
    tower = model.text
    with torch.no_grad():
        direct = tower(ids)
        via_embeddings = tower.forward_embeddings(
            tower.token_embedding(ids), tower.pool_positions(ids)
        )
    torch.testing.assert_close(via_embeddings, direct, atol=1e-5, rtol=1e-5)


def test_no_context_with_hand_templates_is_zero_shot(micro):
    (model, _, tokenizer), _ = micro
    templates = load_templates()
    learner = PromptLearner(model.text, tokenizer, CLASSES, templates, n_ctx=0)
    assert learner.describe() == list(templates)
    images = F.normalize(torch.randn(5, 32, generator=torch.Generator().manual_seed(0)), dim=-1)
    with torch.no_grad():
        learnt = model.scale() * images @ learner.class_weights().T
    zero_shot = (
        model.scale() * images @ build_classifier(model, tokenizer, CLASSES, templates, QUIET).T
    )
    torch.testing.assert_close(learnt, zero_shot, atol=1e-4, rtol=1e-5)


def test_context_sits_before_the_class_name(micro):
    (model, _, tokenizer), _ = micro
    learner = PromptLearner(model.text, tokenizer, CLASSES, ("a photo of a {c}.",), n_ctx=2)
    prompt = tokenizer(["a photo of a red circle."])[0]
    row = learner.ids[0]
    start = int(learner.slots[0, 0])
    assert learner.slots[0].tolist() == [start, start + 1]
    assert torch.equal(row[:start], prompt[:start])  # "[SOT] a photo of a"
    assert torch.equal(row[start + 2 : start + 2 + 4], prompt[start : start + 4])  # "red circle."
    assert int(learner.pool_at[0]) == int(model.text.eos_positions(prompt[None])[0]) + 2
    with pytest.raises(ValueError, match="does not fit the text context"):
        PromptLearner(model.text, tokenizer, CLASSES, ("a photo of a {c}.",), n_ctx=12)


def test_only_the_context_changes(micro):
    (model, _, tokenizer), _ = micro
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    learner = PromptLearner(model.text, tokenizer, CLASSES, n_ctx=3)
    assert list(learner.state_dict()) == ["ctx"] and learner.ctx.shape == (3, 32)
    start = learner.ctx.detach().clone()
    features = F.normalize(torch.randn(2, 6, 32), dim=-1)
    train_prompt(model, learner, features, [0, 1, 2, 0, 1, 2], PromptTuningConfig(steps=3))
    assert not torch.equal(learner.ctx, start)
    after = model.state_dict()
    assert all(torch.equal(before[name], after[name]) for name in before)
    assert all(parameter.requires_grad for parameter in model.parameters())  # restored


def test_coop_beats_templates_on_a_separable_case(micro):
    """Images whose features are the class weights of a hidden context (plus noise): learnable
    by a shared context, and far from what the hand templates give."""
    (model, _, tokenizer), _ = micro
    generator = torch.Generator().manual_seed(3)
    teacher = PromptLearner(model.text, tokenizer, CLASSES, n_ctx=4, generator=generator)
    with torch.no_grad():
        teacher.ctx.mul_(50)
        targets = teacher.class_weights()  # [3, 32]
    labels = torch.arange(3).repeat(10)
    images = F.normalize(targets[labels] + 0.05 * torch.randn(30, 32, generator=generator), dim=-1)

    def accuracy(weights):
        return ((images[6:] @ weights.T).argmax(1) == labels[6:]).float().mean().item()

    baseline = accuracy(build_classifier(model, tokenizer, CLASSES, load_templates(), QUIET))
    learner = PromptLearner(model.text, tokenizer, CLASSES, n_ctx=4)
    config = PromptTuningConfig(steps=30, lr=0.05, regulation="none", views=1)
    losses = train_prompt(model, learner, images[None, :6], labels[:6].tolist(), config)
    with torch.no_grad():
        learnt = accuracy(learner.class_weights())
    assert losses[-1] < losses[0]
    assert learnt > baseline and learnt >= 0.9, (learnt, baseline)


def test_class_specific_context_and_word_init(micro):
    (model, _, tokenizer), _ = micro
    learner = PromptLearner(
        model.text, tokenizer, CLASSES, class_specific=True, ctx_init="a photo of a"
    )
    words = tokenizer(["a photo of a"])[0][1:5]
    assert learner.n_ctx == 4 and learner.ctx.shape == (3, 4, 32)
    torch.testing.assert_close(learner.ctx[1], model.text.token_embedding.weight[words])
    # initialised from "a photo of a", "{c}." is the hand prompt "a photo of a {c}."
    hand = build_classifier(model, tokenizer, CLASSES, ("a photo of a {c}.",), QUIET)
    with torch.no_grad():
        torch.testing.assert_close(learner.class_weights(), hand, atol=1e-4, rtol=1e-5)


# --- GRAM -------------------------------------------------------------------------------------


@pytest.mark.parametrize("second_order", [False, True])
def test_gram_step_hand_checked(second_order):
    """L_S = ½‖θ − a‖², L_Q = ½‖θ − b‖², θ = 0, a = (1, 1), b = (1, −1), α = ½, φ = 1:
    g_S = (−1, −1), θ' = θ − αφ⊙g_S = (½, ½), ∇L_Q(θ') = θ' − b = (−½, 3/2).
    ∇_φ = ∇L_Q(θ') ⊙ (−α g_S) = (−¼, ¾): the gate opens where support and query agree (1st
    coordinate) and closes where they disagree. ∇_θ = (I − αφ ∂g_S/∂θ) ∇L_Q(θ') = ½ (−½, 3/2)
    with second order, (−½, 3/2) with first order; plain CoOp on the support: (−1, −1)."""
    a, b = torch.tensor([1.0, 1.0]), torch.tensor([1.0, -1.0])
    theta = torch.zeros(2, requires_grad=True)
    gate = torch.ones(2, requires_grad=True)
    support, query = regulated_meta_step(
        theta,
        gate,
        lambda t: 0.5 * ((t - a) ** 2).sum(),
        lambda t: 0.5 * ((t - b) ** 2).sum(),
        inner_lr=0.5,
        second_order=second_order,
    )
    assert support.item() == pytest.approx(1.0) and query.item() == pytest.approx(1.25)
    torch.testing.assert_close(gate.grad, torch.tensor([-0.25, 0.75]))
    expected = torch.tensor([-0.25, 0.75]) if second_order else torch.tensor([-0.5, 1.5])
    torch.testing.assert_close(theta.grad, expected)
    plain = torch.zeros(2, requires_grad=True)
    (0.5 * ((plain - a) ** 2).sum()).backward()
    assert not torch.allclose(theta.grad, plain.grad)


def test_gram_changes_the_prompt_update(micro):
    (model, _, tokenizer), _ = micro
    features = F.normalize(
        torch.randn(3, 6, 32, generator=torch.Generator().manual_seed(1)), dim=-1
    )
    contexts = {}
    for regulation in ("none", "gram"):
        learner = PromptLearner(
            model.text, tokenizer, CLASSES, n_ctx=2, generator=torch.Generator().manual_seed(0)
        )
        config = PromptTuningConfig(steps=2, lr=0.01, regulation=regulation, views=3)
        train_prompt(model, learner, features, [0, 1, 2] * 2, config)
        contexts[regulation] = learner.ctx.detach()
    assert not torch.allclose(contexts["none"], contexts["gram"])


# --- shots, files, CLI -------------------------------------------------------------------------


def test_k_shot_sampling():
    labels = [0] * 5 + [1] * 3 + [2] + [None] * 2
    rows = k_shot_indices(labels, 2, seed=0)
    picked = [labels[row] for row in rows]
    assert picked.count(0) == 2 and picked.count(1) == 2 and picked.count(2) == 1
    assert None not in picked and len(set(rows)) == len(rows)
    assert rows == k_shot_indices(labels, 2, seed=0)
    assert {tuple(k_shot_indices(labels, 2, seed=s)) for s in range(6)} != {tuple(rows)}
    assert len(k_shot_indices(labels, 3, seed=1)) == 3 + 3 + 1  # class 2 has only one
    with pytest.raises(ValueError, match="≥ 1"):
        k_shot_indices(labels, 0)


def test_saved_prompt_round_trips_and_refuses_other_models(micro, tmp_path):
    (model, _, tokenizer), _ = micro
    learner = PromptLearner(model.text, tokenizer, CLASSES, n_ctx=3, class_specific=True)
    path = save_prompt(tmp_path / "p", learner, model, "micro", {"shots": 1})
    info = json.loads((tmp_path / "p.json").read_text())
    assert info["class_names"] == CLASSES and info["n_ctx"] == 3 and info["context_length"] == 16
    loaded = load_prompt(tmp_path / "p.json", model, tokenizer, CLASSES)
    assert torch.equal(loaded.ctx, learner.ctx) and torch.equal(loaded.ids, learner.ids)
    other, _ = micro_model(seed=1)
    with pytest.raises(ValueError, match="learnt on model 'micro'"):
        load_prompt(path, other, tokenizer, CLASSES)
    with pytest.raises(ValueError, match="other class names"):
        load_prompt(path, model, tokenizer, CLASSES[:2])


def test_cli_curve_and_eval_with_the_prompt(micro, tmp_path, capsys):
    (_, _, _), directory = micro
    train = make_folder(tmp_path / "train", 3)
    test = make_folder(tmp_path / "test", 2, offset=3)
    out = tmp_path / "out"
    common = ["--workers", "0", "--no-progress", "--device", "cpu"]
    code, stdout, err = run_cli(
        [
            "adapt",
            "prompt",
            "--model",
            str(directory),
            "--data",
            str(train),
            "--eval-data",
            str(test),
            "--shots",
            "2,1",
            "--steps",
            "3",
            "--views",
            "2",
            "--n-ctx",
            "2",
            "--out",
            str(out),
            *common,
        ],
        capsys,
    )
    assert code == 0, err
    curve = json.loads((out / "curve.json").read_text())
    assert [p["shots"] for p in curve["curve"]] == [1, 2]
    assert [p["num_train"] for p in curve["curve"]] == [3, 6]
    assert curve["method"] == "coop+gram" and set(curve["baseline"]["metrics"]) >= {"acc1"}
    assert (out / "curve.png").stat().st_size > 1000 and "hand templates" in stdout
    code, _, err = run_cli(
        [
            "eval",
            "zeroshot",
            "--model",
            str(directory),
            "--data",
            str(test),
            "--prompt",
            str(out / "prompt-2shot.safetensors"),
            "--json",
            str(tmp_path / "zs.json"),
            *common,
        ],
        capsys,
    )
    assert code == 0, err
    result = json.loads((tmp_path / "zs.json").read_text())
    assert result["metrics"]["acc1"] == pytest.approx(curve["curve"][1]["metrics"]["acc1"])
    assert result["templates"] == ["[V]×2 {c}."]


@pytest.mark.parametrize("case", ["zero shots", "other classes", "prompt and templates"])
def test_cli_bad_input(case, micro, tmp_path, capsys):
    (model, _, tokenizer), directory = micro
    data = make_folder(tmp_path / "data", 1)
    common = ["--workers", "0", "--no-progress", "--device", "cpu"]
    if case == "zero shots":
        argv = [
            "adapt",
            "prompt",
            "--model",
            str(directory),
            "--data",
            str(data),
            "--eval-data",
            str(data / ".."),
            "--shots",
            "0,1",
            "--out",
            str(tmp_path / "o"),
        ]
        named = "--shots '0,1'"
    else:
        learner = PromptLearner(model.text, tokenizer, ["cat", "dog", "fish"], n_ctx=1)
        prompt = save_prompt(tmp_path / "p", learner, model, "micro", {})
        extra = ["--templates", str(prompt)] if case == "prompt and templates" else []
        argv = [
            "eval",
            "zeroshot",
            "--model",
            str(directory),
            "--data",
            str(data),
            "--prompt",
            str(prompt),
            *extra,
        ]
        named = str(tmp_path / "p")
    code, _, err = run_cli([*argv, *common], capsys)
    assert code == 2 and named in err and len(err.strip().splitlines()) == 1, err


def test_held_out_data_defaults_to_val_and_is_never_the_training_data():
    from clipforge.cli.adapt import held_out_spec

    assert held_out_spec("builtin:emoji", None) == "builtin:emoji?split=val"
    assert held_out_spec("folder_a", "folder_b") == "folder_b"
    with pytest.raises(ValueError, match="--data folder_a: give --eval-data"):
        held_out_spec("folder_a", None)
    with pytest.raises(ValueError, match="is the training data"):
        held_out_spec("builtin:emoji?split=val", None)
