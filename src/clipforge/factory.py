"""OpenCLIP's factory API on top of :func:`clipforge.load`, for code written against ``open_clip``.

::

    model, preprocess_train, preprocess_val = clipforge.create_model_and_transforms(
        "ViT-B-32", pretrained="runs/mine")   # or an HF CLIP / SigLIP directory, a checkpoint
    tokenizer = clipforge.get_tokenizer("runs/mine")
    clipforge.list_models()  # ['ViT-B-16', 'ViT-B-32', 'ViT-L-14', 'small', 'tiny']

The names, argument order and return values are OpenCLIP's (``open_clip/factory.py``). What
differs, because clipforge models carry their own config and tokenizer:

- ``pretrained`` is a location, never a tag such as ``"laion2b_s34b_b79k"`` (no downloads): any
  path :func:`clipforge.load` reads. The architecture then comes from the weights' own config;
  ``model_name``, when a registered name, must be the config's name or have its tensor shapes
  (OpenCLIP fails the same way, at ``load_state_dict``). A bare weights file (no
  ``config.json`` beside it) is read with ``model_name``'s config.
- ``model_name`` may itself be such a location (as OpenCLIP's ``"hf-hub:org/name"``).
- :func:`get_tokenizer` needs the model's directory: registered names ship no vocabulary (a
  clipforge run trains its own BPE, stored with the weights).

Models come back in eval mode, as from :func:`clipforge.load` (clipforge towers have no dropout or
batch norm, so the mode changes no output; OpenCLIP leaves a fresh model in train mode).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from .data.openclip_tokenizer import openclip_tokenizer
from .data.tokenizer import Tokenizer
from .data.transforms import ImageTransform
from .interop.openclip_config import OPENCLIP_MODELS
from .loading import load, resolve_model_dir
from .models import CLIP, MODELS, create_model, model_config
from .models.io import CONFIG_FILE, FORMAT, is_model_dir

__all__ = ["create_model_and_transforms", "get_tokenizer", "list_models"]

TRAIN_CROP_SCALE = (0.8, 1.0)  # clipforge's training default (data.crop_scale); OpenCLIP: 0.9


def list_models() -> list[str]:
    """The architecture names, sorted: clipforge's registered sizes and the OpenCLIP
    architectures whose weights it reads (``ViT-B-32-quickgelu`` …)."""
    return sorted(set(MODELS.names()) | set(OPENCLIP_MODELS))


def _unknown(name: str) -> ValueError:
    return ValueError(
        f"unknown model {name!r}: not a registered name ({', '.join(list_models())}) "
        "nor an existing path"
    )


def is_clipforge_dir(path: Path) -> bool:
    """A clipforge model directory (its ``config.json`` written by ``save_model_dir``)."""
    if not (path / CONFIG_FILE).is_file():
        return False
    return json.loads((path / CONFIG_FILE).read_text()).get("format") == FORMAT


def _is_weights_file(path: Path) -> bool:
    """A weights file with no model config beside it (read with the registered name's config)."""
    return path.is_file() and not is_model_dir(path.parent)


def _check_architecture(model: CLIP, name: str, source: str) -> None:
    """Raise if ``model`` is not the registered ``name``: a clipforge run of that name (whose
    config may override its vocabulary or context) or tensors of exactly its shapes."""
    if model.config.name == name:
        return
    with torch.device("meta"):
        reference = CLIP(model_config(name))
    expected = {key: tuple(value.shape) for key, value in reference.state_dict().items()}
    found = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    if expected != found:
        raise ValueError(
            f"{source}: holds a {model.config.name!r} model whose tensors do not fit {name!r} "
            f"(to take the weights' own config: create_model_and_transforms({source!r}))"
        )


def create_model_and_transforms(
    model_name: str,
    pretrained: str | Path | None = None,
    device: str | torch.device = "cpu",
    crop_scale: tuple[float, float] = TRAIN_CROP_SCALE,
) -> tuple[CLIP, ImageTransform, ImageTransform]:
    """Return ``(model, preprocess_train, preprocess_val)`` as ``open_clip`` does.

    - ``model_name``: a registered name (:func:`list_models`) or a location :func:`clipforge.load`
      reads (run / checkpoint / model directory, Hugging Face CLIP or SigLIP directory, …).
    - ``pretrained``: where the weights are (any such location, or a bare ``.safetensors`` file
      for ``model_name``'s config); None gives a randomly initialised ``model_name``.
    - ``preprocess_val`` is the eval transform :func:`clipforge.load` returns (resize, centre
      crop, the weights' own mean/std); ``preprocess_train`` is the training one (random resized
      crop of area ``crop_scale``, the same normalisation). Both map a PIL image to [3, S, S].
    """
    openclip_only = model_name in OPENCLIP_MODELS and model_name not in MODELS
    if pretrained is None and model_name in MODELS and not Path(model_name).exists():
        model = create_model(model_name).to(device).eval()
    elif openclip_only and not Path(model_name).exists():
        # an OpenCLIP architecture: random init, or its OpenCLIP weights (epoch_N.pt, hub dir)
        model = load(model_name, weights=pretrained, device=device)[0]
    elif pretrained is None:
        if not Path(model_name).exists():
            raise _unknown(model_name)
        model = load(model_name, device=device)[0]
    else:
        if model_name not in MODELS and not Path(model_name).exists():
            raise _unknown(model_name)
        path = Path(pretrained)
        if not path.exists():
            raise FileNotFoundError(f"pretrained {str(pretrained)!r}: no such file or directory")
        if model_name in MODELS and _is_weights_file(path):
            model = load(model_name, weights=path, device=device)[0]
        else:
            model = load(path, device=device)[0]
            if model_name in MODELS:
                _check_architecture(model, model_name, str(pretrained))
    preprocess = model.config.preprocess
    train = ImageTransform(preprocess, train=True, crop_scale=crop_scale)
    return model, train, ImageTransform(preprocess, train=False)


def get_tokenizer(name_or_path: str | Path, context_length: int | None = None) -> Tokenizer:
    """The tokenizer stored with a model: ``tokenizer(str | list[str]) → LongTensor [N, context]``.

    ``name_or_path`` is anything :func:`clipforge.load` reads; ``context_length`` defaults to the
    model's. A registered name alone has no tokenizer (clipforge runs train their own), so it
    raises ``ValueError`` saying to pass the model's directory.
    """
    path = Path(name_or_path)
    if not path.exists() and str(name_or_path) in OPENCLIP_MODELS:
        return openclip_tokenizer(context_length or 77)  # OpenAI's BPE, as open_clip's
    if not path.exists():
        if str(name_or_path) in MODELS:
            raise ValueError(
                f"model {str(name_or_path)!r} ships no tokenizer (a clipforge run trains its own "
                "and stores it with the weights): pass the run or model directory instead"
            )
        raise _unknown(str(name_or_path))
    directory = resolve_model_dir(path) if path.is_dir() else path
    if is_clipforge_dir(directory):  # the tokenizer files alone, without reading the weights
        meta = json.loads((directory / CONFIG_FILE).read_text())
        has_files = any((directory / name).is_file() for name in ("tokenizer.json", "vocab.json"))
        context = meta["model"].get("text", {}).get("context_length")
        tokenizer = Tokenizer.load(directory, context) if has_files else None
    else:
        tokenizer = load(path)[2]
    if tokenizer is None:
        raise ValueError(
            f"{name_or_path}: no tokenizer files (tokenizer.json, or vocab.json + merges.txt)"
        )
    if context_length is not None:
        tokenizer.context_length = context_length
    return tokenizer
