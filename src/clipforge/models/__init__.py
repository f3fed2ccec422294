"""Model configs, the registry of named sizes, and the factory."""

from __future__ import annotations

import copy

from ..registry import Registry
from . import sizes
from .clip import CLIP, ModelOutput
from .config import ModelConfig, PreprocessConfig, TextConfig, VisionConfig

MODELS: Registry = Registry(
    "model",
    {
        "tiny": sizes.tiny,
        "small": sizes.small,
        "ViT-B-32": sizes.vit_b_32,
        "ViT-B-16": sizes.vit_b_16,
        "ViT-L-14": sizes.vit_l_14,
    },
)


def model_config(name_or_config: str | ModelConfig) -> ModelConfig:
    """A fresh copy of a named size's config, or a copy of the config given."""
    if isinstance(name_or_config, ModelConfig):
        return copy.deepcopy(name_or_config)
    return MODELS.get(name_or_config)()


def create_model(name_or_config: str | ModelConfig, **overrides) -> CLIP:
    """Build a randomly initialised model from a registered name or a :class:`ModelConfig`.

    ``overrides`` set top-level config fields (e.g. ``logit_bias_init=-10.0``).
    """
    config = model_config(name_or_config)
    for key, value in overrides.items():
        if not hasattr(config, key):
            raise ValueError(f"unknown model config field {key!r}")
        setattr(config, key, value)
    model = CLIP(config)
    model.init_weights()
    return model


__all__ = [
    "CLIP",
    "MODELS",
    "ModelConfig",
    "ModelOutput",
    "PreprocessConfig",
    "TextConfig",
    "VisionConfig",
    "create_model",
    "model_config",
]
