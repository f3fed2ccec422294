"""k shots per class from a labelled source, and their image features under several views.

Sampling follows Dassl's ``generate_fewshot_dataset`` (the few-shot protocol of CoOp and its
successors): for every class, k records drawn without replacement with a seeded RNG; a class with
fewer than k records keeps all of them (``repeat=False``). Records without a label are ignored.

The image tower is frozen during prompt learning, so each chosen image is encoded once per view:
view 0 with the model's deterministic eval transform, views 1… with a random resized crop (area
0.5–1) and horizontal flip, CoOp's training augmentation. A view's randomness is keyed by the
image's pixels and the seed, so features are the same whatever the number of loader workers.
"""

from __future__ import annotations

import random
import zlib
from collections import defaultdict
from collections.abc import Sequence

import torch

from ...data.record import RawRecord
from ...data.sources.base import MapSource
from ...data.transforms import ImageTransform
from ..embedding import EncodeConfig, encode_images

AUGMENT_CROP_SCALE = (0.5, 1.0)


def labels_of(source: MapSource) -> list[int | None]:
    """``metadata["label"]`` of every record (None where a record has none)."""
    labels = []
    for index in range(len(source)):
        label = source[index].metadata.get("label")
        labels.append(None if label is None else int(label))
    return labels


def k_shot_indices(labels: Sequence[int | None], k: int, seed: int = 0) -> list[int]:
    """Row indices: k per class (all of a class with fewer), classes in label order."""
    if k < 1:
        raise ValueError(f"shots must be ≥ 1 per class, got {k}")
    rng = random.Random(seed)
    by_class: dict[int, list[int]] = defaultdict(list)
    for row, label in enumerate(labels):
        if label is not None:
            by_class[label].append(row)
    if not by_class:
        raise ValueError("no labelled records to draw shots from")
    chosen: list[int] = []
    for label in sorted(by_class):
        rows = by_class[label]
        chosen.extend(sorted(rng.sample(rows, k)) if len(rows) > k else rows)
    return chosen


class SubsetSource(MapSource):
    """The records of ``source`` at ``rows``, in that order."""

    def __init__(self, source: MapSource, rows: Sequence[int]):
        self.source, self.rows = source, list(rows)
        self.name = getattr(source, "name", "data")

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> RawRecord:
        return self.source[self.rows[index]]

    def class_names(self) -> list[str] | None:
        return self.source.class_names()


class AugmentedView(ImageTransform):
    """A random resized crop + flip whose randomness depends on (pixels, seed, view) only."""

    def __init__(self, base: ImageTransform, seed: int, view: int):
        super().__init__(base.preprocess, train=True, crop_scale=AUGMENT_CROP_SCALE, hflip=True)
        self.salt = f"{seed}:{view}".encode()

    def __call__(self, image, rng: random.Random | None = None) -> torch.Tensor:
        key = zlib.crc32(self.salt + image.convert("RGB").tobytes())
        return super().__call__(image, random.Random(key))


def encode_views(
    model,
    preprocess: ImageTransform,
    source: MapSource,
    views: int,
    seed: int,
    config: EncodeConfig,
) -> tuple[torch.Tensor, list[int]]:
    """Features [views, N, D] (L2-normalised) and labels [N] of the decodable labelled records."""
    if views < 1:
        raise ValueError(f"views must be ≥ 1, got {views}")
    per_view, labels = [], None
    for view in range(views):
        transform: ImageTransform = (
            preprocess if view == 0 else AugmentedView(preprocess, seed, view)
        )
        encoded = encode_images(model, transform, source, config)
        keep = [row for row, label in enumerate(encoded.labels) if label is not None]
        per_view.append(encoded.embeds[keep])
        labels = [int(encoded.labels[row]) for row in keep]  # type: ignore[arg-type]
    if not labels:
        raise ValueError("none of the sampled shots could be decoded with a label")
    return torch.stack(per_view), labels
