"""Patch–text score maps (DenseCLIP) and a box read off a map (GroundVLP).

**Score map** (Rao et al., *DenseCLIP*, CVPR 2022): every patch token of the image tower's last
layer goes through the same final LayerNorm and projection as the pooled token
(``CLIP.encode_image(return_tokens=True)`` returns them, [B, N, D]), and its cosine with the text
embedding is that patch's score::

    S[b, i, j] = cos(proj(LN(z_last[b, 1 + i·g + j])), E_text(t_b))     g = image_size / patch

giving a g × g map per (image, text), upsampled bilinearly to the image. A model trained only on
pooled embeddings (CLIP's CLS token) was never asked to align its patches, so its maps can be
weak; token-level objectives (FILIP) train exactly these features.

**Box** (Shen et al., *GroundVLP*, AAAI 2024, who threshold a GradCAM map): min–max normalise the
map over the image, keep pixels ≥ ``threshold`` (default 0.5 of the normalised maximum), take
the 8-connected component that holds the peak and return its bounding box. The peak and the box
are found at the model's input resolution (``image_size``²) and mapped back to the original
image through the eval transform's resize and centre crop.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..data.preprocess import PreprocessConfig

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 in pixels, x1/y1 exclusive


def patch_tokens(model, images: torch.Tensor) -> torch.Tensor:
    """images [B, 3, S, S] → L2-normalised projected patch tokens [B, g, g, D] (no CLS)."""
    _, tokens = model.encode_image(images, return_tokens=True, normalize=False)  # [B, N, D]
    side = model.config.vision.image_size // model.config.vision.patch_size
    if tokens.shape[1] != side * side:
        raise ValueError(f"expected {side}² patch tokens, got {tokens.shape[1]}")
    return F.normalize(tokens.float(), dim=-1).view(tokens.shape[0], side, side, -1)


def score_maps(tokens: torch.Tensor, text_embeds: torch.Tensor) -> torch.Tensor:
    """Normalised patch tokens [B, g, g, D] · normalised texts [B, D] → cosines [B, g, g]
    (row b of the texts goes with image b)."""
    return torch.einsum("bijd,bd->bij", tokens, F.normalize(text_embeds.float(), dim=-1))


def upsample(maps: torch.Tensor, size: int) -> torch.Tensor:
    """[B, g, g] → [B, size, size], bilinear (half-pixel centres, as an image resize)."""
    return F.interpolate(maps[:, None], size=(size, size), mode="bilinear", align_corners=False)[
        :, 0
    ]


def connected_box(mask: torch.Tensor, seed: tuple[int, int]) -> Box:
    """Bounding box of the 8-connected component of ``mask`` [H, W] (bool) holding ``seed``
    (row, column), grown by repeated 3 × 3 dilation inside the mask."""
    region = torch.zeros_like(mask, dtype=torch.float32)
    region[seed] = 1.0
    allowed = mask.float()
    while True:
        grown = F.max_pool2d(region[None, None], 3, stride=1, padding=1)[0, 0] * allowed
        if torch.equal(grown, region):
            break
        region = grown
    rows = region.any(dim=1).nonzero()[:, 0]
    columns = region.any(dim=0).nonzero()[:, 0]
    return int(columns[0]), int(rows[0]), int(columns[-1]) + 1, int(rows[-1]) + 1


@dataclass(frozen=True)
class InputFrame:
    """Where the model's ``size``² input lies in the original ``width`` × ``height`` image."""

    left: float
    top: float
    scale_x: float  # original pixels per input pixel
    scale_y: float
    size: int
    width: int
    height: int

    @classmethod
    def of(cls, width: int, height: int, preprocess: PreprocessConfig) -> InputFrame:
        size = preprocess.image_size
        if preprocess.resize_mode == "squash":
            return cls(0.0, 0.0, width / size, height / size, size, width, height)
        side = min(width, height)  # resize the shortest side to size, then centre crop
        left, top = (width - side) / 2, (height - side) / 2
        return cls(left, top, side / size, side / size, size, width, height)

    def point(self, row: int, column: int) -> tuple[int, int]:
        """The original pixel (x, y) under input pixel (row, column)'s centre."""
        x = int(self.left + (column + 0.5) * self.scale_x)
        y = int(self.top + (row + 0.5) * self.scale_y)
        return min(x, self.width - 1), min(y, self.height - 1)

    def box(self, box: Box) -> Box:
        x0, y0, x1, y1 = box
        return (
            max(0, round(self.left + x0 * self.scale_x)),
            max(0, round(self.top + y0 * self.scale_y)),
            min(self.width, round(self.left + x1 * self.scale_x)),
            min(self.height, round(self.top + y1 * self.scale_y)),
        )


@dataclass(frozen=True)
class Grounded:
    """One map's answer, in original image pixels."""

    peak: tuple[int, int]  # (x, y)
    box: Box
    max_score: float  # the largest patch cosine


def ground(grid_map: torch.Tensor, frame: InputFrame, threshold: float = 0.5) -> Grounded:
    """A g × g score map → its peak and GroundVLP box in the original image (see module doc)."""
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    dense = upsample(grid_map[None], frame.size)[0]  # [S, S]
    flat = int(dense.argmax())
    row, column = divmod(flat, frame.size)
    low, high = dense.min(), dense.max()
    normalised = (dense - low) / (high - low) if high > low else torch.ones_like(dense)
    box = connected_box(normalised >= threshold, (row, column))
    return Grounded(frame.point(row, column), frame.box(box), float(grid_map.max()))
