"""Weights: OpenCLIP ``CLIP`` state dict ↔ clipforge ``CLIP`` state dict, and reading checkpoints.

Name map (clipforge → OpenCLIP; ``{t}`` = ``visual.`` or the text tower's prefix, which is empty in
OpenCLIP's ``CLIP`` and ``text.`` in its ``CustomTextCLIP`` — both are read)::

    (clipforge {t}transformer.blocks.{i}.X → OpenCLIP {t}transformer.resblocks.{i}.Y)
    attn.qkv.weight / attn.qkv.bias                → attn.in_proj_weight / attn.in_proj_bias
    attn.out_proj, ln_1, ln_2                      → the same names
    mlp.fc1 / mlp.fc2                              → mlp.c_fc / mlp.c_proj
    visual.patch_embed.weight                      → visual.conv1.weight
    visual.class_embedding / positional_embedding  → the same names
    visual.ln_pre / ln_post                        → the same names
    visual.proj.weight [D, W]                      → visual.proj [W, D] (transposed: x @ proj)
    text.token_embedding.weight                    → token_embedding.weight
    text.positional_embedding / ln_final           → positional_embedding / ln_final
    text.proj.weight [D, W]                        → text_projection [W, D] (transposed)
    logit_scale / logit_bias                       → the same names

OpenCLIP's fused ``in_proj`` is clipforge's ``qkv`` (both q, k, v stacked on dim 0), so every
tensor is copied or transposed: values are bit-identical both ways.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..models.config import ModelConfig

_BLOCK = {
    "attn.qkv.weight": "attn.in_proj_weight",
    "attn.qkv.bias": "attn.in_proj_bias",
    "attn.out_proj.weight": "attn.out_proj.weight",
    "attn.out_proj.bias": "attn.out_proj.bias",
    "ln_1.weight": "ln_1.weight",
    "ln_1.bias": "ln_1.bias",
    "ln_2.weight": "ln_2.weight",
    "ln_2.bias": "ln_2.bias",
    "mlp.fc1.weight": "mlp.c_fc.weight",
    "mlp.fc1.bias": "mlp.c_fc.bias",
    "mlp.fc2.weight": "mlp.c_proj.weight",
    "mlp.fc2.bias": "mlp.c_proj.bias",
}
_TRANSPOSED = {"visual.proj.weight", "text.proj.weight"}
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")  # DDP and torch.compile wrappers
_BUFFERS = {"attn_mask", "text.attn_mask"}  # OpenCLIP's causal mask, rebuilt, never learnt


def name_pairs(config: ModelConfig, text_prefix: str = "") -> list[tuple[str, str]]:
    """(clipforge name, OpenCLIP name) for every tensor of ``config``'s model."""
    pairs = [
        ("visual.patch_embed.weight", "visual.conv1.weight"),
        ("visual.class_embedding", "visual.class_embedding"),
        ("visual.positional_embedding", "visual.positional_embedding"),
        ("visual.proj.weight", "visual.proj"),
        ("text.token_embedding.weight", f"{text_prefix}token_embedding.weight"),
        ("text.positional_embedding", f"{text_prefix}positional_embedding"),
        ("text.proj.weight", f"{text_prefix}text_projection"),
        ("logit_scale", "logit_scale"),
    ]
    for norm in ("visual.ln_pre", "visual.ln_post"):
        pairs += [(f"{norm}.{p}", f"{norm}.{p}") for p in ("weight", "bias")]
    pairs += [(f"text.ln_final.{p}", f"{text_prefix}ln_final.{p}") for p in ("weight", "bias")]
    towers = (
        ("visual.", "visual.", config.vision.layers),
        ("text.", text_prefix, config.text.layers),
    )
    for ours, theirs, layers in towers:
        for i in range(layers):
            for our_name, their_name in _BLOCK.items():
                pairs.append(
                    (
                        f"{ours}transformer.blocks.{i}.{our_name}",
                        f"{theirs}transformer.resblocks.{i}.{their_name}",
                    )
                )
    if config.logit_bias_init is not None:
        pairs.append(("logit_bias", "logit_bias"))
    return pairs


