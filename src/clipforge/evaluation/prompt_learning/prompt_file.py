"""A learnt prompt on disk: ``NAME.safetensors`` (the context) + ``NAME.json`` (what it is for).

The JSON names everything needed to rebuild the prompts and to refuse a mismatch::

    {"format": "clipforge-prompt-1", "model": "runs/demo", "text_fingerprint": "3f…",
     "class_names": [...], "templates": ["{c}."], "n_ctx": 16, "class_specific": false,
     "ctx_shape": [16, 256], "text_width": 256, "context_length": 32, "shots": 4, ...}

``text_fingerprint`` is a hash of the text tower's weights: context vectors are coordinates in
one tower's embedding space and mean nothing to another model, so a prompt learnt on a different
model is an error, as is a data set with other class names. Either file may be given to
:func:`load_prompt`; the other is found beside it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from ...common.files import atomic_write_text, read_json
from ...models.io import save_safetensors
from .learner import PromptLearner

FORMAT = "clipforge-prompt-1"
CTX_KEY = "ctx"


def text_fingerprint(model) -> str:
    """First 16 hex digits of SHA-256 over the text tower's tensors (names, shapes, values)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.text.state_dict().items()):
        digest.update(f"{name}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def prompt_paths(path: str | Path) -> tuple[Path, Path]:
    """(``.safetensors``, ``.json``) for either name."""
    path = Path(path)
    stem = path.with_suffix("") if path.suffix in (".safetensors", ".json") else path
    return stem.with_suffix(".safetensors"), stem.with_suffix(".json")


def save_prompt(
    path: str | Path, learner: PromptLearner, model, model_name: str, extra: dict[str, Any]
) -> Path:
    """Write the context and its description; returns the ``.safetensors`` path."""
    weights, description = prompt_paths(path)
    weights.parent.mkdir(parents=True, exist_ok=True)
    ctx = learner.ctx.detach().float().cpu().contiguous()
    save_safetensors({CTX_KEY: ctx}, weights, metadata={"format": FORMAT})
    info = {
        "format": FORMAT,
        "model": model_name,
        "text_fingerprint": text_fingerprint(model),
        "class_names": learner.class_names,
        "templates": list(learner.templates),
        "n_ctx": learner.n_ctx,
        "class_specific": learner.class_specific,
        "ctx_init": learner.ctx_init,
        "ctx_shape": list(ctx.shape),
        "text_width": model.text.config.width,
        "context_length": model.text.config.context_length,
        **extra,
    }
    atomic_write_text(description, json.dumps(info, indent=2) + "\n")
    return weights


def read_prompt_info(path: str | Path) -> dict[str, Any]:
    weights, description = prompt_paths(path)
    for file in (description, weights):
        if not file.is_file():
            raise FileNotFoundError(f"{file}: learnt prompt file not found")
    info = read_json(description)
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        raise ValueError(f"{description}: not a {FORMAT} prompt description")
    return info


def load_prompt(path: str | Path, model, tokenizer, class_names: list[str]) -> PromptLearner:
    """The learner saved at ``path``, checked against ``model`` and ``class_names``."""
    weights, description = prompt_paths(path)
    info = read_prompt_info(path)
    fingerprint = text_fingerprint(model)
    if info.get("text_fingerprint") != fingerprint:
        raise ValueError(
            f"{description}: learnt on model {info.get('model')!r} (text tower "
            f"{info.get('text_fingerprint')}), not on this model (text tower {fingerprint})"
        )
    saved = list(info.get("class_names") or [])
    if saved != list(class_names):
        missing = [name for name in class_names if name not in saved]
        raise ValueError(
            f"{description}: learnt for {len(saved)} other class names than the data's "
            f"{len(class_names)} (e.g. {missing[:3] or saved[:3]})"
        )
    learner = PromptLearner(
        model.text,
        tokenizer,
        saved,
        tuple(info["templates"]),
        int(info["n_ctx"]),
        bool(info["class_specific"]),
    )
    ctx = load_file(str(weights)).get(CTX_KEY)
    if ctx is None or tuple(ctx.shape) != tuple(learner.ctx.shape):
        raise ValueError(
            f"{weights}: expected a {CTX_KEY!r} tensor of shape {tuple(learner.ctx.shape)}"
        )
    with torch.no_grad():
        learner.ctx.copy_(ctx)
    return learner
