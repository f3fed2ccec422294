"""Backgrounds for the generated emoji scenes: plain colours, gradients and noise textures.

Each is drawn with NumPy from the scene's own :class:`numpy.random.Generator`, so a scene is the
same bytes on every machine. Three kinds, so a grounding model cannot find objects by "anything
that is not white": a grounding map has to separate an emoji from colour ramps and texture.

* ``plain``     one colour
* ``gradient``  a linear ramp between two colours at a random angle
* ``noise``     value noise: a coarse grid (4–12 cells a side) of colours within ±64 of a random
                base colour, upsampled bicubically, plus fine per-pixel grain (σ = 8 of 255)
"""

from __future__ import annotations

import numpy as np
from PIL import Image

BACKGROUND_KINDS = ("plain", "gradient", "noise")


def random_colour(rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, 256, size=3).astype(np.float32)


def plain(size: int, rng: np.random.Generator) -> np.ndarray:
    return np.broadcast_to(random_colour(rng), (size, size, 3)).copy()


def gradient(size: int, rng: np.random.Generator) -> np.ndarray:
    start, end = random_colour(rng), random_colour(rng)
    angle = rng.uniform(0.0, 2 * np.pi)
    steps = np.arange(size, dtype=np.float32) / max(size - 1, 1)
    ramp = steps[None, :] * np.float32(np.cos(angle)) + steps[:, None] * np.float32(np.sin(angle))
    ramp = (ramp - ramp.min()) / max(float(ramp.max() - ramp.min()), 1e-6)  # [S, S] in [0, 1]
    return start + (end - start) * ramp[..., None]


def noise(size: int, rng: np.random.Generator) -> np.ndarray:
    cells = int(rng.integers(4, 13))
    jitter = rng.integers(-64, 65, size=(cells, cells, 3))
    coarse = np.clip(random_colour(rng) + jitter, 0, 255).astype(np.uint8)
    smooth = np.asarray(
        Image.fromarray(coarse).resize((size, size), Image.Resampling.BICUBIC), np.float32
    )
    return smooth + 8.0 * rng.standard_normal((size, size, 3), dtype=np.float32)


_DRAW = {"plain": plain, "gradient": gradient, "noise": noise}


def draw_background(kind: str, size: int, rng: np.random.Generator) -> Image.Image:
    """An RGB ``size`` × ``size`` background of ``kind`` (one of :data:`BACKGROUND_KINDS`)."""
    pixels = _DRAW[kind](size, rng)
    return Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8), "RGB")
