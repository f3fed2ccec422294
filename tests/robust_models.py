"""Coloured shapes whose class is the colour, and a micro CLIP trained on them in seconds: the
trained model the robustness tests attack (tests/test_robustness.py)."""

from __future__ import annotations

import random

import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from clipforge.data.record import RawRecord
from clipforge.data.sources.base import MapSource
from clipforge.data.tokenizer import Tokenizer
from clipforge.evaluation import EncodeConfig
from clipforge.models import CLIP

from tiny_clip import micro_config

QUIET = EncodeConfig(batch_size=32, workers=0, progress=False)
COLOURS = {"red": (220, 30, 30), "green": (30, 180, 30), "blue": (30, 60, 220)}
SHAPES = ("circle", "square", "triangle")


class ColourShapes(MapSource):
    """Coloured shapes; the class is the colour, the captions name colour and shape."""

    name = "colour-shapes"

    def __init__(self, count: int, seed: int):
        rng = random.Random(seed)
        self.items = [
            (rng.randrange(len(COLOURS)), rng.choice(SHAPES), rng.randint(2, 6))
            for _ in range(count)
        ]

    def __len__(self):
        return len(self.items)

    def image(self, index):
        colour, shape, margin = self.items[index]
        image = Image.new("RGB", (32, 32), (255, 255, 255))
        pen, fill = ImageDraw.Draw(image), list(COLOURS.values())[colour]
        box = (margin, margin, 32 - margin, 32 - margin)
        if shape == "circle":
            pen.ellipse(box, fill=fill)
        elif shape == "square":
            pen.rectangle(box, fill=fill)
        else:
            pen.polygon(
                [(16, margin), (margin, 32 - margin), (32 - margin, 32 - margin)], fill=fill
            )
        return image

    def __getitem__(self, index):
        colour, shape, _ = self.items[index]
        name = list(COLOURS)[colour]
        captions = (f"a {name} {shape}", f"a drawing of a {shape} in {name}")
        return RawRecord(f"s{index}", self.image(index), captions, {"label": colour})

    def class_names(self):
        return list(COLOURS)


CAPTIONS = [f"a {c} {s}" for c in COLOURS for s in SHAPES] + [
    f"a drawing of a {s} in {c}" for c in COLOURS for s in SHAPES
]


def train_micro(seed: int, steps: int = 150, start: CLIP | None = None):
    """A micro CLIP trained on coloured shapes until zero-shot colour accuracy is high; with
    ``start``, a copy of that model trained on (fine-tuned with another data order)."""
    torch.manual_seed(seed)
    tokenizer = Tokenizer.train(CAPTIONS, vocab_size=300, context_length=12, min_frequency=1)
    config = micro_config(tokenizer, context_length=12)
    config.text.eos_token_id, config.text.pad_token_id = tokenizer.eot_id, tokenizer.pad_id
    model = CLIP(config)
    model.init_weights()
    if start is not None:
        model.load_state_dict(start.state_dict())
    source = ColourShapes(96, seed=100 + seed)
    from clipforge.data.transforms import eval_transform

    transform = eval_transform(config.preprocess)
    images = torch.stack([transform(source.image(i)) for i in range(len(source))])
    captions = [source[i].captions for i in range(len(source))]
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(seed)
    for step in range(steps):
        rows = torch.randperm(len(source), generator=generator)[:32]
        texts = tokenizer([captions[r][step % 2] for r in rows.tolist()])
        out = model(images[rows], texts)
        logits = out.logit_scale * out.image_embeds @ out.text_embeds.T
        target = torch.arange(len(rows))
        loss = (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    return model, tokenizer
