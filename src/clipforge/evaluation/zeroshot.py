"""Zero-shot classification with prompt ensembles (Radford et al. 2021, §3.1).

Each class c gets a text classifier weight w_c = normalise(mean_t normalise(E_text(t(c)))) over the
templates t; an image is assigned argmax_c ⟨E_image(x), w_c⟩. Metrics are CLIP_benchmark's
``acc1``, ``acc5`` and ``mean_per_class_recall`` (see :mod:`.metrics`).

The source must name its classes (``MapSource.class_names()``) and its records must carry
``metadata["label"]``, an index into those names; records without a label are skipped.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ..data.sources.base import MapSource, StreamSource
from ..data.transforms import ImageTransform
from .embedding import EncodeConfig, EncodedImages, encode_images, encode_texts
from .metrics import DEFAULT_BLOCK_SIZE, classification_metrics_from_top, top_indices
from .templates import check_templates, fill, load_templates

TASK = "zeroshot_classification"


@dataclass
class ZeroShotConfig:
    templates: tuple[str, ...] | None = None  # None: read templates_file
    templates_file: Path | None = None  # None: the built-in templates.txt
    block_size: int = DEFAULT_BLOCK_SIZE  # images scored at a time
    encode: EncodeConfig = field(default_factory=EncodeConfig)

    def resolved_templates(self) -> tuple[str, ...]:
        if self.templates is not None:
            check_templates(self.templates)
            return tuple(self.templates)
        return load_templates(self.templates_file)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``clipforge eval zeroshot`` flags beyond the common ones."""
    parser.add_argument(
        "--templates",
        metavar="FILE",
        help="prompt templates, one per line with {c} for the class name "
        "(default: the built-in ensemble)",
    )


def config_from_args(args: argparse.Namespace, encode: EncodeConfig) -> ZeroShotConfig:
    config = ZeroShotConfig(
        templates_file=Path(args.templates) if args.templates else None, encode=encode
    )
    config.resolved_templates()  # a bad templates file fails before the model loads
    return config


def build_classifier(
    model, tokenizer, class_names: Sequence[str], templates: Sequence[str], config: EncodeConfig
) -> torch.Tensor:
    """Class weights [C, D]: the normalised mean of each class's normalised prompt embeddings."""
    prompts = [fill(template, name) for name in class_names for template in templates]
    embeds = encode_texts(model, tokenizer, prompts, config, description="class prompts")
    per_class = embeds.view(len(class_names), len(templates), -1)  # [C, K, D]
    return F.normalize(per_class.mean(dim=1), dim=-1)


def class_names_of(source: MapSource | StreamSource, origin: str = "data") -> list[str]:
    names = source.class_names() if isinstance(source, MapSource) else None
    if not names:
        raise ValueError(
            f"{origin}: has no class names; zero-shot classification needs an image "
            f"folder with one sub-folder per class, or a labelled data source"
        )
    return list(names)


def classify(
    encoded: EncodedImages, classifier: torch.Tensor, block_size: int = DEFAULT_BLOCK_SIZE
) -> tuple[dict[str, float], int, list]:
    """Metrics over the labelled images of ``encoded``; also their count and the unlabelled."""
    labelled = [row for row, label in enumerate(encoded.labels) if label is not None]
    unlabelled = [
        (encoded.keys[row], "no label") for row, label in enumerate(encoded.labels) if label is None
    ]
    if not labelled:
        raise ValueError("no labelled images to classify (every record was bad or unlabelled)")
    num_classes = classifier.shape[0]
    targets = torch.tensor([encoded.labels[row] for row in labelled], dtype=torch.long)
    if targets.min() < 0 or targets.max() >= num_classes:
        raise ValueError(
            f"labels must lie in [0, {num_classes}); found {targets.min().item()}…"
            f"{targets.max().item()}"
        )
    top = top_indices(encoded.embeds[labelled], classifier, 5, block_size)  # [N, min(5, C)]
    return classification_metrics_from_top(top, targets, num_classes), len(labelled), unlabelled


def zeroshot_classification(
    model,
    preprocess: ImageTransform,
    tokenizer,
    source: MapSource | StreamSource,
    config: ZeroShotConfig | None = None,
) -> dict[str, Any]:
    """Zero-shot classification of ``source``; returns CLIP_benchmark-style results::

    {"task": "zeroshot_classification", "metrics": {"acc1", "acc5", "mean_per_class_recall"},
     "num_samples", "num_classes", "num_templates", "templates", "skipped": [{key, reason}]}
    """
    config = config or ZeroShotConfig()
    if tokenizer is None:
        raise ValueError("the model has no tokenizer (no tokenizer.json beside its weights)")
    class_names = class_names_of(source, getattr(source, "name", "data"))
    templates = config.resolved_templates()
    classifier = build_classifier(model, tokenizer, class_names, templates, config.encode)
    encoded = encode_images(model, preprocess, source, config.encode)
    metrics, num_samples, unlabelled = classify(encoded, classifier, config.block_size)
    skipped = encoded.skipped + unlabelled
    return {
        "task": TASK,
        "metrics": metrics,
        "num_samples": num_samples,
        "num_classes": len(class_names),
        "num_templates": len(templates),
        "templates": list(templates),
        "skipped": [{"key": key, "reason": reason} for key, reason in skipped],
    }
