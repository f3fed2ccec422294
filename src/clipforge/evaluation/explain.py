"""``clipforge explain``: where in an image a model finds a text, as a picture and a box.

The DenseCLIP score map of the text over the image (:mod:`.dense_map`) is coloured with
matplotlib's ``jet`` colour map (blue: least similar patch, red: most), min–max normalised and
blended over the image at ``alpha`` 0.5, only over the part the model sees (the centre crop of a
non-square image); the GroundVLP box is drawn in white with a black edge and the peak marked.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw

from ..common.files import atomic_write
from ..common.optional import require
from ..data.record import BadRecordError, RawRecord, decode_image
from .dense_map import Grounded, InputFrame, ground, patch_tokens, score_maps, upsample
from .embedding import _device_of, inference_mode


@dataclass
class ExplainConfig:
    threshold: float = 0.5  # GroundVLP box: fraction of the normalised map's maximum
    alpha: float = 0.5  # opacity of the heat map over the image
    device: str = "cpu"

    def __post_init__(self):
        if not 0.0 < self.threshold <= 1.0 or not 0.0 <= self.alpha <= 1.0:
            raise ValueError(
                f"explain needs 0 < threshold ≤ 1 and 0 ≤ alpha ≤ 1; got threshold="
                f"{self.threshold}, alpha={self.alpha}"
            )


def read_image(path: str | Path) -> Image.Image:
    """The image at ``path`` as RGB; a missing or undecodable file is a one-line error."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such image file")
    try:
        return decode_image(RawRecord(str(path), path, ()))
    except BadRecordError as error:
        raise ValueError(f"{path}: {error.reason}") from None


def text_map(model, preprocess, tokenizer, image: Image.Image, text: str) -> torch.Tensor:
    """The g × g score map of ``text`` over ``image`` (cosines, on the CPU)."""
    device = _device_of(model)
    with inference_mode(model, None):
        tokens = patch_tokens(model, preprocess(image)[None].to(device))
        text_embeds = model.encode_text(tokenizer([text]).to(device), normalize=True)
        return score_maps(tokens, text_embeds)[0].cpu()


def overlay(
    image: Image.Image,
    grid_map: torch.Tensor,
    found: Grounded,
    frame: InputFrame,
    alpha: float = 0.5,
) -> Image.Image:
    """``image`` with the normalised map blended over the model's view, the box and peak drawn."""
    colormaps = require("matplotlib", "plots", "the explain overlay's colour map").colormaps
    dense = upsample(grid_map[None], frame.size)[0]
    low, high = dense.min(), dense.max()
    normalised = ((dense - low) / (high - low) if high > low else torch.ones_like(dense)).numpy()
    heat = Image.fromarray((colormaps["jet"](normalised)[..., :3] * 255).astype(np.uint8))
    left, top = round(frame.left), round(frame.top)
    view = (round(frame.size * frame.scale_x), round(frame.size * frame.scale_y))
    heat = heat.resize(view, Image.Resampling.BILINEAR)
    seen = image.crop((left, top, left + view[0], top + view[1]))
    result = image.copy()
    result.paste(Image.blend(seen, heat, alpha), (left, top))
    pen = ImageDraw.Draw(result)
    line = max(2, round(min(image.size) / 120))
    x0, y0, x1, y1 = found.box
    pen.rectangle((x0, y0, x1 - 1, y1 - 1), outline=(0, 0, 0), width=line + 2)
    pen.rectangle((x0, y0, x1 - 1, y1 - 1), outline=(255, 255, 255), width=line)
    x, y, radius = *found.peak, 2 * line
    pen.ellipse(
        (x - radius, y - radius, x + radius, y + radius), fill=(255, 255, 255), outline=(0, 0, 0)
    )
    return result


def explain(
    model_path: str | Path,
    image_path: str | Path,
    text: str,
    out: str | Path,
    config: ExplainConfig | None = None,
) -> dict[str, Any]:
    """Write the overlay PNG to ``out``; return the box, peak and largest patch cosine::

    {"image", "text", "box": [x0, y0, x1, y1], "peak": [x, y], "max_similarity", "threshold",
     "out"}   (pixels of the original image, x1/y1 exclusive)
    """
    from ..loading import load

    config = config or ExplainConfig()
    if not text.strip():
        raise ValueError("--text is empty; give the phrase to find in the image")
    image = read_image(image_path)
    model, preprocess, tokenizer = load(model_path, device=config.device)
    if tokenizer is None:
        raise ValueError(f"{model_path}: the model has no tokenizer files (tokenizer.json)")
    grid_map = text_map(model, preprocess, tokenizer, image, text)
    frame = InputFrame.of(*image.size, preprocess.preprocess)
    found = ground(grid_map, frame, config.threshold)
    picture = overlay(image, grid_map, found, frame, config.alpha)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, lambda tmp: picture.save(tmp, format="PNG"))
    return {
        "image": str(image_path),
        "text": text,
        "box": list(found.box),
        "peak": list(found.peak),
        "max_similarity": found.max_score,
        "threshold": config.threshold,
        "out": str(out),
    }
