"""Hugging Face SigLIP directories (``transformers.SiglipModel``, ``save_pretrained``) → clipforge.

SigLIP (Zhai et al., "Sigmoid Loss for Language Image Pre-Training", ICCV 2023) is CLIP's dual
encoder with these differences, each an explicit clipforge config value (defaults keep CLIP)::

    HF SigLIP                                   clipforge
    no class token; MAP head over patches  →    vision.pooling = "map"
    patch-embedding conv with a bias       →    vision.patch_bias = True
    no LayerNorm before the blocks         →    vision.pre_norm = False
    pooled vision feature is the embedding →    vision.projected = False (embed_dim = width)
    text: no causal mask                   →    text.causal = False
    text: pooled at the last position      →    text.pool_at = "last"
    text head: Linear with a bias          →    text.projection_bias = True
    hidden_act "gelu_pytorch_tanh"         →    activation = "gelu_tanh"
    logit_scale t, logit_bias b            →    logit_scale, logit_bias; t unclamped
    mean = std = 0.5, squashed to a square →    preprocess (from preprocessor_config.json)

Weights map one to one (the q/k/v projections are concatenated into clipforge's fused ``qkv``),
so embeddings equal ``get_image_features`` / ``get_text_features`` to float rounding and
``logits_per_image`` = exp(t) · cos + b. SigLIP's tokenizer (SentencePiece, no start token,
padded to the full context) is not converted: :func:`load_siglip_dir` returns no tokenizer.
Variants that do not map (SigLIP 2 / NaFlex, a vision model without its head, towers of
different widths) are refused naming the config field.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch

from ..models.clip import CLIP
from ..models.config import Activation, ModelConfig, PreprocessConfig, TextConfig, VisionConfig
from .hf_config import EXTRA_KEY, preprocess_from_hf
from .hf_weights import check_all_used, encoder_pairs, encoder_qkv_pairs, read_hf_weights

MODEL_TYPE = "siglip"
# HF hidden_act → clipforge activation ("gelu_new" is the same tanh formula, written out)
ACTIVATIONS: dict[str, Activation] = {
    "gelu_pytorch_tanh": "gelu_tanh",
    "gelu_new": "gelu_tanh",
    "gelu": "gelu",
    "quick_gelu": "quick_gelu",
}
_PARAMS = ("weight", "bias")
_HEAD = {  # visual.pool.* ← vision_model.head.*
    "probe": "probe",
    "attention.in_proj_weight": "attention.in_proj_weight",
    "attention.in_proj_bias": "attention.in_proj_bias",
    **{f"attention.out_proj.{p}": f"attention.out_proj.{p}" for p in _PARAMS},
    **{f"norm.{p}": f"layernorm.{p}" for p in _PARAMS},
    **{f"mlp.{fc}.{p}": f"mlp.{fc}.{p}" for fc in ("fc1", "fc2") for p in _PARAMS},
}


def _config_json(directory: Path) -> dict[str, Any]:
    return json.loads((directory / "config.json").read_text())


def _int(value: Any, field: str, source: str) -> int:
    """A square size or a single token id; lists of several values are refused by name."""
    if isinstance(value, (list, tuple)):
        if len(set(value)) != 1:
            raise ValueError(f"{source}: {field} {list(value)}: expected one value")
        value = value[0]
    return int(value)


def _ratio(tower: dict[str, Any], name: str, source: str) -> float:
    ratio = tower["intermediate_size"] / tower["hidden_size"]
    if int(tower["hidden_size"] * ratio) != tower["intermediate_size"]:
        raise ValueError(
            f"{source}: {name}.intermediate_size {tower['intermediate_size']} is not "
            f"{name}.hidden_size × an mlp_ratio"
        )
    return ratio


def siglip_model_config(directory: Path, raw: dict[str, Any]) -> ModelConfig:
    """``config.json`` of a ``SiglipModel`` (with transformers' defaults filled) → ModelConfig."""
    from .hf import require_transformers

    source = str(directory / "config.json")
    if raw.get("model_type") != MODEL_TYPE:
        raise ValueError(
            f"{source}: model_type {raw.get('model_type')!r}; expected {MODEL_TYPE!r} "
            "(SigLIP 2 / NaFlex and other variants are not supported)"
        )
    hf = require_transformers().SiglipConfig.from_pretrained(str(directory))
    vision, text = hf.vision_config.to_dict(), hf.text_config.to_dict()
    if not vision.get("vision_use_head", True):
        raise ValueError(
            f"{source}: vision_config.vision_use_head is false (no attention-pooling head, "
            "so no image embedding); only SigLIP's MAP-pooled vision tower is supported"
        )
    for name, tower in (("vision_config", vision), ("text_config", text)):
        if tower["hidden_act"] not in ACTIVATIONS:
            raise ValueError(
                f"{source}: {name}.hidden_act {tower['hidden_act']!r} is not supported; "
                f"expected one of {sorted(ACTIVATIONS)}"
            )
    activation = ACTIVATIONS[vision["hidden_act"]]
    if ACTIVATIONS[text["hidden_act"]] != activation:
        raise ValueError(
            f"{source}: text_config.hidden_act {text['hidden_act']!r} differs from "
            f"vision_config.hidden_act {vision['hidden_act']!r}; clipforge has one activation"
        )
    if vision.get("num_channels", 3) != 3:
        raise ValueError(f"{source}: vision_config.num_channels {vision['num_channels']}; need 3")
    embed_dim = int(vision["hidden_size"])
    projection_size = int(text.get("projection_size") or text["hidden_size"])
    if projection_size != embed_dim:
        raise ValueError(
            f"{source}: text_config.projection_size {projection_size} differs from "
            f"vision_config.hidden_size {embed_dim}; both embeddings must share one size"
        )
    image_size = _int(vision["image_size"], "vision_config.image_size", source)
    default = PreprocessConfig(
        image_size=image_size, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), resize_mode="squash"
    )
    extra = dict(raw.get(EXTRA_KEY) or {})
    eos = text.get("eos_token_id")
    pad = text.get("pad_token_id")
    return ModelConfig(
        name=extra.get("name", "hf-siglip"),
        embed_dim=embed_dim,
        vision=VisionConfig(
            image_size=image_size,
            patch_size=_int(vision["patch_size"], "vision_config.patch_size", source),
            width=embed_dim,
            layers=int(vision["num_hidden_layers"]),
            heads=int(vision["num_attention_heads"]),
            mlp_ratio=_ratio(vision, "vision_config", source),
            layer_norm_eps=float(vision["layer_norm_eps"]),
            pooling="map",
            patch_bias=True,
            pre_norm=False,
            projected=False,
        ),
        text=TextConfig(
            context_length=int(text["max_position_embeddings"]),
            vocab_size=int(text["vocab_size"]),
            width=int(text["hidden_size"]),
            layers=int(text["num_hidden_layers"]),
            heads=int(text["num_attention_heads"]),
            mlp_ratio=_ratio(text, "text_config", source),
            layer_norm_eps=float(text["layer_norm_eps"]),
            pad_token_id=_int(pad if pad is not None else 1, "text_config.pad_token_id", source),
            eos_token_id=_int(eos if eos is not None else 1, "text_config.eos_token_id", source),
            causal=False,
            pool_at="last",
            projection_bias=True,
        ),
        activation=activation,
        logit_scale_init=math.log(10.0),  # SigLIP's init t = ln 10, b = −10 (the loaded values win)
        logit_scale_max=None,  # big_vision leaves t free
        logit_bias_init=-10.0,
        preprocess=preprocess_from_hf(directory, image_size, extra, default),
    )


