"""Training: configs, the loop, checkpoints.

``TrainConfig`` imports without torch (the CLI builds its help from it); ``train`` on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .config import ObjectiveSpec, TrainConfig

if TYPE_CHECKING:
    from .trainer import TrainResult, train

__all__ = ["ObjectiveSpec", "TrainConfig", "TrainResult", "train"]


def __getattr__(name: str) -> Any:
    if name in ("TrainResult", "train"):
        value = getattr(importlib.import_module(".trainer", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'clipforge.training' has no attribute {name!r}")
