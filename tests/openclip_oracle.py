"""OpenCLIP's own code as a test oracle, loaded from the installed package without its imports.

``make test`` installs open-clip-torch with --no-deps: its package ``__init__`` and optional towers
need torchvision, timm and transformers, so the modules are loaded from their files — the model
under stubs for those (the ViT + text Transformer never touch them), removed again afterwards.
clipforge itself never imports open_clip.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


def openclip_root() -> Path:
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        pytest.fail("open-clip-torch is not installed (make test installs it with --no-deps)")
    return Path(list(spec.submodule_search_locations)[0])


def openclip_model_module() -> types.ModuleType:
    """``open_clip.model`` imported with torchvision / HF / timm towers stubbed, stubs removed."""
    root = openclip_root()
    package = types.ModuleType("open_clip")
    package.__path__ = [str(root)]
    stubs = {"open_clip": package}
    for name, attribute in [
        ("open_clip.hf_model", "HFTextEncoder"),
        ("open_clip.timm_model", "TimmModel"),
        ("torchvision.ops.misc", "FrozenBatchNorm2d"),
    ]:
        stubs[name] = types.ModuleType(name)
        setattr(stubs[name], attribute, type(attribute, (), {}))
    stubs["torchvision"], stubs["torchvision.ops"] = (
        types.ModuleType("torchvision"),
        types.ModuleType("torchvision.ops"),
    )
    stubs["torchvision"].ops, stubs["torchvision.ops"].misc = (
        stubs["torchvision.ops"],
        stubs["torchvision.ops.misc"],
    )
    assert not any(name in sys.modules for name in stubs)
    sys.modules.update(stubs)
    try:
        return importlib.import_module("open_clip.model")
    finally:
        for name in list(sys.modules):
            if name.split(".")[0] in ("open_clip", "torchvision"):
                del sys.modules[name]


def openclip_tokenizer_module() -> types.ModuleType:
    """``open_clip/tokenizer.py`` (needs ftfy, regex; no package import)."""
    path = openclip_root() / "tokenizer.py"
    module_spec = importlib.util.spec_from_file_location("openclip_tokenizer_oracle", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def torchvision_eval_transform(image: Image.Image, size: int) -> torch.Tensor:
    """OpenCLIP's eval preprocessing for ``resize_mode="shortest"`` — torchvision's
    ``Resize(size, BICUBIC)``, ``CenterCrop(size)``, ``ToTensor``, ``Normalize(OpenAI)`` — with
    torchvision's own arithmetic for PIL images (torchvision is not installed here)."""
    width, height = image.size
    short, long = (width, height) if width <= height else (height, width)
    new_long = int(size * long / short)  # torchvision truncates
    new_w, new_h = (size, new_long) if width <= height else (new_long, size)
    if (new_w, new_h) != (width, height):
        image = image.resize((new_w, new_h), Image.Resampling.BICUBIC)
    top, left = int(round((new_h - size) / 2.0)), int(round((new_w - size) / 2.0))
    image = image.crop((left, top, left + size, top + size)).convert("RGB")
    pixels = torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).permute(2, 0, 1)
    pixels = pixels.float().div(255)
    mean, std = torch.tensor(OPENAI_MEAN)[:, None, None], torch.tensor(OPENAI_STD)[:, None, None]
    return (pixels - mean) / std
