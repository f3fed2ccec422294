"""OpenCLIP's Python API: create_model_and_transforms, get_tokenizer, list_models, normalize=."""

from __future__ import annotations

import ast
import random
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image

import clipforge
from clipforge.data.tokenizer import Tokenizer
from clipforge.interop.openclip_config import OPENCLIP_MODELS
from clipforge.models import MODELS, create_model, model_config
from clipforge.models.io import save_model_dir

SRC = Path(__file__).resolve().parents[1] / "src" / "clipforge"
CAPTIONS = ["a red apple", "a photo of a cat", "two dogs in the snow", "a blue square"] * 8


def small_config(vocab_size: int):
    config = model_config("tiny")
    config.name, config.embed_dim = "tiny-test", 32
    config.vision.image_size = config.preprocess.image_size = 16
    config.vision.patch_size, config.vision.width, config.vision.layers = 8, 32, 1
    config.vision.heads = config.text.heads = 2
    config.text.width, config.text.layers = 32, 1
    config.text.context_length, config.text.vocab_size = 8, vocab_size
    return config


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    tokenizer = Tokenizer.train(CAPTIONS, vocab_size=300, context_length=8, min_frequency=1)
    config = small_config(tokenizer.vocab_size)
    config.text.eos_token_id, config.text.pad_token_id = tokenizer.eot_id, tokenizer.pad_id
    torch.manual_seed(0)
    directory = tmp_path_factory.mktemp("oapi") / "model"
    save_model_dir(directory, create_model(config), tokenizer)
    return directory


def picture(seed: int = 0) -> Image.Image:
    generator = torch.Generator().manual_seed(seed)
    pixels = torch.randint(0, 256, (40, 30, 3), generator=generator, dtype=torch.uint8)
    return Image.fromarray(pixels.numpy())


def test_list_models_is_the_registry_and_the_openclip_architectures():
    names = clipforge.list_models()
    assert names == sorted(set(MODELS) | set(OPENCLIP_MODELS))
    assert {"tiny", "ViT-B-32", "ViT-L-14", "ViT-B-32-quickgelu", "ViT-H-14"} <= set(names)


def test_openclip_names_work_as_in_open_clip(tmp_path):
    """open_clip.get_tokenizer("ViT-B-32") and an OpenCLIP-only name with an epoch_N.pt."""
    tokenizer = clipforge.get_tokenizer("ViT-B-32-quickgelu")
    ids = tokenizer(["a diagram", "a dog"])
    assert ids.shape == (2, 77) and ids[0, 0].item() == 49406  # OpenAI's start-of-text
    assert (ids[0] == 49407).any()  # and end-of-text
    model, _, preprocess_val = clipforge.create_model_and_transforms("ViT-B-32-quickgelu")
    assert model.config.activation == "quick_gelu" and preprocess_val.preprocess.image_size == 224
    state = {f"module.{key}": value for key, value in _openclip_state(model).items()}
    torch.save({"epoch": 1, "state_dict": state}, tmp_path / "epoch_1.pt")
    loaded, _, _ = clipforge.create_model_and_transforms(
        "ViT-B-32-quickgelu", pretrained=tmp_path / "epoch_1.pt"
    )
    pixels = preprocess_val(picture())[None]
    with torch.no_grad():
        assert torch.equal(loaded.encode_image(pixels), model.encode_image(pixels))


def test_create_model_and_transforms_from_a_model_directory(model_dir):
    model, preprocess_train, preprocess_val = clipforge.create_model_and_transforms(str(model_dir))
    loaded, eval_transform, _ = clipforge.load(model_dir)
    assert preprocess_val == eval_transform and not preprocess_val.train
    assert torch.equal(preprocess_val(picture()), eval_transform(picture()))
    assert preprocess_train.train and preprocess_train.preprocess == eval_transform.preprocess
    image = picture()
    train_a = preprocess_train(image, random.Random(1))
    train_b = preprocess_train(image, random.Random(2))
    assert train_a.shape == train_b.shape == (3, 16, 16) and not torch.equal(train_a, train_b)
    flat = Image.new("RGB", (40, 30), (200, 40, 10))  # any crop of it: the same normalised pixels
    assert torch.allclose(preprocess_train(flat, random.Random(0)), preprocess_val(flat))
    for key, value in loaded.state_dict().items():
        assert torch.equal(model.state_dict()[key], value)
    pixels = preprocess_val(image)[None]
    assert model.encode_image(pixels, normalize=True).shape == (1, 32)


def test_pretrained_with_a_registered_name(tmp_path):
    torch.manual_seed(1)
    reference = create_model("tiny")
    save_model_dir(tmp_path / "run", reference, None)
    model, _, preprocess_val = clipforge.create_model_and_transforms(
        "tiny", pretrained=tmp_path / "run"
    )
    assert preprocess_val.preprocess == reference.config.preprocess
    # a bare weights file, no config.json beside it: read with the registered name's config
    (tmp_path / "bare").mkdir()
    shutil.copy(tmp_path / "run" / "model.safetensors", tmp_path / "bare" / "w.safetensors")
    bare, _, _ = clipforge.create_model_and_transforms(
        "tiny", pretrained=str(tmp_path / "bare" / "w.safetensors")
    )
    for key, value in reference.state_dict().items():
        assert torch.equal(model.state_dict()[key], value)
        assert torch.equal(bare.state_dict()[key], value)
    fresh, _, _ = clipforge.create_model_and_transforms("tiny")  # random init, same shapes
    assert fresh.config.name == "tiny" and not fresh.training


