"""Named model sizes. ``tiny`` trains on a laptop CPU in minutes; the ViT names use OpenAI CLIP
dims."""

from __future__ import annotations

from .config import ModelConfig, PreprocessConfig, TextConfig, VisionConfig

# Parameter count of each size as built (logit scale included, no buffers), as documented in the
# README's size table and held by tests/test_model_sizes.py. The ViT rows equal OpenAI CLIP's
# released checkpoints (ViT-B/32 151,277,313; ViT-B/16 149,620,737; ViT-L/14 427,616,513).
PARAMETERS: dict[str, int] = {
    "tiny": 11_781_121,
    "small": 35_134_465,
    "ViT-B-32": 151_277_313,
    "ViT-B-16": 149_620_737,
    "ViT-L-14": 427_616_513,
}

# Images of the built-in sets are icons and drawings: mean/std of 0.5 suits them as well as any.
_SIMPLE_NORM: tuple[float, float, float] = (0.5, 0.5, 0.5)  # both mean and std


def tiny() -> ModelConfig:
    return ModelConfig(
        name="tiny",
        embed_dim=256,
        vision=VisionConfig(image_size=64, patch_size=8, width=256, layers=6, heads=4),
        text=TextConfig(context_length=32, vocab_size=8192, width=256, layers=6, heads=4),
        preprocess=PreprocessConfig(image_size=64, mean=_SIMPLE_NORM, std=_SIMPLE_NORM),
    )


def small() -> ModelConfig:
    return ModelConfig(
        name="small",
        embed_dim=384,
        vision=VisionConfig(image_size=96, patch_size=8, width=384, layers=8, heads=6),
        text=TextConfig(context_length=64, vocab_size=16384, width=384, layers=8, heads=6),
        preprocess=PreprocessConfig(image_size=96, mean=_SIMPLE_NORM, std=_SIMPLE_NORM),
    )


def vit_b_32() -> ModelConfig:
    return ModelConfig(
        name="ViT-B-32",
        embed_dim=512,
        vision=VisionConfig(image_size=224, patch_size=32, width=768, layers=12, heads=12),
        text=TextConfig(
            context_length=77,
            vocab_size=49408,
            width=512,
            layers=12,
            heads=8,
            eos_token_id=49407,
            pad_token_id=49407,
        ),
        preprocess=PreprocessConfig(image_size=224),
    )


def vit_b_16() -> ModelConfig:
    config = vit_b_32()
    config.name = "ViT-B-16"
    config.vision.patch_size = 16
    return config


def vit_l_14() -> ModelConfig:
    return ModelConfig(
        name="ViT-L-14",
        embed_dim=768,
        vision=VisionConfig(image_size=224, patch_size=14, width=1024, layers=24, heads=16),
        text=TextConfig(
            context_length=77,
            vocab_size=49408,
            width=768,
            layers=12,
            heads=12,
            eos_token_id=49407,
            pad_token_id=49407,
        ),
        preprocess=PreprocessConfig(image_size=224),
    )
