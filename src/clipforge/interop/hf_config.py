"""Configs: Hugging Face ``CLIPConfig`` / ``preprocessor_config.json`` ↔ clipforge ``ModelConfig``.

Field map (HF → clipforge)::

    vision_config.image_size, patch_size      → vision.image_size, patch_size
    vision_config.hidden_size                 → vision.width
    vision_config.num_hidden_layers / heads   → vision.layers / heads
    intermediate_size / hidden_size           → mlp_ratio   (both towers)
    layer_norm_eps                            → layer_norm_eps (both towers)
    text_config.max_position_embeddings       → text.context_length
    text_config.vocab_size, pad_token_id      → text.vocab_size, pad_token_id
    text_config.eos_token_id                  → text.eos_token_id (see :mod:`.hf_tokens`)
    hidden_act ("gelu" | "quick_gelu")        → activation (one for both towers)
    projection_dim                            → embed_dim
    logit_scale_init_value                    → logit_scale_init

HF CLIP does not clamp ``logit_scale``; clipforge clamps it at ``logit_scale_max`` (ln 100), so
logits agree whenever exp(logit_scale) ≤ 100 (true of OpenAI's checkpoints, whose scale is 100).
Values HF has no field for (the config's name, ``logit_scale_max``, the transparency fill) travel
in an extra ``"clipforge"`` entry of the HF ``config.json`` so a round trip restores them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypeVar

from ..models.config import ModelConfig, PreprocessConfig, TextConfig, VisionConfig

EXTRA_KEY = "clipforge"  # our extra entry in the HF config.json
ACTIVATIONS = ("gelu", "quick_gelu")
PREPROCESSOR_FILE = "preprocessor_config.json"
Channel = TypeVar("Channel", int, float)  # a per-channel value: a mean/std or a fill colour


def check_exportable(config: ModelConfig) -> None:
    """Raise ``ValueError`` naming why ``config`` has no ``transformers.CLIPModel`` equivalent."""
    if config.projection != "linear":
        raise ValueError(
            f"model {config.name!r}: projection {config.projection!r} cannot be "
            "expressed in Hugging Face CLIP (CLIPModel's projections are single "
            "bias-free linear layers)"
        )
    if config.logit_bias_init is not None:
        raise ValueError(
            f"model {config.name!r}: it has a logit bias (SigLIP-style), which "
            "Hugging Face CLIPModel cannot express"
        )
    if config.text.pretrained:
        raise ValueError(
            f"model {config.name!r}: its text tower is a pretrained encoder "
            f"({config.text.pretrained}), not CLIP's causal Transformer"
        )
    vision, text = config.vision, config.text
    clip_values = {
        "vision.pooling": (vision.pooling, "cls"),
        "vision.patch_bias": (vision.patch_bias, False),
        "vision.pre_norm": (vision.pre_norm, True),
        "vision.projected": (vision.projected, True),
        "text.causal": (text.causal, True),
        "text.pool_at": (text.pool_at, "eot"),
        "text.projection_bias": (text.projection_bias, False),
    }
    for field, (value, clip_value) in clip_values.items():
        if value != clip_value:
            raise ValueError(
                f"model {config.name!r}: {field} {value!r} cannot be expressed in Hugging Face "
                f"CLIPModel (it has {clip_value!r})"
            )
    if config.activation not in ACTIVATIONS:
        raise ValueError(
            f"model {config.name!r}: activation {config.activation!r} cannot be expressed in "
            f"Hugging Face CLIPModel (expected one of {ACTIVATIONS})"
        )


def _ratio(intermediate: int, hidden: int, where: str) -> float:
    ratio = intermediate / hidden
    if int(hidden * ratio) != intermediate:
        raise ValueError(
            f"{where}: intermediate_size {intermediate} is not expressible as "
            f"hidden_size {hidden} × an mlp_ratio"
        )
    return ratio


def _square(value: Any, field: str) -> int:
    if isinstance(value, (list, tuple)):
        if len(set(value)) != 1:
            raise ValueError(f"vision_config.{field} {value}: only square sizes are supported")
        value = value[0]
    return int(value)


def model_config_from_hf(
    hf_config: Any, preprocess: PreprocessConfig, eos_token_id: int, pad_token_id: int, source: str
) -> ModelConfig:
    """``transformers.CLIPConfig`` → :class:`ModelConfig`; ``source`` names the dir in errors."""
    vision, text = hf_config.vision_config, hf_config.text_config
    if vision.hidden_act != text.hidden_act:
        raise ValueError(
            f"{source}: the towers use different activations (vision "
            f"{vision.hidden_act!r}, text {text.hidden_act!r}); clipforge has one "
            "activation for both"
        )
    if vision.hidden_act not in ACTIVATIONS:
        raise ValueError(
            f"{source}: activation {vision.hidden_act!r} is not supported; "
            f"expected one of {ACTIVATIONS}"
        )
    if getattr(vision, "num_channels", 3) != 3:
        raise ValueError(f"{source}: vision num_channels {vision.num_channels}; expected 3")
    extra = dict(getattr(hf_config, EXTRA_KEY, None) or {})
    config = ModelConfig(
        name=extra.get("name", "hf-clip"),
        embed_dim=int(hf_config.projection_dim),
        vision=VisionConfig(
            image_size=_square(vision.image_size, "image_size"),
            patch_size=_square(vision.patch_size, "patch_size"),
            width=vision.hidden_size,
            layers=vision.num_hidden_layers,
            heads=vision.num_attention_heads,
            mlp_ratio=_ratio(vision.intermediate_size, vision.hidden_size, f"{source} vision"),
            layer_norm_eps=float(vision.layer_norm_eps),
        ),
        text=TextConfig(
            context_length=text.max_position_embeddings,
            vocab_size=text.vocab_size,
            width=text.hidden_size,
            layers=text.num_hidden_layers,
            heads=text.num_attention_heads,
            mlp_ratio=_ratio(text.intermediate_size, text.hidden_size, f"{source} text"),
            layer_norm_eps=float(text.layer_norm_eps),
            pad_token_id=int(pad_token_id),
            eos_token_id=int(eos_token_id),
        ),
        activation=vision.hidden_act,
        logit_scale_init=float(hf_config.logit_scale_init_value),
        preprocess=preprocess,
    )
    if "logit_scale_max" in extra:
        limit = extra["logit_scale_max"]  # None: an uncapped (SigLIP) scale
        config.logit_scale_max = None if limit is None else float(limit)
    return config


def hf_config_kwargs(
    config: ModelConfig,
    eos_token_id: int,
    pad_token_id: int,
    bos_token_id: int | None,
    extra: dict[str, Any],
) -> dict[str, Any]:
    """Keyword arguments for ``transformers.CLIPConfig`` equivalent to ``config``."""
    check_exportable(config)
    vision, text = config.vision, config.text

    def tower(width: int, layers: int, heads: int, ratio: float, eps: float) -> dict[str, Any]:
        return dict(
            hidden_size=width,
            intermediate_size=int(width * ratio),
            num_hidden_layers=layers,
            num_attention_heads=heads,
            layer_norm_eps=eps,
            hidden_act=config.activation,
            projection_dim=config.embed_dim,
        )

    return dict(
        projection_dim=config.embed_dim,
        logit_scale_init_value=float(config.logit_scale_init),
        vision_config=dict(
            tower(
                vision.width, vision.layers, vision.heads, vision.mlp_ratio, vision.layer_norm_eps
            ),
            image_size=vision.image_size,
            patch_size=vision.patch_size,
            num_channels=3,
        ),
        text_config=dict(
            tower(text.width, text.layers, text.heads, text.mlp_ratio, text.layer_norm_eps),
            vocab_size=text.vocab_size,
            max_position_embeddings=text.context_length,
            eos_token_id=eos_token_id,
            pad_token_id=pad_token_id,
            bos_token_id=bos_token_id,
        ),
        **{EXTRA_KEY: dict(extra, name=config.name, logit_scale_max=config.logit_scale_max)},
    )


def _edge(value: Any) -> tuple[int | None, str]:
    """A CLIPImageProcessor ``size``/``crop_size`` → (pixels, "shortest" | "squash")."""
    if value is None:
        return None, "shortest"
    if isinstance(value, (int, float)):
        return int(value), "shortest"
    if "shortest_edge" in value:
        return int(value["shortest_edge"]), "shortest"
    if "height" in value and "width" in value:
        if value["height"] != value["width"]:
            raise ValueError(f"preprocessing size {value}: only square sizes are supported")
        return int(value["height"]), "squash"
    raise ValueError(f"preprocessing size {value}: expected shortest_edge or height/width")


def _rgb(values: Any, kind: type[Channel], name: str) -> tuple[Channel, Channel, Channel]:
    """One value per channel (R, G, B), converted to ``kind``; ``name`` labels the error."""
    channels = [kind(value) for value in values]
    if len(channels) != 3:
        raise ValueError(f"{name}: expected 3 values (R, G, B), got {channels}")
    return channels[0], channels[1], channels[2]


def preprocess_from_hf(
    directory: Path,
    image_size: int,
    extra: dict[str, Any],
    default: PreprocessConfig | None = None,
) -> PreprocessConfig:
    """``preprocessor_config.json`` (CLIP / SigLIP image processor) → :class:`PreprocessConfig`.

    Without the file, ``default`` (else CLIP's: OpenAI mean/std, shortest-side resize + centre
    crop) at the model's input size. A resize larger than the crop (e.g. 256 → 224) is
    approximated by resizing straight to the crop size.
    """
    preprocess = default or PreprocessConfig(image_size=image_size)
    path = directory / PREPROCESSOR_FILE
    if path.is_file():
        data = json.loads(path.read_text())
        resize, mode = _edge(data.get("size")) if data.get("do_resize", True) else (None, "")
        crop, _ = _edge(data.get("crop_size")) if data.get("do_center_crop", True) else (None, "")
        preprocess.image_size = crop or resize or image_size
        preprocess.resize_mode = "shortest" if crop or mode != "squash" else "squash"
        if data.get("do_normalize", True):
            mean = data.get("image_mean", preprocess.mean)
            std = data.get("image_std", preprocess.std)
            preprocess.mean = _rgb(mean, float, f"{path}: image_mean")
            preprocess.std = _rgb(std, float, f"{path}: image_std")
        else:
            preprocess.mean, preprocess.std = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
    if "background" in extra:
        preprocess.background = _rgb(extra["background"], int, f"{EXTRA_KEY}.background")
    return preprocess


def preprocessor_config(preprocess: PreprocessConfig) -> dict[str, Any]:
    """:class:`PreprocessConfig` → CLIPImageProcessor's ``preprocessor_config.json`` fields."""
    size = preprocess.image_size
    squash = preprocess.resize_mode == "squash"
    return {
        "image_processor_type": "CLIPImageProcessor",
        "do_resize": True,
        "size": {"height": size, "width": size} if squash else {"shortest_edge": size},
        "resample": 3,  # PIL bicubic, as clipforge uses
        "do_center_crop": not squash,
        "crop_size": {"height": size, "width": size},
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "image_mean": list(preprocess.mean),
        "image_std": list(preprocess.std),
        "do_convert_rgb": True,
    }
