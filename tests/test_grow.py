"""GrowCLIP growth: same function after depth growth (exact) and width growth (exact for integer
multiples, close otherwise); the schedule; grown models save, load and train."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from clipforge.models import create_model, model_config
from clipforge.models.grow import (
    apply_grow_schedule,
    grow_model,
    grow_model_,
    insertion_points,
    validate_grow_schedule,
)
from clipforge.models.io import load_model_dir, save_model_dir
from clipforge.training.setup import set_dotted

from synthetic import micro_model_overrides


def micro(projection: str = "linear", layers: int = 2):
    config = model_config("tiny")
    for key, value in {
        **micro_model_overrides(),
        "text.vocab_size": 300,
        "vision.layers": layers,
        "text.layers": layers,
        "projection": projection,
    }.items():
        set_dotted(config, key, value)
    torch.manual_seed(0)
    model = create_model(config).eval()
    with torch.no_grad():  # non-trivial biases and LayerNorm affine, so copying them matters
        for name, parameter in model.named_parameters():
            if name.endswith("bias") or ".ln" in name or name.startswith(("visual.ln", "text.ln")):
                parameter.add_(0.1 * torch.randn_like(parameter))
    return model


def inputs():
    generator = torch.Generator().manual_seed(1)
    images = torch.randn(3, 3, 32, 32, generator=generator)
    text = torch.randint(3, 300, (3, 16), generator=generator)
    text[:, 9] = 2  # EOS
    text[:, 10:] = 0  # padding
    return images, text


def run(model):
    images, text = inputs()
    with torch.no_grad():
        return model(images, text, return_tokens=True)


@pytest.mark.parametrize("projection", ["linear", "mlp"])
@pytest.mark.parametrize("placement", ["interleave", "top"])
def test_depth_growth_preserves_the_function(projection, placement):
    model = micro(projection)
    before = run(model)
    grown = grow_model(model, depth={"vision": 2, "text": 3}, placement=placement)
    after = run(grown.eval())
    assert len(grown.visual.transformer.blocks) == grown.config.vision.layers == 4
    assert len(grown.text.transformer.blocks) == grown.config.text.layers == 5
    assert len(model.visual.transformer.blocks) == 2  # the original is untouched
    for name in ("image_embeds", "text_embeds", "image_tokens", "text_tokens"):
        assert torch.allclose(getattr(before, name), getattr(after, name), atol=1e-5), name


def test_insertion_points_spread_new_blocks():
    assert insertion_points(6, 2, "interleave") == [2, 4]
    assert insertion_points(2, 3, "interleave") == [0, 1, 2]
    assert insertion_points(4, 2, "top") == [4, 4]


@pytest.mark.parametrize("projection", ["linear", "mlp"])
def test_width_doubling_preserves_the_function_exactly(projection):
    model = micro(projection)
    before = run(model)
    grown = grow_model(model, width={"vision": 64, "text": 64}).eval()
    assert grown.config.vision.width == 64 and grown.config.vision.heads == 4  # head size kept
    assert grown.visual.transformer.blocks[0].mlp.fc1.out_features == 256
    after = run(grown)
    for name in ("image_embeds", "text_embeds", "image_tokens", "text_tokens"):
        assert torch.allclose(getattr(before, name), getattr(after, name), atol=1e-5), name


def test_non_multiple_width_growth_is_close():
    """32 → 48: channels get 1 or 2 copies, so LayerNorm statistics shift slightly."""
    model = micro()
    before = run(model)
    after = run(grow_model(model, depth={"vision": 1}, width={"vision": 48, "text": 48}).eval())
    for name in ("image_embeds", "text_embeds"):
        cosine = F.cosine_similarity(getattr(before, name), getattr(after, name), dim=-1)
        assert cosine.min() > 0.99, name
        assert not torch.allclose(getattr(before, name), getattr(after, name), atol=1e-6)


def test_grown_model_breaks_symmetry_and_learns_through_new_blocks():
    model = micro()
    grown = grow_model(model, depth={"vision": 1}, width={"vision": 64}).train()
    images, text = inputs()
    out = grown(images, text)
    (out.image_embeds @ out.text_embeds.T).diagonal().sum().backward()
    new_block = grown.visual.transformer.blocks[1]  # interleaved: after block 0
    assert new_block.mlp.fc2.weight.abs().sum() == 0  # identity at birth …
    assert new_block.mlp.fc2.weight.grad.abs().sum() > 0  # … but it learns
    rows = grown.visual.patch_embed.weight.grad.flatten(1)
    assert not torch.allclose(rows[:32], rows[32:])  # copies get different grads


def test_grown_model_saves_and_loads(tmp_path):
    model = micro()
    grown = grow_model(model, depth={"text": 1}, width={"vision": 64})
    save_model_dir(tmp_path / "grown", grown, None)
    loaded, _ = load_model_dir(tmp_path / "grown")
    assert loaded.config.vision.width == 64 and loaded.config.text.layers == 3
    before, after = run(grown.eval()), run(loaded)
    assert torch.allclose(before.image_embeds, after.image_embeds, atol=1e-6)


def test_apply_grow_schedule_fires_once_at_its_step_in_place():
    model = micro()
    before = run(model)
    schedule = [
        {"at_fraction": 0.5, "vision_layers": 2, "text_layers": 1},
        {"at_step": 7, "text_width": 64},
    ]
    text_tower = model.text
    assert apply_grow_schedule(model, schedule, 4, 10) is False
    assert apply_grow_schedule(model, schedule, 5, 10) is True  # round(0.5 · 10)
    assert model.config.vision.layers == 4 and model.config.text.layers == 3
    assert model.text is text_tower  # depth growth in place
    assert apply_grow_schedule(model, schedule, 6, 10) is False
    assert apply_grow_schedule(model, schedule, 7, 10) is True
    assert model.config.text.width == 64 and model.text.config.width == 64
    assert apply_grow_schedule(model, schedule, 5, None) is False  # fraction: total unknown
    after = run(model.eval())
    assert torch.allclose(before.text_embeds, after.text_embeds, atol=1e-5)
    assert torch.allclose(before.image_embeds, after.image_embeds, atol=1e-5)


def test_grow_rejects_bad_requests():
    model = micro()
    with pytest.raises(ValueError, match="unknown keys"):
        validate_grow_schedule([{"at_step": 1, "vision_layer": 2}])
    with pytest.raises(ValueError, match="neither"):
        validate_grow_schedule([{"vision_layers": 2}])
    with pytest.raises(ValueError, match="smaller"):
        grow_model_(model, width={"vision": 16})
    with pytest.raises(ValueError, match="head size"):
        grow_model_(model, width={"vision": 40})
    with pytest.raises(ValueError, match="unknown tower"):
        grow_model_(model, depth={"audio": 1})