def test_pretrained_of_another_architecture_is_refused(model_dir, tmp_path):
    config = small_config(300)
    config.name = "tiny"  # a run of the "tiny" size with its own sizes overridden: accepted
    save_model_dir(tmp_path / "run", create_model(config), None)
    model, _, _ = clipforge.create_model_and_transforms("tiny", pretrained=tmp_path / "run")
    assert model.config == config
    with pytest.raises(ValueError) as error:
        clipforge.create_model_and_transforms("ViT-B-32", pretrained=model_dir)
    message = str(error.value)
    assert "\n" not in message and "'tiny-test'" in message and "'ViT-B-32'" in message


def test_unknown_model_name_lists_the_known_ones(tmp_path):
    for call in (
        lambda: clipforge.create_model_and_transforms("ViT-X-99"),
        lambda: clipforge.create_model_and_transforms("ViT-X-99", pretrained=tmp_path),
        lambda: clipforge.get_tokenizer("ViT-X-99"),
    ):
        with pytest.raises(ValueError) as error:
            call()
        message = str(error.value)
        assert "\n" not in message and "'ViT-X-99'" in message
        assert all(name in message for name in MODELS.names())
    with pytest.raises(FileNotFoundError, match="missing-dir"):
        clipforge.create_model_and_transforms("tiny", pretrained=tmp_path / "missing-dir")


def test_get_tokenizer(model_dir, tmp_path):
    tokenizer = clipforge.get_tokenizer(str(model_dir))
    _, _, loaded = clipforge.load(model_dir)
    ids = tokenizer(["a red apple", "a cat"])
    assert ids.dtype == torch.long and ids.shape == (2, 8)
    assert torch.equal(ids, loaded(["a red apple", "a cat"]))
    assert tokenizer("a red apple").shape == (1, 8)
    assert clipforge.get_tokenizer(model_dir, context_length=12)("a cat").shape == (1, 12)
    with pytest.raises(ValueError, match="ships no tokenizer.*directory"):
        clipforge.get_tokenizer("tiny")
    save_model_dir(tmp_path / "no-tok", create_model(small_config(300)), None)
    with pytest.raises(ValueError, match="no tokenizer files"):
        clipforge.get_tokenizer(tmp_path / "no-tok")


def test_normalize_keyword(model_dir):
    model, preprocess_train, preprocess_val = clipforge.create_model_and_transforms(str(model_dir))
    tokenizer = clipforge.get_tokenizer(model_dir)
    pixels = torch.stack([preprocess_val(picture(0)), preprocess_val(picture(1))])
    ids = tokenizer(["a red apple", "a cat"])
    with torch.no_grad():
        raw_image, raw_text = model.visual(pixels), model.text(ids)  # the towers' projections
        # default True (clipforge's unit vectors; OpenCLIP code that normalises again is unchanged)
        assert torch.equal(model.encode_image(pixels), model.encode_image(pixels, normalize=True))
        assert torch.equal(model.encode_text(ids), model.encode_text(ids, normalize=True))
        assert torch.equal(model.encode_image(pixels, normalize=False), raw_image)
        assert torch.equal(model.encode_text(ids, normalize=False), raw_text)
        unit_image = model.encode_image(pixels, normalize=True)
        unit_text = model.encode_text(ids, normalize=True)
        assert not torch.allclose(raw_image.norm(dim=-1), torch.ones(2), atol=1e-3)
        assert torch.allclose(unit_image.norm(dim=-1), torch.ones(2), atol=1e-6)
        assert torch.allclose(unit_text.norm(dim=-1), torch.ones(2), atol=1e-6)
        assert torch.allclose(unit_image, raw_image / raw_image.norm(dim=-1, keepdim=True))
        pooled, patches = model.encode_image(pixels, normalize=True, return_tokens=True)
        assert torch.allclose(pooled, unit_image, atol=1e-6) and patches.shape == (2, 4, 32)
    with pytest.raises(TypeError):  # OpenCLIP's positional normalize would mean return_tokens
        model.encode_image(pixels, True)


def test_every_caller_in_clipforge_says_normalize():
    """Each call inside clipforge states what it needs (unit vectors or raw projections), so it
    does not hang on the default, which differs from OpenCLIP's (False)."""
    implicit = []
    for path in sorted(SRC.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("encode_image", "encode_text")
                and not any(keyword.arg == "normalize" for keyword in node.keywords)
            ):
                implicit.append(f"{path.relative_to(SRC)}:{node.lineno}")
    assert not implicit, f"encode_image/encode_text without normalize=: {implicit}"


def _openclip_state(model):
    """The model's weights under OpenCLIP's names, as open_clip_train saves them."""
    from clipforge.interop.openclip_weights import to_openclip_state_dict

    return to_openclip_state_dict(model.state_dict(), model.config)