def to_openclip_state_dict(
    state: dict[str, torch.Tensor], config: ModelConfig
) -> dict[str, torch.Tensor]:
    """clipforge ``CLIP.state_dict()`` → OpenCLIP ``CLIP`` state dict (contiguous, on CPU)."""
    out = {}
    for ours, theirs in name_pairs(config):
        tensor = state[ours].detach().cpu()
        out[theirs] = (tensor.t() if ours in _TRANSPOSED else tensor).contiguous()
    left = sorted(set(state) - {ours for ours, _ in name_pairs(config)})
    if left:
        raise ValueError(f"model {config.name!r}: tensors OpenCLIP has no place for: {left[:8]}")
    return out


def strip_wrappers(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop DDP's ``module.`` and ``torch.compile``'s ``_orig_mod.`` prefixes from every key."""
    out = {}
    for key, value in state.items():
        for prefix in _WRAPPER_PREFIXES:
            if key.startswith(prefix):
                key = key[len(prefix) :]
        out[key] = value
    return out


def text_prefix(state: dict[str, torch.Tensor]) -> str:
    """``""`` for OpenCLIP's ``CLIP`` layout, ``"text."`` for ``CustomTextCLIP``'s."""
    return "text." if "text.token_embedding.weight" in state else ""


def from_openclip_state_dict(
    state: dict[str, torch.Tensor], config: ModelConfig, source: str
) -> dict[str, torch.Tensor]:
    """OpenCLIP state dict (either layout, wrappers stripped) → clipforge ``CLIP`` state dict.

    Raises ``ValueError`` naming ``source`` when a tensor is missing, has another shape than
    ``config`` needs, or has no counterpart (another architecture)."""
    pairs = name_pairs(config, text_prefix(state))
    missing = [theirs for _, theirs in pairs if theirs not in state]
    if missing:
        raise ValueError(
            f"{source}: not this architecture ({config.name}): missing {len(missing)} tensors, "
            f"e.g. {missing[:3]}"
        )
    from ..models.clip import CLIP

    with torch.device("meta"):
        shapes = {k: v.shape for k, v in CLIP(config).state_dict().items()}
    out = {}
    for ours, theirs in pairs:
        tensor = state[theirs]
        if ours in _TRANSPOSED:
            tensor = tensor.t()
        elif ours in ("logit_scale", "logit_bias") and tensor.numel() == 1:
            tensor = tensor.reshape(())  # OpenCLIP's nonscalar_logit_scale stores [1]
        if tuple(tensor.shape) != tuple(shapes[ours]):
            raise ValueError(
                f"{source}: not this architecture ({config.name}): {theirs} has shape "
                f"{tuple(state[theirs].shape)}, expected {tuple(shapes[ours])}"
            )
        out[ours] = tensor.contiguous()
    used = {theirs for _, theirs in pairs} | _BUFFERS
    left = sorted(k for k in state if k not in used)
    if left:
        raise ValueError(
            f"{source}: not this architecture ({config.name}): tensors with no counterpart, "
            f"e.g. {left[:4]}"
        )
    return out


def read_openclip_weights(path: Path) -> dict[str, torch.Tensor]:
    """The model tensors of an OpenCLIP weights file: ``open_clip_model.safetensors``,
    ``open_clip_pytorch_model.bin`` or an ``open_clip_train`` checkpoint (``epoch_N.pt``: a dict
    whose ``state_dict`` holds them), wrapper prefixes removed.

    Pickles are read with ``weights_only=True`` (no code runs); an OpenAI TorchScript archive is
    refused (convert it with OpenCLIP first)."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: weights file not found")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return strip_wrappers(load_file(str(path)))
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # pickle errors come in many types; the message says which
        raise ValueError(
            f"{path}: not a weights-only PyTorch checkpoint ({type(error).__name__}: "
            f"{str(error).splitlines()[0][:160]})"
        ) from None
    if isinstance(checkpoint, dict) and isinstance(checkpoint.get("state_dict"), dict):
        checkpoint = checkpoint["state_dict"]
    if not isinstance(checkpoint, dict) or not all(
        isinstance(v, torch.Tensor) for v in checkpoint.values()
    ):
        raise ValueError(f"{path}: no state dict of tensors in this checkpoint")
    return strip_wrappers(checkpoint)
