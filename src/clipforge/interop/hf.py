"""Hugging Face ``transformers`` CLIP interop: load, import and export ``CLIPModel`` directories
(``SiglipModel`` directories load and import too: :mod:`.siglip`).

- :func:`load_hf_dir` builds the equivalent clipforge :class:`CLIP` from a ``save_pretrained``
  directory (``clipforge.load(HF_DIR)`` and every ``--model HF_DIR`` come here);
- :func:`convert_from_hf` writes it as a clipforge model directory;
- :func:`convert_to_hf` writes a clipforge run directory / checkpoint as a ``CLIPModel`` directory
  (``config.json``, ``model.safetensors``, ``preprocessor_config.json``, tokenizer files).

The two architectures are the same network (OpenAI CLIP): image and text embeddings agree to
float rounding (≈1e-7 in fp32) and a clipforge → HF → clipforge round trip is bit-exact. Where HF
and clipforge pool text differently, see :mod:`.hf_tokens`; the config field map is in
:mod:`.hf_config`, the weight name map in :mod:`.hf_weights`.

``transformers`` is an optional dependency (``pip install 'clipforge[hf]'``), imported here only.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import torch

from ..common.optional import require
from ..data.tokenizer import Tokenizer
from ..models.clip import CLIP
from .hf_config import (
    EXTRA_KEY,
    PREPROCESSOR_FILE,
    check_exportable,
    hf_config_kwargs,
    model_config_from_hf,
    preprocess_from_hf,
    preprocessor_config,
)
from .hf_tokens import (
    LEGACY_EOS,
    export_swap,
    load_tokenizer,
    save_hf_tokenizer,
    swap_id,
    swap_rows,
)
from .hf_weights import from_hf_state_dict, read_hf_weights, to_hf_state_dict
from .siglip import MODEL_TYPE as SIGLIP
from .siglip import load_siglip_dir

TOKEN_EMBEDDING = "text.token_embedding.weight"


def require_transformers() -> ModuleType:
    """Import ``transformers`` or raise ImportError saying how to install it."""
    return require("transformers", "hf", "Hugging Face CLIP conversion")


def _check_out_dir(out_dir: Path, overwrite: bool) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"{out_dir}: output path exists and is not a directory")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not overwrite:
        raise ValueError(
            f"{out_dir}: output directory is not empty (use --force / "
            "overwrite=True to write into it)"
        )


def load_hf_dir(
    directory: str | Path, device: str | torch.device = "cpu"
) -> tuple[CLIP, Tokenizer | None]:
    """A ``transformers.CLIPModel`` directory → (clipforge ``CLIP`` in eval mode, tokenizer|None).

    Reads ``config.json``, the weights (safetensors or ``pytorch_model.bin``, sharded or not),
    ``preprocessor_config.json`` if present (else CLIP's defaults) and the tokenizer files
    (``tokenizer.json``, or ``vocab.json`` + ``merges.txt``) if present. ``SiglipModel``
    directories (``model_type`` "siglip") go to :mod:`.siglip` (no tokenizer); other model types
    are refused naming the field.
    """
    directory = Path(directory)
    model_type = json.loads((directory / "config.json").read_text()).get("model_type", "clip")
    if model_type == SIGLIP:
        return load_siglip_dir(directory, device), None
    if model_type != "clip":
        raise ValueError(
            f"{directory / 'config.json'}: model_type {model_type!r} is not supported; "
            f"expected 'clip' (CLIPModel) or {SIGLIP!r} (SiglipModel)"
        )
    transformers = require_transformers()
    hf_config = transformers.CLIPConfig.from_pretrained(str(directory))
    text = hf_config.text_config
    extra = dict(getattr(hf_config, EXTRA_KEY, None) or {})
    swap = tuple(extra["token_swap"]) if extra.get("token_swap") else None
    tokenizer = load_tokenizer(directory, text.max_position_embeddings, swap)
    eos = text.eos_token_id
    if isinstance(eos, (list, tuple)):
        raise ValueError(f"{directory}: several eos_token_id values {eos}; expected one")
    if swap is not None:
        eos = swap_id(eos, swap)
    elif eos == LEGACY_EOS:  # HF pools at argmax(ids): the EOT when it is the largest id
        eos = tokenizer.eot_id if tokenizer is not None else text.vocab_size - 1
    if text.pad_token_id is not None:
        pad = swap_id(text.pad_token_id, swap)
    else:
        pad = tokenizer.pad_id if tokenizer is not None else 0
    image_size = hf_config.vision_config.image_size
    image_size = int(image_size[0] if isinstance(image_size, (list, tuple)) else image_size)
    config = model_config_from_hf(
        hf_config,
        preprocess_from_hf(directory, image_size, extra),
        eos_token_id=eos,
        pad_token_id=pad,
        source=str(directory),
    )
    state = from_hf_state_dict(read_hf_weights(directory), config, str(directory))
    state[TOKEN_EMBEDDING] = swap_rows(state[TOKEN_EMBEDDING], swap)
    model = CLIP(config)
    model.load_state_dict(state, strict=True)
    return model.to(device).eval(), tokenizer


def convert_from_hf(hf_dir: str | Path, out_dir: str | Path, overwrite: bool = False) -> Path:
    """Write the HF CLIP or SigLIP directory ``hf_dir`` as a clipforge model directory."""
    from ..models.io import save_model_dir

    out_dir = Path(out_dir)
    _check_out_dir(out_dir, overwrite)
    model, tokenizer = load_hf_dir(hf_dir, "cpu")
    return save_model_dir(out_dir, model, tokenizer)


def convert_to_hf(run_dir: str | Path, out_dir: str | Path, overwrite: bool = False) -> Path:
    """Write a clipforge run directory / checkpoint / model directory as a ``CLIPModel`` dir.

    Raises ``ValueError`` for models HF CLIP cannot express (MLP projection, logit bias,
    pretrained text encoder).
    """
    from ..models.io import load_model_dir, resolve_model_dir

    transformers = require_transformers()
    out_dir = Path(out_dir)
    _check_out_dir(out_dir, overwrite)
    model, tokenizer = load_model_dir(resolve_model_dir(run_dir), "cpu")
    config = model.config
    check_exportable(config)
    text = config.text
    swap = export_swap(text.eos_token_id, text.vocab_size)
    bos = swap_id(tokenizer.sot_id, swap) if tokenizer is not None else None
    extra = {
        "token_swap": list(swap) if swap else None,
        "background": list(config.preprocess.background),
    }
    hf_config = transformers.CLIPConfig(
        **hf_config_kwargs(
            config,
            eos_token_id=swap_id(text.eos_token_id, swap),
            pad_token_id=swap_id(text.pad_token_id, swap),
            bos_token_id=bos,
            extra=extra,
        )
    )
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    state[TOKEN_EMBEDDING] = swap_rows(state[TOKEN_EMBEDDING], swap)
    hf_model = transformers.CLIPModel(hf_config)
    hf_model.load_state_dict(to_hf_state_dict(state, config), strict=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    hf_model.save_pretrained(str(out_dir))
    (out_dir / PREPROCESSOR_FILE).write_text(
        json.dumps(preprocessor_config(config.preprocess), indent=2)
    )
    if tokenizer is not None:
        save_hf_tokenizer(tokenizer, out_dir, swap)
    return out_dir
