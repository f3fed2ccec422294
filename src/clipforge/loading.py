"""``clipforge.load``: one call from a run directory, checkpoint or name to a usable model.

This is where the model formats meet: clipforge's own (:mod:`.models.io`), Hugging Face
``CLIPModel`` directories (:mod:`.interop.hf`) and OpenCLIP's hub directories, ``hf-hub:`` names
and ``open_clip_train`` checkpoints (:mod:`.interop.openclip`). Dispatching here, above them all,
keeps ``models`` free of any import of ``interop``.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .data.tokenizer import Tokenizer
from .data.transforms import ImageTransform, eval_transform
from .interop import openclip
from .models import CLIP, MODELS, create_model
from .models import io as model_io
from .models.io import load_weights

__all__ = ["load", "load_model_dir", "resolve_model_dir"]


def resolve_model_dir(path: str | Path) -> Path:
    """:func:`clipforge.models.io.resolve_model_dir`, plus OpenCLIP sources: a hub directory or
    checkpoint file stays itself, ``hf-hub:org/name`` becomes its cached snapshot folder."""
    if openclip.is_openclip_source(path):
        return openclip.resolve_openclip_source(path)
    return model_io.resolve_model_dir(path)


def load_model_dir(
    directory: str | Path, device: str | torch.device = "cpu"
) -> tuple[CLIP, Tokenizer | None]:
    """Load a clipforge model directory, a Hugging Face CLIP / SigLIP directory (other Hugging
    Face model types are refused naming ``model_type``) or an OpenCLIP hub directory / checkpoint
    (converted on load; a checkpoint's architecture from its params.txt)."""
    if openclip.is_openclip_source(directory):
        return openclip.load_openclip(directory, device=device)
    if model_io.is_hf_dir(directory):
        from .interop.hf import load_hf_dir

        return load_hf_dir(directory, device)
    return model_io.load_model_dir(directory, device)


def load(
    name_or_path: str | Path,
    weights: str | Path | None = None,
    tokenizer: str | Path | None = None,
    device: str | torch.device = "cpu",
) -> tuple[CLIP, ImageTransform, Tokenizer | None]:
    """Return ``(model, preprocess, tokenizer)``, the model in eval mode.

    ``name_or_path`` is a run directory, checkpoint directory, ``.safetensors`` file, Hugging Face
    """
    from_openclip = _openclip_by_name(name_or_path, weights)
    if from_openclip is not None:
        model, loaded_tokenizer = from_openclip
        model = model.to(device).eval()
        if tokenizer is not None:
            loaded_tokenizer = Tokenizer.load(tokenizer, model.config.text.context_length)
    elif (
        isinstance(name_or_path, str) and name_or_path in MODELS and not Path(name_or_path).exists()
    ):
        model = create_model(name_or_path)
        if weights is not None:
            load_weights(model, weights)
        tokenizer_dir = (
            Path(tokenizer) if tokenizer else (Path(weights).parent if weights else None)
        )
        loaded_tokenizer = None
        if tokenizer_dir is not None and (
            (tokenizer_dir / "tokenizer.json").exists() or (tokenizer_dir / "vocab.json").exists()
        ):
            loaded_tokenizer = Tokenizer.load(tokenizer_dir, model.config.text.context_length)
        model = model.to(device).eval()
    else:
        model, loaded_tokenizer = load_model_dir(resolve_model_dir(name_or_path), device)
        if tokenizer is not None:
            loaded_tokenizer = Tokenizer.load(tokenizer, model.config.text.context_length)
    return model, eval_transform(model.config.preprocess), loaded_tokenizer


def _openclip_by_name(
    name_or_path: str | Path, weights: str | Path | None
) -> tuple[CLIP, Tokenizer | None] | None:
    """An OpenCLIP architecture named (or given as a JSON config) with OpenCLIP weights, or an
    OpenCLIP-only name alone (random weights); None when clipforge's own rules apply."""
    ref = str(name_or_path)
    if weights is not None and ref.endswith(".json") and Path(ref).is_file():
        return openclip.load_openclip(weights, model_config=ref)
    if ref not in openclip.OPENCLIP_MODELS or Path(ref).exists():
        return None
    if weights is not None and openclip.is_openclip_weights(weights):
        return openclip.load_openclip(weights, model_name=ref)
    if weights is None and ref not in MODELS:
        return openclip.create_openclip_model(ref)
    return None
