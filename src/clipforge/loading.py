"""``clipforge.load``: one call from a run directory, checkpoint or name to a usable model.

This is where the two model-directory formats meet: clipforge's own (:mod:`.models.io`) and
Hugging Face ``CLIPModel`` directories (:mod:`.interop.hf`). Dispatching here, above both, keeps
``models`` free of any import of ``interop``.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .data.tokenizer import Tokenizer
from .data.transforms import ImageTransform, eval_transform
from .models import CLIP, MODELS, create_model
from .models import io as model_io
from .models.io import load_weights, resolve_model_dir

__all__ = ["load", "load_model_dir", "resolve_model_dir"]


def load_model_dir(
    directory: str | Path, device: str | torch.device = "cpu"
) -> tuple[CLIP, Tokenizer | None]:
    """Load a clipforge model directory or a Hugging Face CLIP / SigLIP directory (converted on
    load; other Hugging Face model types are refused naming ``model_type``)."""
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
    CLIP or SigLIP directory, or a registered model name (then ``weights`` names the safetensors
    file and ``tokenizer`` the directory of its tokenizer files; the weights' folder is tried
    otherwise).
    """
    if isinstance(name_or_path, str) and name_or_path in MODELS and not Path(name_or_path).exists():
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
