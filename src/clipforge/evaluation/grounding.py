"""Phrase grounding from patch–text score maps: pointing game and box IoU.

For every region caption of every record (``metadata["boxes"]`` + ``metadata["region_captions"]``,
as :mod:`clipforge.data.builtin.emoji_scenes` writes them), the caption's DenseCLIP score map over
its image (:mod:`.dense_map`) gives a peak and a GroundVLP box. Metrics, each a fraction of the
regions:

* ``pointing_game`` — the map's peak lies inside the true box (Zhang et al., *Top-down neural
  attention by excitation backprop*, ECCV 2016; strict: no tolerance margin)
* ``pointing_game_center_baseline`` — the image centre lies inside the true box: what a map that
  always points at the centre scores, the number a model must beat
* ``box_iou50`` — the predicted box has IoU ≥ 0.5 with the true box; ``box_mean_iou`` its mean
* ``pointing_game_any_object`` — the peak lies inside the box of *any* object of the scene: far
  above ``pointing_game``, the map finds objects but not the one the caption names
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from ..data.record import BadRecordError, decode_image
from ..data.sources.base import MapSource, StreamSource
from ..data.transforms import ImageTransform
from .dense_map import Box, InputFrame, ground, patch_tokens, score_maps
from .embedding import EncodeConfig, _device_of, inference_mode
from .runner import open_data

TASK = "grounding"
REGION_KEYS = ("boxes", "region_captions")


@dataclass
class GroundingConfig:
    threshold: float = 0.5  # GroundVLP box: fraction of the normalised map's maximum
    limit: int | None = None  # score only the first N records (None: all)
    encode: EncodeConfig = field(default_factory=EncodeConfig)

    def __post_init__(self):
        if not 0.0 < self.threshold <= 1.0 or (self.limit is not None and self.limit < 1):
            raise ValueError(
                f"grounding needs 0 < threshold ≤ 1 and limit ≥ 1; got threshold="
                f"{self.threshold}, limit={self.limit}"
            )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``clipforge eval grounding`` flags beyond the common ones."""
    parser.add_argument(
        "--threshold", type=float, default=0.5, help="box threshold, fraction of the map maximum"
    )
    parser.add_argument("--limit", type=int, help="score only the first N images (default: all)")


def config_from_args(args: argparse.Namespace, encode: EncodeConfig) -> GroundingConfig:
    return GroundingConfig(threshold=args.threshold, limit=args.limit, encode=encode)


def open_grounding_data(spec: str) -> MapSource:
    """A data spec whose records carry region boxes and captions (checked on the first)."""
    source = open_data(spec)
    if not isinstance(source, MapSource) or len(source) == 0:
        raise ValueError(f"{spec}: grounding needs a non-empty data set with random access")
    metadata = source[0].metadata
    if not all(key in metadata for key in REGION_KEYS):
        raise ValueError(
            f"{spec}: has no region boxes; grounding needs records with metadata 'boxes' and "
            f"'region_captions', such as builtin:emoji-scenes?split=val"
        )
    return source


def contains(box: Sequence[int], point: tuple[int, int]) -> bool:
    """Pixel (x, y) lies in [x0, x1) × [y0, y1)."""
    return box[0] <= point[0] < box[2] and box[1] <= point[1] < box[3]


def box_iou(first: Sequence[int], second: Sequence[int]) -> float:
    """Intersection over union of two pixel boxes (x1/y1 exclusive)."""
    width = min(first[2], second[2]) - max(first[0], second[0])
    height = min(first[3], second[3]) - max(first[1], second[1])
    inter = max(width, 0) * max(height, 0)
    area = (first[2] - first[0]) * (first[3] - first[1])
    union = area + (second[2] - second[0]) * (second[3] - second[1]) - inter
    return inter / union if union > 0 else 0.0


@dataclass
class _Scene:
    key: str
    image: torch.Tensor | None
    size: tuple[int, int] = (0, 0)  # original width, height
    boxes: list[Box] = field(default_factory=list)
    captions: list[str] = field(default_factory=list)
    error: str | None = None


