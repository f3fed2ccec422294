"""Atomic, resumable checkpoints.

``OUT/checkpoints/step-00000100/`` is a complete model directory (``config.json``,
``model.safetensors``, tokenizer) plus ``objectives.safetensors`` (objective-owned weights, keys
``{objective}.{param}``) and ``training_state.pt`` (optimizer, schedule, RNG states, data
position). It is written under a temporary name and renamed into place, so a run killed at any
moment leaves only complete checkpoints; ``run_dir.newest_intact_checkpoint`` picks the
newest one that :func:`checkpoint_problem` finds whole.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import struct
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file

from ..data.tokenizer import Tokenizer
from ..models.clip import CLIP
from ..models.io import CONFIG_FILE, WEIGHTS_FILE, save_model_dir, save_safetensors

STATE_FILE, OBJECTIVES_FILE = "training_state.pt", "objectives.safetensors"


def rng_state() -> dict[str, Any]:
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_objectives(directory: Path, objectives: dict[str, torch.nn.Module]) -> None:
    tensors = {
        f"{name}.{key}": value.detach().contiguous().cpu()
        for name, module in objectives.items()
        for key, value in module.state_dict().items()
    }
    if tensors:
        save_safetensors(tensors, directory / OBJECTIVES_FILE)


def load_objectives(directory: Path, objectives: Mapping[str, torch.nn.Module]) -> None:
    path = directory / OBJECTIVES_FILE
    if not path.exists():
        return
    tensors = load_file(str(path))
    for name, module in objectives.items():
        prefix = f"{name}."
        state = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
        if state:
            module.load_state_dict(state)


def save_checkpoint(
    out: Path,
    step: int,
    model: CLIP,
    tokenizer: Tokenizer | None,
    objectives: dict[str, torch.nn.Module],
    training_state: dict[str, Any],
    keep: int = 2,
) -> Path:
    checkpoints = out / "checkpoints"
    final = checkpoints / f"step-{step:08d}"
    tmp = checkpoints / f".tmp-step-{step:08d}"
    shutil.rmtree(tmp, ignore_errors=True)
    save_model_dir(tmp, model, tokenizer)
    save_objectives(tmp, objectives)
    torch.save({**training_state, "rng": rng_state()}, tmp / STATE_FILE)
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    for old in sorted(checkpoints.glob("step-*"))[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def checkpoint_step(checkpoint: Path) -> int:
    """The step a checkpoint holds, from its name (``step-00000100`` → 100)."""
    return int(checkpoint.name.removeprefix("step-"))


def checkpoint_problem(checkpoint: Path) -> str | None:
    """Why ``checkpoint`` cannot be resumed from (a missing, truncated or unreadable file), or
    None when it is whole. Safetensors files are checked against the sizes their header
    declares; ``training_state.pt`` (a zip archive) by its directory and CRCs."""
    for name in (CONFIG_FILE, WEIGHTS_FILE, STATE_FILE):
        if not (checkpoint / name).is_file():
            return f"no {name}"
    try:
        json.loads((checkpoint / CONFIG_FILE).read_text())
    except ValueError:
        return f"{CONFIG_FILE} is not valid JSON"
    for name in (WEIGHTS_FILE, OBJECTIVES_FILE):
        if (checkpoint / name).exists() and not _safetensors_whole(checkpoint / name):
            return f"{name} is truncated or corrupt"
    try:
        with zipfile.ZipFile(checkpoint / STATE_FILE) as archive:
            if archive.testzip() is not None:
                return f"{STATE_FILE} is corrupt"
    except (zipfile.BadZipFile, OSError, EOFError):
        return f"{STATE_FILE} is truncated or corrupt"
    return None


def _safetensors_whole(path: Path) -> bool:
    """8-byte header length, a JSON header, then exactly the bytes its offsets cover."""
    size = path.stat().st_size
    try:
        with path.open("rb") as handle:
            (header_length,) = struct.unpack("<Q", handle.read(8))
            if header_length > size - 8:
                return False
            header = json.loads(handle.read(header_length))
        end = max(
            (entry["data_offsets"][1] for key, entry in header.items() if key != "__metadata__"),
            default=0,
        )
    except (struct.error, ValueError, KeyError, TypeError, IndexError):
        return False
    return size == 8 + header_length + end


def load_training_state(checkpoint: Path) -> dict[str, Any]:
    return torch.load(checkpoint / STATE_FILE, map_location="cpu", weights_only=False)
