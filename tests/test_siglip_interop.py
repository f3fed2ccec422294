"""Hugging Face SigLIP directories in: parity with transformers' SiglipModel, import, refusals."""

from __future__ import annotations

import json

import pytest
import torch

transformers = pytest.importorskip("transformers")

import clipforge  # noqa: E402
from clipforge.cli.main import main  # noqa: E402
from clipforge.interop.hf import convert_to_hf  # noqa: E402
from clipforge.models import create_model, model_config  # noqa: E402
from clipforge.models.io import load_model_dir  # noqa: E402

TOL = 1e-5


def siglip_config(**vision_overrides):
    """Tiny SiglipModel: vision width 32 (= the embedding), text width 48 with a 48 → 32 head."""
    vision = dict(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        image_size=32,
        patch_size=8,
    )
    vision.update(vision_overrides)
    text = dict(
        hidden_size=48,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=4,
        vocab_size=100,
        max_position_embeddings=16,
        projection_size=32,
        pad_token_id=1,
        eos_token_id=1,
    )
    return transformers.SiglipConfig(text_config=text, vision_config=vision)


@pytest.fixture(scope="module")
def siglip_dir(tmp_path_factory):
    torch.manual_seed(0)
    hf_model = transformers.SiglipModel(siglip_config()).eval()
    with torch.no_grad():  # HF initialises t = b = 0: give them values a mix-up would show
        hf_model.logit_scale.fill_(2.3)
        hf_model.logit_bias.fill_(-7.5)
        for name, param in hf_model.named_parameters():  # non-trivial norms and biases too
            if "norm" in name or name.endswith("bias") or "probe" in name:
                param.add_(torch.randn_like(param) * 0.1)
    directory = tmp_path_factory.mktemp("siglip")
    hf_model.save_pretrained(directory)
    transformers.SiglipImageProcessor(size={"height": 32, "width": 32}).save_pretrained(directory)
    return directory


def inputs():
    generator = torch.Generator().manual_seed(3)
    pixels = torch.randn(3, 3, 32, 32, generator=generator)
    ids = torch.randint(2, 100, (4, 16), generator=generator)
    ids[:2, 6:] = 1  # SigLIP pads to the full context with </s> (id 1) and pools the last one
    return pixels, ids


def hf_reference(directory, pixels, ids):
    hf_model = transformers.SiglipModel.from_pretrained(directory).eval()
    with torch.no_grad():
        image = hf_model.get_image_features(pixel_values=pixels)
        text = hf_model.get_text_features(input_ids=ids)
        logits = hf_model(input_ids=ids, pixel_values=pixels).logits_per_image
    pooled = lambda out: getattr(out, "pooler_output", out)  # noqa: E731 (transformers 5 vs 4)
    return pooled(image), pooled(text), logits


def test_load_matches_transformers_siglip(siglip_dir):
    model, preprocess, tokenizer = clipforge.load(siglip_dir)
    config = model.config
    assert tokenizer is None and config.activation == "gelu_tanh" and config.embed_dim == 32
    assert (config.vision.pooling, config.vision.patch_bias, config.vision.pre_norm) == (
        "map",
        True,
        False,
    )
    assert (config.text.causal, config.text.pool_at, config.text.projection_bias) == (
        False,
        "last",
        True,
    )
    pre = preprocess.preprocess
    assert (pre.image_size, pre.resize_mode, pre.mean, pre.std) == (
        32,
        "squash",
        (0.5, 0.5, 0.5),
        (0.5, 0.5, 0.5),
    )
    pixels, ids = inputs()
    image_ref, text_ref, logits_ref = hf_reference(siglip_dir, pixels, ids)
    with torch.no_grad():
        image, text = (
            model.encode_image(pixels, normalize=False),
            model.encode_text(ids, normalize=False),
        )  # raw, as HF's
        out = model(pixels, ids)
        logits = out.logit_scale * out.image_embeds @ out.text_embeds.T + out.logit_bias
    assert image.shape == (3, 32) and text.shape == (4, 32)
    assert torch.allclose(image, image_ref, atol=TOL)
    assert torch.allclose(text, text_ref, atol=TOL)
    assert torch.allclose(logits, logits_ref, atol=TOL)
    assert model.logit_scale.item() == pytest.approx(2.3) and model.scale().item() > 9.9


