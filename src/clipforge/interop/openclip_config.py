"""OpenCLIP model configs ⇄ clipforge :class:`ModelConfig`: named architectures and the field map.

OpenCLIP describes a model by a small JSON (``model_cfg``: ``embed_dim``, ``quick_gelu``,
``vision_cfg``, ``text_cfg``), named in its ``model_configs/`` folder or stored as
``open_clip_config.json`` beside hub weights with a ``preprocess_cfg``. The plain ViT + causal text
Transformer of OpenAI CLIP is the same network as clipforge's; this module maps between the two:

- vision: ``heads = width // head_width`` (default 64); ``mlp_ratio``; LayerNorm eps from
  ``norm_kwargs``; ``final_ln_after_pool`` is accepted either way (LayerNorm acts per token, so
  normalising before or after taking the class token is the same);
- text: ``pool_type`` ``argmax`` (OpenAI's: the largest id, i.e. the first ``<end_of_text>`` =
  ``vocab_size - 1``) or ``eos`` (first ``eos_id``) become clipforge's first-EOS pooling;
- ``quick_gelu: true`` → ``activation: quick_gelu``; ``init_logit_bias`` → a SigLIP bias.

Anything else a config may ask for (ResNet or timm towers, Hugging Face text encoders, layer scale,
attentional pooling, CoCa…) is refused with the key's name rather than loaded wrongly.
:data:`OPENCLIP_MODELS` holds the named configs clipforge knows, written from OpenCLIP's documented
values (its ``model_configs/*.json``; ``-quickgelu`` marks OpenAI-trained weights).
"""

from __future__ import annotations

import math
from typing import Any

from ..models.config import ModelConfig, PreprocessConfig, TextConfig, VisionConfig

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
CLIPFORGE_KEY = "clipforge"  # open_clip_config.json: what OpenCLIP's schema has no place for

# name: (embed_dim, image_size, patch_size, width, layers, head_width, mlp_ratio,
#        text_width, text_heads, text_layers); every text tower: context 77, vocabulary 49,408
_VIT_ROWS: dict[str, tuple[int, int, int, int, int, int, float, int, int, int]] = {
    "ViT-B-32": (512, 224, 32, 768, 12, 64, 4.0, 512, 8, 12),
    "ViT-B-32-256": (512, 256, 32, 768, 12, 64, 4.0, 512, 8, 12),
    "ViT-B-16": (512, 224, 16, 768, 12, 64, 4.0, 512, 8, 12),
    "ViT-B-16-plus-240": (640, 240, 16, 896, 12, 64, 4.0, 640, 10, 12),
    "ViT-L-14": (768, 224, 14, 1024, 24, 64, 4.0, 768, 12, 12),
    "ViT-L-14-336": (768, 336, 14, 1024, 24, 64, 4.0, 768, 12, 12),
    "ViT-H-14": (1024, 224, 14, 1280, 32, 80, 4.0, 1024, 16, 24),
    "ViT-H-14-378": (1024, 378, 14, 1280, 32, 80, 4.0, 1024, 16, 24),
    "ViT-g-14": (1024, 224, 14, 1408, 40, 88, 4.3637, 1024, 16, 24),
    "ViT-bigG-14": (1280, 224, 14, 1664, 48, 104, 4.9231, 1280, 20, 32),
}
# OpenCLIP's QuickGELU twins (OpenAI, MetaCLIP and DFN weights were trained with QuickGELU)
_QUICKGELU = ("ViT-B-32", "ViT-B-16", "ViT-L-14", "ViT-L-14-336", "ViT-H-14", "ViT-H-14-378")


def _row_config(row: tuple, quick_gelu: bool) -> dict[str, Any]:
    embed, size, patch, width, layers, head_width, ratio, t_width, t_heads, t_layers = row
    vision: dict[str, Any] = {
        "image_size": size,
        "layers": layers,
        "width": width,
        "head_width": head_width,
        "patch_size": patch,
    }
    if ratio != 4.0:
        vision["mlp_ratio"] = ratio
    text = {
        "context_length": 77,
        "vocab_size": 49408,
        "width": t_width,
        "heads": t_heads,
        "layers": t_layers,
    }
    config: dict[str, Any] = {"embed_dim": embed, "vision_cfg": vision, "text_cfg": text}
    if quick_gelu:
        config["quick_gelu"] = True
    return config


OPENCLIP_MODELS: dict[str, dict[str, Any]] = {
    **{name: _row_config(row, False) for name, row in _VIT_ROWS.items()},
    **{f"{name}-quickgelu": _row_config(_VIT_ROWS[name], True) for name in _QUICKGELU},
}