class _Scenes(Dataset):
    def __init__(self, source: MapSource, transform: ImageTransform, count: int):
        self.source, self.transform, self.count = source, transform, count

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> _Scene:
        record = self.source[index]
        try:
            image = decode_image(record, self.transform.preprocess.background)
        except BadRecordError as error:
            return _Scene(record.key, None, error=error.reason)
        boxes: list[Box] = [
            (int(b[0]), int(b[1]), int(b[2]), int(b[3])) for b in record.metadata.get("boxes", [])
        ]
        captions = list(record.metadata.get("region_captions", []))
        if len(boxes) != len(captions):
            return _Scene(record.key, None, error="boxes and region captions differ in number")
        return _Scene(record.key, self.transform(image), image.size, boxes, captions)


def grounding(
    model,
    preprocess: ImageTransform,
    tokenizer,
    source: MapSource | StreamSource,
    config: GroundingConfig | None = None,
) -> dict[str, Any]:
    """Pointing game and box IoU over every region of ``source``; returns::

    {"task": "grounding", "metrics": {"pointing_game", "pointing_game_center_baseline",
     "box_iou50", "box_mean_iou", "pointing_game_any_object"}, "num_samples", "num_regions",
     "threshold", "skipped"}
    """
    config = config or GroundingConfig()
    if not isinstance(source, MapSource):
        raise ValueError("grounding needs a data set with random access (a map source)")
    count = min(len(source), config.limit or len(source))
    loader = DataLoader(
        _Scenes(source, preprocess, count),
        batch_size=config.encode.batch_size,
        num_workers=config.encode.workers,
        collate_fn=list,
    )
    device = _device_of(model)
    hits = {"pointing": 0, "center": 0, "iou50": 0, "any": 0}
    iou_sum, regions, images = 0.0, 0, 0
    skipped: list[tuple[str, str | None]] = []
    bar = tqdm(total=count, desc="scenes", unit="img", disable=not config.encode.progress)
    with inference_mode(model, config.encode.autocast_dtype):
        for scenes in loader:
            bar.update(len(scenes))
            skipped.extend((s.key, s.error) for s in scenes if s.error)
            good = [s for s in scenes if s.error is None and s.captions]
            if not good:
                continue
            tokens = patch_tokens(model, torch.stack([s.image for s in good]).to(device))
            owner = [row for row, s in enumerate(good) for _ in s.captions]
            texts = tokenizer([c for s in good for c in s.captions]).to(device)
            maps = score_maps(
                tokens[owner], model.encode_text(texts, normalize=True)
            ).cpu()  # [R, g, g]
            truths = [(s, box) for s in good for box in s.boxes]
            for grid_map, (scene, truth) in zip(maps, truths):
                frame = InputFrame.of(scene.size[0], scene.size[1], preprocess.preprocess)
                found = ground(grid_map, frame, config.threshold)
                iou = box_iou(found.box, truth)
                hits["pointing"] += contains(truth, found.peak)
                hits["center"] += contains(truth, (scene.size[0] // 2, scene.size[1] // 2))
                hits["iou50"] += iou >= 0.5
                hits["any"] += any(contains(box, found.peak) for box in scene.boxes)
                iou_sum += iou
            regions += len(truths)
            images += len(good)
    bar.close()
    if regions == 0:
        raise ValueError("no regions to ground (every record was bad or had no boxes)")
    return {
        "task": TASK,
        "metrics": {
            "pointing_game": hits["pointing"] / regions,
            "pointing_game_center_baseline": hits["center"] / regions,
            "box_iou50": hits["iou50"] / regions,
            "box_mean_iou": iou_sum / regions,
            "pointing_game_any_object": hits["any"] / regions,
        },
        "num_samples": images,
        "num_regions": regions,
        "threshold": config.threshold,
        "skipped": [{"key": key, "reason": reason} for key, reason in skipped],
    }
