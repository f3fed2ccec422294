"""A small synthetic image-text source for fast tests: coloured shapes with captions."""

from __future__ import annotations

import random

from PIL import Image, ImageDraw

from clipforge.data.record import RawRecord
from clipforge.data.sources.base import MapSource

COLORS = {
    "red": (220, 30, 30),
    "green": (30, 180, 30),
    "blue": (30, 60, 220),
    "yellow": (230, 210, 20),
}
SHAPES = ("circle", "square", "triangle")


def draw(color: str, shape: str, size: int = 32, jitter: int = 0) -> Image.Image:
    image = Image.new("RGB", (size, size), (255, 255, 255))
    pen = ImageDraw.Draw(image)
    lo, hi = 4 + jitter, size - 4 - jitter
    if shape == "circle":
        pen.ellipse((lo, lo, hi, hi), fill=COLORS[color])
    elif shape == "square":
        pen.rectangle((lo, lo, hi, hi), fill=COLORS[color])
    else:
        pen.polygon([(size // 2, lo), (lo, hi), (hi, hi)], fill=COLORS[color])
    return image


class ShapesSource(MapSource):
    name = "shapes"

    def __init__(self, count: int = 48, seed: int = 0, bad_keys: frozenset[int] = frozenset()):
        rng = random.Random(seed)
        self.items = [
            (rng.choice(list(COLORS)), rng.choice(SHAPES), rng.randint(0, 3)) for _ in range(count)
        ]
        self.bad_keys = bad_keys

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> RawRecord:
        color, shape, jitter = self.items[index]
        if index in self.bad_keys:
            return RawRecord(f"shape-{index}", b"not an image", (f"a {color} {shape}",))
        return RawRecord(
            f"shape-{index}",
            draw(color, shape, jitter=jitter),
            (f"a {color} {shape}", f"a drawing of a {shape} in {color}"),
            {"label": SHAPES.index(shape)},
        )

    def class_names(self) -> list[str]:
        return list(SHAPES)


def micro_model_overrides() -> dict:
    """Shrinks ``tiny`` to a model that trains a step in milliseconds."""
    return {
        "embed_dim": 32,
        "vision.image_size": 32,
        "vision.patch_size": 8,
        "vision.width": 32,
        "vision.layers": 1,
        "vision.heads": 2,
        "preprocess.image_size": 32,
        "text.width": 32,
        "text.layers": 1,
        "text.heads": 2,
        "text.context_length": 16,
    }


def micro_train_module(objective: str = "clip", params: dict | None = None):
    """A seeded ``TrainModule`` (micro model, vocabulary 64, EOS id 2) with one objective."""
    import torch

    from clipforge.models import create_model
    from clipforge.training.config import ModelSection, ObjectiveSpec
    from clipforge.training.module import TrainModule, build_objectives
    from clipforge.training.setup import build_model_config

    objectives = build_objectives([ObjectiveSpec(objective, params=params or {})])
    config = build_model_config(ModelSection(overrides=micro_model_overrides()), objectives)
    config.text.vocab_size = 64
    torch.manual_seed(0)
    return TrainModule(create_model(config), objectives, {objective: 1.0})


def save_micro_model(directory):
    """A micro model directory (with tokenizer) to start from: a teacher, a model to refine."""
    import clipforge
    from clipforge.data.tokenizer import Tokenizer
    from clipforge.models.io import save_model_dir
    from clipforge.training.config import ModelSection
    from clipforge.training.setup import build_model_config

    config = build_model_config(ModelSection(overrides=micro_model_overrides()), {})
    tokenizer = Tokenizer.train(ShapesSource(24).captions(), vocab_size=300, context_length=16)
    config.text.vocab_size = tokenizer.vocab_size
    config.text.eos_token_id, config.text.pad_token_id = tokenizer.eot_id, tokenizer.pad_id
    save_model_dir(directory, clipforge.create_model(config), tokenizer)
    return directory