_VISION_KEYS = {"image_size", "layers", "width", "head_width", "mlp_ratio", "patch_size"}
_TEXT_KEYS = {"context_length", "vocab_size", "width", "heads", "layers", "mlp_ratio"}
_TOP_KEYS = {"embed_dim", "vision_cfg", "text_cfg", "quick_gelu", "init_logit_bias"}
_TOP_KEYS |= {"init_logit_scale"}
# read where they matter (pooling, tokenizer, norms) or inert at inference (dropout, outputs,
# the order of the final LayerNorm and the pooling, the text tower's place in the state dict)
_ACCEPTED = {"pool_type", "eos_id", "pad_id", "hf_tokenizer_name", "tokenizer_kwargs"}
_ACCEPTED |= {"norm_kwargs", "patch_dropout", "output_tokens", "final_ln_after_pool"}
_ACCEPTED |= {"nonscalar_logit_scale", "custom_text"}
# accepted only at the value that gives clipforge's network; any other is refused
_ONLY_AT: dict[str, tuple[Any, ...]] = {
    "no_ln_pre": (False,),
    "ls_init_value": (None,),
    "attentional_pool": (False,),
    "embed_cls": (False,),
    "no_causal_mask": (False,),
    "proj_bias": (False,),
    "proj_type": ("linear",),
    "block_type": (None, "default"),
    "pos_embed_type": ("learnable",),
    "act_kwargs": (None, {}),
    "tokenizer_mode": (None,),
    **dict.fromkeys(
        ("qk_norm", "scaled_cosine_attn", "scale_heads", "scale_attn_inner", "scale_attn"),
        (False,),
    ),
    "scale_fc": (False,),
}


def _check_keys(section: dict[str, Any], known: set[str], where: str, source: str) -> None:
    for key, value in section.items():
        if key in known or key in _ACCEPTED or value in _ONLY_AT.get(key, ()):
            continue
        raise ValueError(
            f"{source}: OpenCLIP {where} {key}={value!r} is not supported by clipforge "
            "(it loads the plain ViT + text-Transformer CLIP)"
        )


def _eps(section: dict[str, Any], source: str) -> float:
    norm = dict(section.get("norm_kwargs") or {})
    eps = float(norm.pop("eps", 1e-5))
    if norm:
        raise ValueError(f"{source}: OpenCLIP norm_kwargs {sorted(norm)} are not supported")
    return eps


def model_config_from_openclip(
    model_cfg: dict[str, Any],
    preprocess_cfg: dict[str, Any] | None,
    name: str,
    source: str,
    extra: dict[str, Any] | None = None,
) -> ModelConfig:
    """OpenCLIP ``model_cfg`` (+ hub ``preprocess_cfg``) → clipforge :class:`ModelConfig`.

    ``extra`` is the ``clipforge`` entry :func:`openclip_config_from_model` writes beside them
    (name, logit-scale cap, transparency fill), so a round trip keeps the whole config."""
    _check_keys(model_cfg, _TOP_KEYS, "model_cfg key", source)
    vision, text = dict(model_cfg.get("vision_cfg", {})), dict(model_cfg.get("text_cfg", {}))
    _check_keys(vision, _VISION_KEYS, "vision_cfg key", source)
    _check_keys(text, _TEXT_KEYS, "text_cfg key", source)
    if vision.get("pool_type", "tok") != "tok":
        raise ValueError(f"{source}: vision pool_type {vision['pool_type']!r} is not supported")
    clean = (text.get("tokenizer_kwargs") or {}).get("clean", "lower")
    if clean != "lower":
        raise ValueError(f"{source}: OpenCLIP tokenizer clean {clean!r} is not supported")
    layers, image_size = vision.get("layers", 12), vision.get("image_size", 224)
    if not isinstance(layers, int):
        raise ValueError(f"{source}: a ResNet image tower (layers={layers}) is not supported")
    if isinstance(image_size, (list, tuple)):
        if len(set(image_size)) != 1:
            raise ValueError(f"{source}: non-square image_size {image_size} is not supported")
        image_size = image_size[0]
    width = vision.get("width", 768)
    vocab = text.get("vocab_size", 49408)
    pool = text.get("pool_type", "argmax")
    if pool == "argmax":
        eos = vocab - 1  # argmax(ids) = the first EOT when it is the largest id
    elif pool == "eos":
        eos = text.get("eos_id", 2)
    else:
        raise ValueError(f"{source}: text pool_type {pool!r} is not supported")
    extra = dict(extra or {})
    bias = model_cfg.get("init_logit_bias")
    return ModelConfig(
        name=extra.get("name", name),
        embed_dim=model_cfg["embed_dim"],
        vision=VisionConfig(
            image_size=int(image_size),
            patch_size=vision.get("patch_size", 16),
            width=width,
            layers=layers,
            heads=width // vision.get("head_width", 64),
            mlp_ratio=vision.get("mlp_ratio", 4.0),
            layer_norm_eps=_eps(vision, source),
        ),
        text=TextConfig(
            context_length=text.get("context_length", 77),
            vocab_size=vocab,
            width=text.get("width", 512),
            layers=text.get("layers", 12),
            heads=text.get("heads", 8),
            mlp_ratio=text.get("mlp_ratio", 4.0),
            layer_norm_eps=_eps(text, source),
            pad_token_id=text.get("pad_id", 0),
            eos_token_id=eos,
        ),
        activation="quick_gelu" if model_cfg.get("quick_gelu") else "gelu",
        logit_scale_init=model_cfg.get("init_logit_scale", math.log(1 / 0.07)),
        logit_scale_max=extra.get("logit_scale_max", math.log(100.0)),
        logit_bias_init=None if bias is None else float(bias),
        preprocess=preprocess_from_openclip(preprocess_cfg or {}, int(image_size), extra, source),
    )