def siglip_name_pairs(config: ModelConfig) -> list[tuple[str, str]]:
    """(clipforge name, HF ``SiglipModel`` name) of every tensor but the fused QKV ones."""
    pairs = [
        ("visual.positional_embedding", "vision_model.embeddings.position_embedding.weight"),
        ("text.token_embedding.weight", "text_model.embeddings.token_embedding.weight"),
        ("text.positional_embedding", "text_model.embeddings.position_embedding.weight"),
        ("logit_scale", "logit_scale"),
        ("logit_bias", "logit_bias"),
    ]
    for p in _PARAMS:
        pairs += [
            (f"visual.patch_embed.{p}", f"vision_model.embeddings.patch_embedding.{p}"),
            (f"visual.ln_post.{p}", f"vision_model.post_layernorm.{p}"),
            (f"text.ln_final.{p}", f"text_model.final_layer_norm.{p}"),
            (f"text.proj.{p}", f"text_model.head.{p}"),
        ]
    pairs += [(f"visual.pool.{ours}", f"vision_model.head.{hf}") for ours, hf in _HEAD.items()]
    pairs += encoder_pairs("visual", "vision_model", config.vision.layers)
    pairs += encoder_pairs("text", "text_model", config.text.layers)
    return pairs


def from_siglip_state_dict(
    hf_state: dict[str, torch.Tensor], config: ModelConfig, source: str
) -> dict[str, torch.Tensor]:
    """``SiglipModel`` state dict → clipforge ``CLIP`` state dict (values bit-identical)."""
    pairs = siglip_name_pairs(config)
    qkv = encoder_qkv_pairs("visual", "vision_model", config.vision.layers)
    qkv += encoder_qkv_pairs("text", "text_model", config.text.layers)
    needed = [hf for _, hf in pairs] + [name for _, names in qkv for name in names]
    missing = [name for name in needed if name not in hf_state]
    if missing:
        raise ValueError(f"{source}: weights missing {len(missing)} tensors, e.g. {missing[:4]}")
    out = {ours: hf_state[hf] for ours, hf in pairs}
    for name in ("logit_scale", "logit_bias"):  # HF stores them as [1]
        out[name] = out[name].reshape(())
    for fused, names in qkv:
        out[fused] = torch.cat([hf_state[name] for name in names], dim=0)
    check_all_used(hf_state, set(needed), source)
    return out


def load_siglip_dir(directory: str | Path, device: str | torch.device = "cpu") -> CLIP:
    """A ``transformers.SiglipModel`` directory → clipforge ``CLIP`` in eval mode."""
    directory = Path(directory)
    config = siglip_model_config(directory, _config_json(directory))
    state = from_siglip_state_dict(read_hf_weights(directory), config, str(directory))
    model = CLIP(config)
    model.load_state_dict(state, strict=True)
    return model.to(device).eval()
