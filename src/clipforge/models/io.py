"""Model directories: ``config.json`` + ``model.safetensors`` + tokenizer files.

This is the format of a run directory's final model and of every checkpoint. Files are written
to a temporary name and renamed into place, so a crash never leaves a half-written model.
Hugging Face ``CLIPModel`` directories are recognised here (:func:`is_hf_clip_dir`) but loaded by
:func:`clipforge.loading.load_model_dir`, which dispatches to ``interop``: the models layer never
imports the layers above it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..common.files import atomic_write, atomic_write_text
from ..data.tokenizer import Tokenizer
from .clip import CLIP
from .config import ModelConfig

FORMAT = "clipforge"
CONFIG_FILE, WEIGHTS_FILE = "config.json", "model.safetensors"


def save_safetensors(
    tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str] | None = None
) -> None:
    """Write ``path`` atomically with the mode any new file of the user gets (0666 less the
    umask): safetensors itself creates files 0600, which hid models from the group and from a
    server running as another user."""

    def write(tmp: Path) -> None:
        save_file(tensors, str(tmp), metadata=metadata)
        os.chmod(tmp, 0o666 & ~current_umask())

    atomic_write(path, write)


def current_umask() -> int:
    """The process umask, read without changing it where Linux allows (``os.umask`` must set
    one to read it, racing other threads creating files)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def save_model_dir(directory: str | Path, model: CLIP, tokenizer: Tokenizer | None) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_safetensors(state, directory / WEIGHTS_FILE, metadata={"format": FORMAT})
    if tokenizer is not None:
        tokenizer.save(directory)
    meta = {"format": FORMAT, "format_version": 1, "model": model.config.to_dict()}
    atomic_write_text(directory / CONFIG_FILE, json.dumps(meta, indent=2))
    return directory


def is_model_dir(path: str | Path) -> bool:
    return (Path(path) / CONFIG_FILE).is_file()


def is_hf_clip_dir(path: str | Path) -> bool:
    config_path = Path(path) / CONFIG_FILE
    if not config_path.is_file():
        return False
    config = json.loads(config_path.read_text())
    return config.get("model_type") == "clip" or "CLIPModel" in config.get("architectures", [])


def is_hf_dir(path: str | Path) -> bool:
    """A Hugging Face ``save_pretrained`` directory of any model type (CLIP, SigLIP, …): its
    ``config.json`` names a ``model_type`` or ``architectures`` and is not clipforge's."""
    config_path = Path(path) / CONFIG_FILE
    if not config_path.is_file():
        return False
    config = json.loads(config_path.read_text())
    return config.get("format") != FORMAT and ("model_type" in config or "architectures" in config)


def resolve_model_dir(path: str | Path) -> Path:
    """A run directory's final model, else its latest complete checkpoint, else ``path`` itself."""
    path = Path(path)
    if path.is_file() and path.suffix == ".safetensors":
        return path.parent
    if is_model_dir(path):
        return path
    checkpoints = sorted((path / "checkpoints").glob("step-*")) if path.is_dir() else []
    complete = [c for c in checkpoints if is_model_dir(c)]
    if complete:
        return complete[-1]
    from . import MODELS

    raise FileNotFoundError(
        f"{path}: no model here (expected a run directory, checkpoint, model directory or "
        f"Hugging Face CLIP directory; registered names: {', '.join(MODELS.names())})"
    )


def load_model_dir(
    directory: str | Path, device: str | torch.device = "cpu"
) -> tuple[CLIP, Tokenizer | None]:
    """Load a clipforge model directory (Hugging Face CLIP directories: ``clipforge.loading``)."""
    directory = Path(directory)
    if not is_model_dir(directory):
        raise FileNotFoundError(f"{directory}: not a model directory (no {CONFIG_FILE})")
    meta = json.loads((directory / CONFIG_FILE).read_text())
    if meta.get("format") != FORMAT:
        kind = "a Hugging Face CLIP" if is_hf_clip_dir(directory) else "not a clipforge"
        raise ValueError(
            f"{directory / CONFIG_FILE}: {kind} config (load it with "
            "clipforge.load or clipforge.loading.load_model_dir)"
        )
    model = CLIP(ModelConfig.from_dict(meta["model"]))
    load_weights(model, directory / WEIGHTS_FILE)
    tokenizer = None
    if (directory / "tokenizer.json").exists() or (directory / "vocab.json").exists():
        tokenizer = Tokenizer.load(directory, model.config.text.context_length)
    return model.to(device).eval(), tokenizer


def load_weights(model: CLIP, weights_path: str | Path) -> None:
    """Load a safetensors file strictly: every key must match, with a clear list of mismatches."""
    weights_path = Path(weights_path)
    if not weights_path.is_file():
        raise FileNotFoundError(f"{weights_path}: weights file not found")
    state = load_file(str(weights_path))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(
            f"{weights_path}: weights do not fit the model config; "
            f"missing {missing[:8]}, unexpected {unexpected[:8]}"
        )
