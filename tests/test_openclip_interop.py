"""OpenCLIP weights in and out: parity with OpenCLIP's own model code (:mod:`openclip_oracle`) on
OpenCLIP's own random initialisation, at a reduced size and at ViT-B-32's true size, and zero-shot
top-1 with OpenCLIP's preprocessing. Nothing is downloaded.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import save_file

import clipforge
import clipforge.data.transforms
from clipforge.data.preprocess import PreprocessConfig
from clipforge.interop.openclip import load_openclip

from openclip_oracle import (
    OPENAI_MEAN,
    OPENAI_STD,
    openclip_model_module,
    openclip_root,
    openclip_tokenizer_module,
    torchvision_eval_transform,
)

SMALL_CFG = {  # a reduced ViT + text Transformer: milliseconds a forward
    "embed_dim": 32,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "head_width": 32, "patch_size": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 4, "layers": 2},
}
PROMPTS = ["a photo of a red square", "a photo of a blue circle", "a green stripe", "a dark sky"]


@pytest.fixture(scope="module")
def oc_model():
    return openclip_model_module()


def named_cfg(name: str) -> dict:
    """OpenCLIP's own JSON for ``name`` (from the installed package: their values, not ours)."""
    return json.loads((openclip_root() / "model_configs" / f"{name}.json").read_text())


def openclip_model(oc_model, cfg: dict, seed: int = 0):
    torch.manual_seed(seed)
    model_cfg = {k: v for k, v in cfg.items() if k != "custom_text"}
    cls = oc_model.CustomTextCLIP if cfg.get("custom_text") else oc_model.CLIP
    return cls(**model_cfg).eval()


def write_hub_dir(directory: Path, cfg: dict, state: dict, weights: str = "safetensors") -> Path:
    """OpenCLIP's hub layout, as ``open_clip.push_to_hf_hub.save_for_hf`` writes it."""
    directory.mkdir(parents=True, exist_ok=True)
    preprocess = {"mean": list(OPENAI_MEAN), "std": list(OPENAI_STD), "interpolation": "bicubic"}
    (directory / "open_clip_config.json").write_text(
        json.dumps({"model_cfg": cfg, "preprocess_cfg": preprocess})
    )
    tensors = {k: v.contiguous() for k, v in state.items()}
    if weights == "safetensors":
        save_file(tensors, str(directory / "open_clip_model.safetensors"))
    else:
        torch.save(tensors, directory / "open_clip_pytorch_model.bin")
    return directory


def save_train_checkpoint(path: Path, state: dict, ddp: bool = True) -> Path:
    """An ``open_clip_train`` checkpoint: epoch, name, state_dict (``module.`` under DDP) and
    optimizer state."""
    path.parent.mkdir(parents=True, exist_ok=True)
    prefix = "module." if ddp else ""
    checkpoint = {
        "epoch": 3,
        "name": "run",
        "state_dict": {prefix + k: v for k, v in state.items()},
        "optimizer": {"state": {0: {"step": torch.tensor(3.0)}}, "param_groups": [{"lr": 1e-3}]},
    }
    torch.save(checkpoint, path)
    return path


def assert_same_embeddings(ours, theirs, images, ids, atol=1e-5):
    """Raw projections and (so) L2-normalised embeddings of both towers within ``atol``."""
    with torch.no_grad():
        pairs = [
            (ours.encode_image(images, normalize=False), theirs.encode_image(images)),
            (ours.encode_text(ids, normalize=False), theirs.encode_text(ids)),
        ]
    for mine, want in pairs:
        torch.testing.assert_close(mine, want, atol=atol, rtol=0)
        torch.testing.assert_close(
            F.normalize(mine, dim=-1), F.normalize(want, dim=-1), atol=atol, rtol=0
        )