def test_text_tower_sees_the_whole_caption_both_ways(siglip_dir):
    """Non-causal: changing the first token changes the pooled last position, and the padding
    is attended (no causal shortcut may cut it off)."""
    model, _, _ = clipforge.load(siglip_dir)
    _, ids = inputs()
    changed = ids.clone()
    changed[:, 0] = (ids[:, 0] + 1) % 100
    with torch.no_grad():
        assert not torch.allclose(model.encode_text(ids), model.encode_text(changed))
        _, tokens, _ = model.encode_text(ids, normalize=False, return_tokens=True)
        assert tokens.shape == (4, 16, 32)


def test_cli_convert_from_hf_siglip(siglip_dir, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["convert", "--from-hf", str(siglip_dir), "--out", str(out)]) == 0
    assert json.loads((out / "config.json").read_text())["model"]["vision"]["pooling"] == "map"
    converted, _ = load_model_dir(out)
    model, _, _ = clipforge.load(siglip_dir)
    assert converted.config == model.config
    for key, value in model.state_dict().items():
        assert torch.equal(converted.state_dict()[key], value)
    pixels, ids = inputs()
    image_ref, text_ref, _ = hf_reference(siglip_dir, pixels, ids)
    with torch.no_grad():
        assert torch.allclose(converted.encode_image(pixels, normalize=False), image_ref, atol=TOL)
        assert torch.allclose(converted.encode_text(ids, normalize=False), text_ref, atol=TOL)
    # a SigLIP model has no CLIPModel form: the export names the field
    assert main(["convert", "--to-hf", str(out), "--out", str(tmp_path / "hf")]) == 2
    assert "logit bias" in capsys.readouterr().err


def rewrite_config(siglip_dir, tmp_path, edit):
    directory = tmp_path / "variant"
    directory.mkdir()
    for path in siglip_dir.iterdir():
        (directory / path.name).write_bytes(path.read_bytes())
    config = json.loads((directory / "config.json").read_text())
    edit(config)
    (directory / "config.json").write_text(json.dumps(config))
    return directory


@pytest.mark.parametrize(
    "edit, field",
    [
        (lambda c: c.update(model_type="siglip2"), "model_type 'siglip2'"),
        (lambda c: c["vision_config"].update(vision_use_head=False), "vision_use_head"),
        (lambda c: c["text_config"].update(projection_size=48), "text_config.projection_size"),
        (lambda c: c["text_config"].update(hidden_act="relu"), "text_config.hidden_act"),
    ],
)
def test_unsupported_variants_are_refused_naming_the_field(
    siglip_dir, tmp_path, capsys, edit, field
):
    directory = rewrite_config(siglip_dir, tmp_path, edit)
    with pytest.raises(ValueError, match=field.replace(".", r"\.")) as error:
        clipforge.load(directory)
    assert "\n" not in str(error.value)
    out = tmp_path / "out"
    assert main(["convert", "--from-hf", str(directory), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("clipforge convert: error:") and field in err and "\n" not in err
    assert not out.exists()


def test_clip_defaults_keep_state_dict_names_and_exports(tmp_path):
    """The new options default to CLIP: the same tensors as before (no probe, class token
    kept), and a model that turns one on cannot be exported to CLIPModel."""
    keys = set(create_model("tiny").state_dict())
    assert "visual.class_embedding" in keys and "visual.ln_pre.weight" in keys
    assert not any(k.startswith("visual.pool.") or k == "visual.patch_embed.bias" for k in keys)
    assert "text.proj.bias" not in keys
    config = model_config("tiny")
    config.vision.width, config.vision.layers, config.vision.image_size = 32, 1, 16
    config.text.width, config.text.layers, config.text.vocab_size = 32, 1, 50
    config.text.causal = False
    from clipforge.models.io import save_model_dir

    source = save_model_dir(tmp_path / "m", create_model(config), None)
    with pytest.raises(ValueError, match="text.causal False"):
        convert_to_hf(source, tmp_path / "hf")
