"""Image → tensor transforms with Pillow and NumPy only (no torchvision).

Randomness comes from an explicit :class:`random.Random` per sample, seeded from (seed, epoch,
index) by the loader, so augmentations are identical whatever the number of workers and after a
resume.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from .preprocess import PreprocessConfig

RESAMPLE = Image.Resampling.BICUBIC


def resize_shortest(image: Image.Image, size: int) -> Image.Image:
    """Shortest side to ``size``, the other to ``int(size * long / short)``: truncated as
    torchvision's ``Resize(size)`` (OpenAI CLIP, OpenCLIP) and HF's ``CLIPImageProcessor`` do, so
    the same image gives those models the same pixels."""
    width, height = image.size
    short, long = min(width, height), max(width, height)
    new_long = max(size, int(size * long / short))
    new_size = (size, new_long) if width <= height else (new_long, size)
    if image.format == "JPEG" and max(width, height) > 2 * size:
        image.draft("RGB", new_size)  # decode JPEG at reduced scale: far less work
    return image.resize(new_size, RESAMPLE, reducing_gap=3.0)


def center_crop(image: Image.Image, size: int) -> Image.Image:
    width, height = image.size
    left, top = (width - size) // 2, (height - size) // 2
    return image.crop((left, top, left + size, top + size))


def random_resized_crop(
    image: Image.Image,
    size: int,
    rng: random.Random,
    scale: tuple[float, float],
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
) -> Image.Image:
    """Inception-style crop: random area fraction in ``scale`` and aspect ratio, resized to size."""
    width, height = image.size
    area = width * height
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(*log_ratio))
        crop_w = round(math.sqrt(target * aspect))
        crop_h = round(math.sqrt(target / aspect))
        if 0 < crop_w <= width and 0 < crop_h <= height:
            left = rng.randint(0, width - crop_w)
            top = rng.randint(0, height - crop_h)
            return image.resize(
                (size, size), RESAMPLE, box=(left, top, left + crop_w, top + crop_h)
            )
    return center_crop(resize_shortest(image, size), size)  # fallback: centre crop


@dataclass
class ImageTransform:
    """PIL RGB image → normalised float tensor [3, S, S]."""

    preprocess: PreprocessConfig
    train: bool = False
    crop_scale: tuple[float, float] = (0.8, 1.0)  # random resized crop area range (training)
    hflip: bool = False  # off by default: captions may say left/right

    def __call__(self, image: Image.Image, rng: random.Random | None = None) -> torch.Tensor:
        size = self.preprocess.image_size
        if image.mode != "RGB":
            from .record import to_rgb

            image = to_rgb(image, self.preprocess.background)
        if self.train:
            rng = rng or random.Random()
            image = random_resized_crop(image, size, rng, self.crop_scale)
            if self.hflip and rng.random() < 0.5:
                image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        elif self.preprocess.resize_mode == "squash":
            image = image.resize((size, size), RESAMPLE)
        else:
            image = center_crop(resize_shortest(image, size), size)
        return to_tensor(image, self.preprocess.mean, self.preprocess.std)


def to_tensor(
    image: Image.Image, mean: tuple[float, float, float], std: tuple[float, float, float]
) -> torch.Tensor:
    """An RGB image → normalised float32 pixels [3, H, W]: (pixel / 255 − mean) / std."""
    pixels = np.asarray(image, dtype=np.float32) / 255.0  # [H, W, 3]
    normalised = (pixels - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return torch.from_numpy(np.ascontiguousarray(normalised.transpose(2, 0, 1)))


def eval_transform(preprocess: PreprocessConfig) -> ImageTransform:
    """The deterministic transform a model's weights expect (returned by ``clipforge.load``)."""
    return ImageTransform(preprocess, train=False)
