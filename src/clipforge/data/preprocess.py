"""How a model's images are turned into tensors: the preprocessing config stored with weights.

It lives in ``data`` because the transforms (:mod:`.transforms`) read it; models hold one in
their :class:`~clipforge.models.config.ModelConfig` and import it from here (a lower layer never
imports a higher one). As OpenCLIP does, the config travels with the weights, so users never
guess normalisation constants. Defaults are OpenAI CLIP's ImageNet-like mean/std at 224 px.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass
class PreprocessConfig:
    """How images are turned into tensors for this model; stored with the weights."""

    image_size: int = 224
    mean: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)
    std: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)
    resize_mode: Literal["shortest", "squash"] = "shortest"  # then centre crop
    background: tuple[int, int, int] = (255, 255, 255)  # fill for transparent pixels
