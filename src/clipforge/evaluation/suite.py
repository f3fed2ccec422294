"""Periodic evaluation for the trainer: retrieval and, when the source has classes, zero-shot.

Images are encoded once and shared by both tasks. The result is a flat ``{metric: value}`` dict
(``acc1``, ``acc5``, ``mean_per_class_recall``, ``image_retrieval_recall@1`` …, ``modality_gap``)
ready to be logged next to the training step.
"""

from __future__ import annotations

import dataclasses

from ..data.sources.base import MapSource, StreamSource
from ..data.transforms import ImageTransform
from .embedding import EncodeConfig, encode_images
from .retrieval import RetrievalConfig, retrieval_metrics
from .zeroshot import ZeroShotConfig, build_classifier, classify


def evaluate(
    model,
    preprocess: ImageTransform,
    tokenizer,
    source: MapSource | StreamSource,
    config: EncodeConfig | None = None,
    zeroshot: ZeroShotConfig | None = None,
    retrieval: RetrievalConfig | None = None,
    **encode_overrides,
) -> dict[str, float]:
    """Flat metrics on ``source``. ``encode_overrides`` replace fields of ``config``
    (default: no progress bar), e.g. ``evaluate(..., workers=0)``."""
    if tokenizer is None:
        raise ValueError("the model has no tokenizer (no tokenizer.json beside its weights)")
    encode = dataclasses.replace(config or EncodeConfig(progress=False), **encode_overrides)
    zeroshot = dataclasses.replace(zeroshot or ZeroShotConfig(), encode=encode)
    retrieval = dataclasses.replace(retrieval or RetrievalConfig(), encode=encode)
    encoded = encode_images(model, preprocess, source, encode)
    metrics: dict[str, float] = {}
    class_names = source.class_names() if isinstance(source, MapSource) else None
    if class_names and any(label is not None for label in encoded.labels):
        classifier = build_classifier(
            model, tokenizer, class_names, zeroshot.resolved_templates(), encode
        )
        metrics.update(classify(encoded, classifier, zeroshot.block_size)[0])
    if any(encoded.captions):
        metrics.update(retrieval_metrics(model, tokenizer, encoded, retrieval)[0])
    return metrics