@pytest.mark.parametrize(
    "variant",
    [{}, {"quick_gelu": True}, {"custom_text": True}, {"quick_gelu": True, "ddp": False}],
    ids=["gelu", "quickgelu", "custom-text-layout", "no-module-prefix"],
)
def test_train_checkpoint_with_config_json_matches_openclip(oc_model, tmp_path, variant):
    cfg = {**SMALL_CFG, **{k: v for k, v in variant.items() if k != "ddp"}}
    theirs = openclip_model(oc_model, cfg)
    checkpoint = tmp_path / "logs" / "run" / "checkpoints" / "epoch_3.pt"
    save_train_checkpoint(checkpoint, theirs.state_dict(), ddp=variant.get("ddp", True))
    (tmp_path / "model.json").write_text(json.dumps(cfg))
    ours, tokenizer = load_openclip(checkpoint, model_config=tmp_path / "model.json")
    assert ours.config.activation == ("quick_gelu" if cfg.get("quick_gelu") else "gelu")
    images = torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    ids = tokenizer(["a diagram", "a photo of a dog, sitting", "ok"])
    assert_same_embeddings(ours, theirs, images, ids)
    # the same through clipforge.load with the config as the "name"
    model, _, _ = clipforge.load(tmp_path / "model.json", weights=checkpoint)
    assert_same_embeddings(model, theirs, images, ids)


@pytest.fixture(scope="module")
def vit_b_32(oc_model, tmp_path_factory):
    """OpenCLIP's ViT-B-32 at its true size (151 M parameters), in the hub layout."""
    cfg = named_cfg("ViT-B-32")
    theirs = openclip_model(oc_model, cfg, seed=3)
    directory = write_hub_dir(tmp_path_factory.mktemp("hub") / "vit-b-32", cfg, theirs.state_dict())
    return theirs, directory


def test_named_architecture_at_true_size_matches_openclip(vit_b_32):
    theirs, directory = vit_b_32
    model, preprocess, tokenizer = clipforge.load(directory)
    assert model.config.vision.heads == 12 and model.config.text.eos_token_id == 49407
    assert preprocess.preprocess.mean == OPENAI_MEAN and preprocess.preprocess.image_size == 224
    images = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    assert_same_embeddings(model, theirs, images, tokenizer(["a red car", "two dogs on grass"]))


def generated_images() -> list[Image.Image]:
    """Shapes and gradients at sizes that exercise the resize and crop (portrait, landscape,
    square, large enough for a multi-step reduction)."""
    rng = np.random.default_rng(0)
    images = []
    for i, (w, h) in enumerate(
        [
            (300, 240),
            (240, 320),
            (224, 224),
            (1000, 700),
            (333, 500),
            (800, 300),
            (257, 259),
            (640, 480),
        ]
    ):
        y, x = np.mgrid[0:h, 0:w]
        pixels = np.stack([x * 255 // w, y * 255 // h, np.full_like(x, 40 * i)], -1)
        x0, y0 = rng.integers(0, w // 2), rng.integers(0, h // 2)
        pixels[y0 : y0 + h // 3, x0 : x0 + w // 3] = rng.integers(0, 256, 3)
        pixels = pixels + rng.integers(0, 30, pixels.shape)
        images.append(Image.fromarray(pixels.clip(0, 255).astype(np.uint8)))
    return images


def test_eval_preprocessing_equals_openclips_pixel_for_pixel():
    """Resize (long side truncated, as torchvision) + centre crop + OpenAI mean/std: the same
    tensors as OpenCLIP's eval transform. (Left: the crop offset when the excess is 3 mod 4 px,
    which torchvision rounds half to even and HF / clipforge floor; JPEG draft decoding and
    PIL's reducing_gap on images over 6x the size.)"""
    preprocess = clipforge.data.transforms.eval_transform(PreprocessConfig())
    for image in generated_images():
        assert torch.equal(preprocess(image), torchvision_eval_transform(image, 224)), image.size


def test_zero_shot_top1_equals_openclip_with_its_preprocessing(vit_b_32, oc_model):
    theirs, directory = vit_b_32
    model, preprocess, tokenizer = clipforge.load(directory)
    their_tokenizer = openclip_tokenizer_module().SimpleTokenizer()
    images = generated_images()
    with torch.no_grad():
        ours_img = model.encode_image(torch.stack([preprocess(im) for im in images]))
        ours_txt = model.encode_text(tokenizer(PROMPTS))
        their_img = theirs.encode_image(
            torch.stack([torchvision_eval_transform(im, 224) for im in images]), normalize=True
        )
        their_txt = theirs.encode_text(their_tokenizer(PROMPTS), normalize=True)
    ours_top1 = (ours_img @ ours_txt.T).argmax(dim=1)
    their_top1 = (their_img @ their_txt.T).argmax(dim=1)
    assert ours_top1.tolist() == their_top1.tolist()
    assert len(set(their_top1.tolist())) > 1  # not one class for everything
