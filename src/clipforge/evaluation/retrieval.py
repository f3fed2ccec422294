"""Zero-shot image ↔ text retrieval over any data source.

Every caption of a record is a text belonging to that record's image (COCO and Flickr30k have
five), so N images give M ≥ N texts. Metrics are CLIP_benchmark's ``image_retrieval_recall@k``
(text → image) and ``text_retrieval_recall@k`` (image → text), computed in blocks of queries so
memory stays O(block × N) (see :mod:`.metrics`), plus ``modality_gap`` = ‖mean(img) − mean(txt)‖
(Liang et al. 2022), which contrastive training narrows but does not close.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Any

import torch

from ..data.sources.base import MapSource, StreamSource
from ..data.transforms import ImageTransform
from .embedding import EncodeConfig, EncodedImages, encode_images, encode_texts
from .metrics import DEFAULT_BLOCK_SIZE, modality_gap, retrieval_recalls

TASK = "zeroshot_retrieval"


@dataclass
class RetrievalConfig:
    recall_k: tuple[int, ...] = (1, 5, 10)
    block_size: int = DEFAULT_BLOCK_SIZE  # queries scored at a time
    encode: EncodeConfig = field(default_factory=EncodeConfig)

    def __post_init__(self):
        if not self.recall_k or min(self.recall_k) < 1 or self.block_size < 1:
            raise ValueError(
                f"recall k values and block size must be ≥ 1, got "
                f"{tuple(self.recall_k)} and {self.block_size}"
            )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``clipforge eval retrieval`` flags beyond the common ones."""
    parser.add_argument(
        "--recall-k",
        type=int,
        nargs="+",
        default=[1, 5, 10],
        metavar="K",
        help="recall@K values to report (default: 1 5 10)",
    )


def config_from_args(args: argparse.Namespace, encode: EncodeConfig) -> RetrievalConfig:
    return RetrievalConfig(recall_k=tuple(args.recall_k), encode=encode)


def caption_pairs(
    encoded: EncodedImages,
) -> tuple[list[int], list[str], torch.Tensor, list[tuple[str, str]]]:
    """The captioned images' rows, all their captions, each caption's position among those
    rows ([M] long), and the caption-less images as (key, "empty caption")."""
    kept = [row for row, captions in enumerate(encoded.captions) if captions]
    uncaptioned = [
        (encoded.keys[row], "empty caption")
        for row, captions in enumerate(encoded.captions)
        if not captions
    ]
    if not kept:
        raise ValueError("no images with captions (every record was bad or had no caption)")
    texts = [caption for row in kept for caption in encoded.captions[row]]
    text_image_index = torch.tensor(
        [position for position, row in enumerate(kept) for _ in encoded.captions[row]],
        dtype=torch.long,
    )
    return kept, texts, text_image_index, uncaptioned


def retrieval_metrics(
    model, tokenizer, encoded: EncodedImages, config: RetrievalConfig
) -> tuple[dict[str, float], int, int, list[tuple[str, str]]]:
    """Metrics from already-encoded images; returns (metrics, images, texts, caption-less)."""
    kept, texts, text_image_index, uncaptioned = caption_pairs(encoded)
    image_embeds = encoded.embeds[kept]  # [N, D]
    text_embeds = encode_texts(model, tokenizer, texts, config.encode)  # [M, D]
    metrics = retrieval_recalls(
        image_embeds, text_embeds, text_image_index, config.recall_k, config.block_size
    )
    metrics["modality_gap"] = modality_gap(image_embeds, text_embeds)
    return metrics, len(kept), len(texts), uncaptioned


def retrieval(
    model,
    preprocess: ImageTransform,
    tokenizer,
    source: MapSource | StreamSource,
    config: RetrievalConfig | None = None,
) -> dict[str, Any]:
    """Image-text retrieval on ``source``; returns CLIP_benchmark-style results::

    {"task": "zeroshot_retrieval", "metrics": {"image_retrieval_recall@1", …,
     "text_retrieval_recall@10", "modality_gap"}, "num_samples" (images), "num_texts",
     "skipped": [{key, reason}]}
    """
    config = config or RetrievalConfig()
    if tokenizer is None:
        raise ValueError("the model has no tokenizer (no tokenizer.json beside its weights)")
    encoded = encode_images(model, preprocess, source, config.encode)
    metrics, num_images, num_texts, uncaptioned = retrieval_metrics(
        model, tokenizer, encoded, config
    )
    skipped = encoded.skipped + uncaptioned
    return {
        "task": TASK,
        "metrics": metrics,
        "num_samples": num_images,
        "num_texts": num_texts,
        "skipped": [{"key": key, "reason": reason} for key, reason in skipped],
    }
