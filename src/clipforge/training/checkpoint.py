"""Atomic, resumable checkpoints.

``OUT/checkpoints/step-00000100/`` is a complete model directory (``config.json``,
``model.safetensors``, tokenizer) plus ``objectives.safetensors`` (objective-owned weights, keys
``{objective}.{param}``) and ``training_state.pt`` (optimizer, schedule, RNG states, data
position). It is written under a temporary name and renamed into place, so a run killed at any
moment leaves only complete checkpoints; ``latest_checkpoint`` picks the newest one.
"""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file

from ..data.tokenizer import Tokenizer
from ..models.clip import CLIP
from ..models.io import is_model_dir, save_model_dir, save_safetensors

STATE_FILE, OBJECTIVES_FILE = "training_state.pt", "objectives.safetensors"


def rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(),
             "torch": torch.get_rng_state()}
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
    tensors = {f"{name}.{key}": value.detach().contiguous().cpu()
               for name, module in objectives.items()
               for key, value in module.state_dict().items()}
    if tensors:
        save_safetensors(tensors, directory / OBJECTIVES_FILE)


def load_objectives(directory: Path, objectives: dict[str, torch.nn.Module]) -> None:
    path = directory / OBJECTIVES_FILE
    if not path.exists():
        return
    tensors = load_file(str(path))
    for name, module in objectives.items():
        prefix = f"{name}."
        state = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
        if state:
            module.load_state_dict(state)


def save_checkpoint(out: Path, step: int, model: CLIP, tokenizer: Tokenizer | None,
                    objectives: dict[str, torch.nn.Module], training_state: dict[str, Any],
                    keep: int = 2) -> Path:
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


def latest_checkpoint(out: Path) -> Path | None:
    candidates = [c for c in sorted((out / "checkpoints").glob("step-*"))
                  if is_model_dir(c) and (c / STATE_FILE).exists()]
    return candidates[-1] if candidates else None


def load_training_state(checkpoint: Path) -> dict[str, Any]:
    return torch.load(checkpoint / STATE_FILE, map_location="cpu", weights_only=False)
