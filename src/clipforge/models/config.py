"""Typed configuration of a CLIP dual encoder.

A model is fully described by :class:`ModelConfig`; it is saved as ``config.json`` beside the
weights, so a checkpoint can always be rebuilt without guessing. Field names follow OpenAI CLIP /
OpenCLIP where they exist.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Literal

from ..data.preprocess import PreprocessConfig  # re-exported: models.config.PreprocessConfig

# "gelu_tanh": GELU's tanh approximation (SigLIP; HF's "gelu_pytorch_tanh")
Activation = Literal["gelu", "quick_gelu", "gelu_tanh"]


@dataclass
class VisionConfig:
    """ViT image tower. The defaults are CLIP's; SigLIP (Zhai et al., ICCV 2023) is
    ``pooling="map", patch_bias=True, pre_norm=False, projected=False``."""

    image_size: int = 224  # input resolution (square)
    patch_size: int = 32  # non-overlapping square patches
    width: int = 768  # transformer width
    layers: int = 12
    heads: int = 12
    mlp_ratio: float = 4.0
    layer_norm_eps: float = 1e-5
    # "cls": a class token, pooled at it; "map": no class token, a multihead-attention pooling
    # head (one learnt probe query over the patch tokens, then LN + MLP; Zhai et al. 2022)
    pooling: Literal["cls", "map"] = "cls"
    patch_bias: bool = False  # a bias on the patchify convolution (SigLIP)
    pre_norm: bool = True  # LayerNorm before the blocks (CLIP's ln_pre; SigLIP has none)
    projected: bool = True  # False: the pooled feature is the embedding (needs width == embed_dim)

    @property
    def grid_size(self) -> int:
        return self.image_size // self.patch_size

    @property
    def num_patches(self) -> int:
        return self.grid_size**2


@dataclass
class TextConfig:
    """Transformer text tower; CLIP's defaults: causal, pooled at the end-of-text token.

    SigLIP's is ``causal=False, pool_at="last", projection_bias=True`` (its captions are always
    padded to the full context, so the last position is a fixed pad token that sees the caption).
    """

    context_length: int = 77
    vocab_size: int = 49408
    width: int = 512
    layers: int = 12
    heads: int = 8
    mlp_ratio: float = 4.0
    layer_norm_eps: float = 1e-5
    pad_token_id: int = 0
    eos_token_id: int = 2  # the text tower pools here (49407 for OpenAI's vocabulary)
    # A pretrained Hugging Face encoder instead of the causal Transformer above
    # (models/pretrained_text.py): its local directory, or "pkg:PACKAGE/sub/dir".
    pretrained: str | None = None
    pretrained_config: dict | None = None  # its config.json, kept so a run dir rebuilds alone
    pooling: str = "mean"  # pretrained encoders: "mean" over tokens or "cls"
    causal: bool = True  # own tower: causal attention mask (False: every token sees all tokens)
    pool_at: Literal["eot", "last"] = "eot"  # own tower: first end-of-text token or last position
    projection_bias: bool = False  # a bias on the linear projection (SigLIP's text head)


@dataclass
class ModelConfig:
    """A full dual encoder: both towers, projections and the similarity temperature."""

    embed_dim: int = 512
    vision: VisionConfig = field(default_factory=VisionConfig)
    text: TextConfig = field(default_factory=TextConfig)
    activation: Activation = "gelu"
    logit_scale_init: float = math.log(1 / 0.07)  # CLIP: t = ln(1/0.07); SigLIP: ln 10
    # t is kept in [0, logit_scale_max] after every optimizer step (CLIP.clamp_logit_scale, as
    # OpenAI CLIP / OpenCLIP / ALIP do); None leaves it free (SigLIP, as big_vision does).
    logit_scale_max: float | None = math.log(100.0)
    logit_bias_init: float | None = None  # SigLIP uses -10; None = no bias parameter
    projection: Literal["linear", "mlp"] = "linear"  # "mlp": CLIP-improved style 2-layer head
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    name: str = "custom"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        data = dict(data)
        vision = VisionConfig(**data.pop("vision", {}))
        text = TextConfig(**data.pop("text", {}))
        pre = dict(data.pop("preprocess", {}))
        for key in ("mean", "std", "background"):
            if key in pre:
                pre[key] = tuple(pre[key])
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown model config keys: {sorted(unknown)}")
        return cls(vision=vision, text=text, preprocess=PreprocessConfig(**pre), **data)
