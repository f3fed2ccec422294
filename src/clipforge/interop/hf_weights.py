"""Weights: Hugging Face ``CLIPModel`` state dict ↔ clipforge ``CLIP`` state dict.

Name map (clipforge → HF; towers ``visual`` → ``vision_model``, ``text`` → ``text_model``)::

    transformer.blocks.{i}.attn.qkv       = cat(encoder.layers.{i}.self_attn.{q,k,v}_proj) (dim 0)
    transformer.blocks.{i}.attn.out_proj  → encoder.layers.{i}.self_attn.out_proj
    transformer.blocks.{i}.ln_1 / ln_2    → encoder.layers.{i}.layer_norm1 / layer_norm2
    transformer.blocks.{i}.mlp.fc1 / fc2  → encoder.layers.{i}.mlp.fc1 / fc2
    visual.patch_embed.weight             → vision_model.embeddings.patch_embedding.weight
    visual.class_embedding                → vision_model.embeddings.class_embedding
    visual.positional_embedding           → vision_model.embeddings.position_embedding.weight
    visual.ln_pre / ln_post               → vision_model.pre_layrnorm (sic) / post_layernorm
    visual.proj.weight                    → visual_projection.weight
    text.token_embedding.weight           → text_model.embeddings.token_embedding.weight
    text.positional_embedding             → text_model.embeddings.position_embedding.weight
    text.ln_final                         → text_model.final_layer_norm
    text.proj.weight                      → text_projection.weight
    logit_scale                           → logit_scale

Both directions are pure re-indexing (``cat`` / ``chunk``), so values are bit-identical.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ..models.config import ModelConfig

_BLOCK = {
    "attn.out_proj": "self_attn.out_proj",
    "ln_1": "layer_norm1",
    "ln_2": "layer_norm2",
    "mlp.fc1": "mlp.fc1",
    "mlp.fc2": "mlp.fc2",
}
_PARAMS = ("weight", "bias")
_QKV = ("q_proj", "k_proj", "v_proj")


def encoder_pairs(ours: str, theirs: str, layers: int) -> list[tuple[str, str]]:
    """(clipforge name, HF name) of a tower's blocks, fused QKV aside (CLIP and SigLIP alike)."""
    pairs = []
    for i in range(layers):
        for block_name, hf_name in _BLOCK.items():
            for p in _PARAMS:
                pairs.append(
                    (
                        f"{ours}.transformer.blocks.{i}.{block_name}.{p}",
                        f"{theirs}.encoder.layers.{i}.{hf_name}.{p}",
                    )
                )
    return pairs


def encoder_qkv_pairs(ours: str, theirs: str, layers: int) -> list[tuple[str, list[str]]]:
    """(clipforge fused qkv name, [HF q, k, v names]) for a tower's blocks, weight and bias."""
    return [
        (
            f"{ours}.transformer.blocks.{i}.attn.qkv.{p}",
            [f"{theirs}.encoder.layers.{i}.self_attn.{n}.{p}" for n in _QKV],
        )
        for i in range(layers)
        for p in _PARAMS
    ]


def _name_pairs(config: ModelConfig) -> list[tuple[str, str]]:
    """(clipforge name, HF name) for every tensor except the fused QKV ones."""
    pairs = [
        ("visual.patch_embed.weight", "vision_model.embeddings.patch_embedding.weight"),
        ("visual.class_embedding", "vision_model.embeddings.class_embedding"),
        ("visual.positional_embedding", "vision_model.embeddings.position_embedding.weight"),
        ("visual.proj.weight", "visual_projection.weight"),
        ("text.token_embedding.weight", "text_model.embeddings.token_embedding.weight"),
        ("text.positional_embedding", "text_model.embeddings.position_embedding.weight"),
        ("text.proj.weight", "text_projection.weight"),
        ("logit_scale", "logit_scale"),
    ]
    norms = [
        ("visual.ln_pre", "vision_model.pre_layrnorm"),
        ("visual.ln_post", "vision_model.post_layernorm"),
        ("text.ln_final", "text_model.final_layer_norm"),
    ]
    pairs += [(f"{a}.{p}", f"{b}.{p}") for a, b in norms for p in _PARAMS]
    for ours, theirs, layers in _towers(config):
        pairs += encoder_pairs(ours, theirs, layers)
    return pairs


def _towers(config: ModelConfig) -> list[tuple[str, str, int]]:
    return [
        ("visual", "vision_model", config.vision.layers),
        ("text", "text_model", config.text.layers),
    ]


def _qkv_pairs(config: ModelConfig) -> list[tuple[str, list[str]]]:
    """(clipforge fused qkv name, [HF q, k, v names]) for every block, weight and bias."""
    return [pair for tower in _towers(config) for pair in encoder_qkv_pairs(*tower)]


def check_all_used(state: dict[str, torch.Tensor], used: set[str], what: str) -> None:
    left = sorted(k for k in state if k not in used and not k.endswith("position_ids"))
    if left:
        raise ValueError(f"{what}: tensors with no counterpart: {left[:8]}")


def to_hf_state_dict(
    state: dict[str, torch.Tensor], config: ModelConfig
) -> dict[str, torch.Tensor]:
    """clipforge ``CLIP.state_dict()`` → ``transformers.CLIPModel`` state dict."""
    out = {hf: state[ours] for ours, hf in _name_pairs(config)}
    for fused, names in _qkv_pairs(config):
        for name, part in zip(names, state[fused].chunk(3, dim=0)):
            out[name] = part.contiguous()
    used = {ours for ours, _ in _name_pairs(config)} | {f for f, _ in _qkv_pairs(config)}
    check_all_used(state, used, f"model {config.name!r}")
    return out


def from_hf_state_dict(
    hf_state: dict[str, torch.Tensor], config: ModelConfig, source: str
) -> dict[str, torch.Tensor]:
    """``transformers.CLIPModel`` state dict → clipforge ``CLIP`` state dict."""
    pairs, qkv = _name_pairs(config), _qkv_pairs(config)
    needed = [hf for _, hf in pairs] + [n for _, names in qkv for n in names]
    missing = [name for name in needed if name not in hf_state]
    if missing:
        raise ValueError(f"{source}: weights missing {len(missing)} tensors, e.g. {missing[:4]}")
    out = {ours: hf_state[hf] for ours, hf in pairs}
    for fused, names in qkv:
        out[fused] = torch.cat([hf_state[n] for n in names], dim=0)
    check_all_used(hf_state, set(needed), source)
    return out


def read_hf_weights(directory: Path) -> dict[str, torch.Tensor]:
    """All tensors of a ``save_pretrained`` directory: safetensors or ``pytorch_model.bin``,
    single file or sharded (``*.index.json``)."""
    from safetensors.torch import load_file

    def load_one(path: Path) -> dict[str, torch.Tensor]:
        if path.suffix == ".safetensors":
            return load_file(str(path))
        return torch.load(path, map_location="cpu", weights_only=True)

    for name in ("model.safetensors", "pytorch_model.bin"):
        if (directory / name).is_file():
            return load_one(directory / name)
        index = directory / f"{name}.index.json"
        if index.is_file():
            shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
            state: dict[str, torch.Tensor] = {}
            for shard in shards:
                state.update(load_one(directory / shard))
            return state
    raise FileNotFoundError(
        f"{directory}: no model.safetensors or pytorch_model.bin "
        "(nor a sharded index) in this Hugging Face directory"
    )