def preprocess_from_openclip(
    cfg: dict[str, Any], image_size: int, extra: dict[str, Any], source: str
) -> PreprocessConfig:
    """OpenCLIP ``preprocess_cfg`` (defaults: OpenAI mean/std, bicubic, shortest side + crop)."""
    interpolation = cfg.get("interpolation", "bicubic")
    if interpolation != "bicubic":
        raise ValueError(f"{source}: preprocess interpolation {interpolation!r} is not supported")
    mode = cfg.get("resize_mode", "shortest")
    if mode not in ("shortest", "squash"):
        raise ValueError(f"{source}: preprocess resize_mode {mode!r} is not supported")
    size = cfg.get("size", image_size)
    size = size[0] if isinstance(size, (list, tuple)) else size
    return PreprocessConfig(
        image_size=int(size),
        mean=tuple(cfg.get("mean", OPENAI_MEAN)),
        std=tuple(cfg.get("std", OPENAI_STD)),
        resize_mode=mode,
        background=tuple(extra.get("background", PreprocessConfig().background)),
    )


def openclip_config_from_model(config: ModelConfig) -> dict[str, Any]:
    """clipforge :class:`ModelConfig` → ``open_clip_config.json`` (``model_cfg`` +
    ``preprocess_cfg``), refusing what OpenCLIP's ``CLIP`` cannot express."""
    if config.projection != "linear":
        raise ValueError(f"model {config.name!r}: OpenCLIP's CLIP has no {config.projection} head")
    if config.text.pretrained:
        raise ValueError(f"model {config.name!r}: a pretrained text encoder cannot be exported")
    vision, text = config.vision, config.text
    vision_cfg: dict[str, Any] = {
        "image_size": vision.image_size,
        "layers": vision.layers,
        "width": vision.width,
        "head_width": vision.width // vision.heads,
        "patch_size": vision.patch_size,
        "mlp_ratio": vision.mlp_ratio,
    }
    text_cfg: dict[str, Any] = {
        "context_length": text.context_length,
        "vocab_size": text.vocab_size,
        "width": text.width,
        "heads": text.heads,
        "layers": text.layers,
        "mlp_ratio": text.mlp_ratio,
        "pad_id": text.pad_token_id,
    }
    if text.eos_token_id != text.vocab_size - 1:  # argmax pooling would miss the EOS
        text_cfg.update(pool_type="eos", eos_id=text.eos_token_id)
    for section, eps in ((vision_cfg, vision.layer_norm_eps), (text_cfg, text.layer_norm_eps)):
        if eps != 1e-5:
            section["norm_kwargs"] = {"eps": eps}
    model_cfg: dict[str, Any] = {"embed_dim": config.embed_dim}
    if config.activation == "quick_gelu":
        model_cfg["quick_gelu"] = True
    model_cfg.update(vision_cfg=vision_cfg, text_cfg=text_cfg)
    if config.logit_bias_init is not None:
        model_cfg["init_logit_bias"] = config.logit_bias_init
    model_cfg["init_logit_scale"] = config.logit_scale_init
    pre = config.preprocess
    preprocess_cfg = {
        "mean": list(pre.mean),
        "std": list(pre.std),
        "interpolation": "bicubic",
        "resize_mode": pre.resize_mode,
        "size": pre.image_size,
    }
    extra = {
        "name": config.name,
        "logit_scale_max": config.logit_scale_max,
        "background": list(pre.background),
    }
    return {"model_cfg": model_cfg, "preprocess_cfg": preprocess_cfg, CLIPFORGE_KEY: extra}
