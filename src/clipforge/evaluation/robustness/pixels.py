"""Images as pixels in [0, 1] at the model's resolution, and a differentiable path to embeddings.

Attacks live in pixel space, *before* normalisation: the eval transform's resize and centre crop
are applied (:class:`~clipforge.data.transforms.ImageTransform` with mean 0, std 1, so it yields
pixel / 255), and :class:`PixelEncoder` applies (x − mean) / std inside autograd, so gradients
reach the pixels and the ε-ball is the one users mean (4/255 = four grey levels).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Subset

from ...data.sources.base import MapSource, StreamSource
from ...data.transforms import ImageTransform
from ..embedding import EncodeConfig, _device_of, _MapItems, _ReadRecord, _StreamItems


@dataclass
class PixelBatch:
    pixels: torch.Tensor  # [B, 3, S, S] in [0, 1], on the model's device
    keys: list[str]
    labels: list[int | None]
    captions: list[tuple[str, ...]]


def spread(total: int, limit: int | None) -> list[int]:
    """``limit`` record indices spread evenly over ``total`` (all when None): data sets stored
    sorted by class (``builtin:emoji`` by subgroup) give every class a share, not the first few."""
    if limit is None or limit >= total:
        return list(range(total))
    return [index * total // limit for index in range(limit)]


@dataclass
class PixelReader:
    """Reads a source's decodable records as :class:`PixelBatch`es, bad ones listed by key;
    with ``limit``, that many records spread evenly over a map source (:func:`spread`)."""

    transform: ImageTransform
    encode: EncodeConfig
    limit: int | None = None
    skipped: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def for_model(cls, preprocess: ImageTransform, encode: EncodeConfig, limit=None):
        raw = dataclasses.replace(preprocess.preprocess, mean=(0.0,) * 3, std=(1.0,) * 3)
        return cls(ImageTransform(raw, train=False), encode, limit)

    def batches(self, source: MapSource | StreamSource, device) -> Iterator[PixelBatch]:
        read = _ReadRecord(self.transform)
        dataset: Dataset
        if isinstance(source, StreamSource):
            dataset = _StreamItems(source, read)
        else:
            items = _MapItems(source, read)
            dataset = Subset(items, spread(len(items), self.limit))
        loader = DataLoader(
            dataset,
            batch_size=self.encode.batch_size,
            num_workers=self.encode.workers,
            collate_fn=list,
        )
        self.skipped = []
        seen = 0
        for items in loader:
            self.skipped.extend((item.key, item.error) for item in items if item.error)
            good = [item for item in items if item.error is None]
            if self.limit is not None:
                good = good[: max(self.limit - seen, 0)]
            if not good:
                continue
            seen += len(good)
            yield PixelBatch(
                torch.stack([item.image for item in good]).to(device),
                [item.key for item in good],
                [item.label for item in good],
                [item.captions for item in good],
            )
            if self.limit is not None and seen >= self.limit:
                break


class PixelEncoder:
    """pixels [B, 3, S, S] in [0, 1] → L2-normalised image embeddings [B, D], differentiable.

    ``size`` is the model's input size: other sizes (SGA's rescaled copies) are resized to it
    bilinearly inside autograd.
    """

    def __init__(self, model, preprocess: ImageTransform):
        self.model = model
        config = preprocess.preprocess
        device = _device_of(model)
        self.size = config.image_size
        self.mean = torch.tensor(config.mean, device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(config.std, device=device).view(1, 3, 1, 1)
        scale = getattr(model, "scale", None)
        self.logit_scale = float(scale().detach()) if callable(scale) else 100.0

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        if pixels.shape[-1] != self.size or pixels.shape[-2] != self.size:
            pixels = F.interpolate(
                pixels, size=(self.size, self.size), mode="bilinear", align_corners=False
            )
        embeds = self.model.encode_image((pixels - self.mean) / self.std, normalize=True)
        return F.normalize(embeds.float(), dim=-1)
