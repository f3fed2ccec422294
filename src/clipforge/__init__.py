"""clipforge: train, evaluate and use CLIP-family language-image dual encoders.

The public names are imported on first use (PEP 562), so ``clipforge --help`` and
``clipforge --version`` answer without importing torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name → module that defines it
_EXPORTS = {
    "CLIP": ".models",
    "MODELS": ".models",
    "ModelConfig": ".models",
    "ModelOutput": ".models",
    "create_model": ".models",
    "Tokenizer": ".data.tokenizer",
    "load": ".loading",
    "create_model_and_transforms": ".factory",
    "get_tokenizer": ".factory",
    "list_models": ".factory",
}

__all__ = [
    "CLIP",
    "MODELS",
    "ModelConfig",
    "ModelOutput",
    "Tokenizer",
    "create_model",
    "create_model_and_transforms",
    "get_tokenizer",
    "list_models",
    "load",
    "__version__",
]

if TYPE_CHECKING:
    from .data.tokenizer import Tokenizer
    from .factory import create_model_and_transforms, get_tokenizer, list_models
    from .loading import load
    from .models import CLIP, MODELS, ModelConfig, ModelOutput, create_model


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'clipforge' has no attribute {name!r}")
