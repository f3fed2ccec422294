"""Zero-shot classification with prompt ensembles (Radford et al. 2021, §3.1).

Each class c gets a text classifier weight w_c = normalise(mean_t normalise(E_text(t(c)))) over the
templates t; an image is assigned argmax_c ⟨E_image(x), w_c⟩. Metrics are CLIP_benchmark's
``acc1``, ``acc5`` and ``mean_per_class_recall`` (see :mod:`.metrics`).

The source must name its classes (``MapSource.class_names()``, or ``class_names_file``) and its
records must carry ``metadata["label"]``, an index into those names; records without a label are
skipped. Prompts, first found: ``templates`` / ``templates_file``, per-class ``prompts_file``
(CuPL, :mod:`.class_prompts`), the data set's own templates (a CLIP_benchmark
``zeroshot_classification_templates.txt``), the built-in ensemble — CLIP_benchmark's order.
A learnt prompt (``prompt_file``, from ``clipforge adapt prompt``: CoOp context vectors) replaces
all of them; it must have been learnt on the same model and class names.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ..data.sources.base import MapSource, StreamSource
from ..data.transforms import ImageTransform
from .class_prompts import load_class_names, load_class_prompts
from .embedding import EncodeConfig, EncodedImages, encode_images, encode_texts
from .metrics import DEFAULT_BLOCK_SIZE, classification_metrics_from_top, top_indices
from .runner import dataset_key
from .templates import check_templates, fill, load_templates

TASK = "zeroshot_classification"


@dataclass
class ZeroShotConfig:
    templates: tuple[str, ...] | None = None  # None: read templates_file
    templates_file: Path | None = None  # None: the data set's own, else the built-in templates.txt
    class_names_file: Path | None = None  # .txt/.json names in label order; None: the source's
    prompts_file: Path | None = None  # CuPL JSON {class: [prompts]}; replaces the templates
    prompt_file: Path | None = None  # a learnt prompt (clipforge adapt prompt); replaces both
    block_size: int = DEFAULT_BLOCK_SIZE  # images scored at a time
    encode: EncodeConfig = field(default_factory=EncodeConfig)

    def __post_init__(self):
        if self.prompts_file is not None and (
            self.templates is not None or self.templates_file is not None
        ):
            raise ValueError(
                f"{self.prompts_file}: per-class prompts replace the templates; "
                f"give templates or prompts, not both"
            )
        given = [self.templates, self.templates_file, self.prompts_file]
        if self.prompt_file is not None and any(value is not None for value in given):
            raise ValueError(
                f"{self.prompt_file}: a learnt prompt replaces templates and per-class prompts; "
                f"give --prompt alone"
            )

    def resolved_templates(self, own: Sequence[str] | None = None) -> tuple[str, ...]:
        """The shared templates: given ones, else the data set's ``own``, else the built-in."""
        if self.templates is not None:
            check_templates(self.templates)
            return tuple(self.templates)
        if self.templates_file is None and own:
            check_templates(tuple(own), "the data set's templates")
            return tuple(own)
        return load_templates(self.templates_file)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``clipforge eval zeroshot`` flags beyond the common ones."""
    parser.add_argument(
        "--templates",
        metavar="FILE",
        help="prompt templates, one per line with {c} for the class name "
        "(default: the data set's own, e.g. a CLIP_benchmark set's, else the built-in ensemble)",
    )
    parser.add_argument(
        "--classnames",
        metavar="FILE",
        help="class names in label order: .txt one per line, or .json list "
        "(default: the data's, e.g. sub-folder names or classnames.txt)",
    )
    parser.add_argument(
        "--prompts",
        metavar="FILE",
        help="CuPL-style per-class prompts, JSON {class: [prompts]}; replaces the templates "
        "(default: none)",
    )
    parser.add_argument(
        "--prompt",
        metavar="FILE",
        help="a learnt prompt from `clipforge adapt prompt` (prompt-Kshot.safetensors or its "
        ".json); replaces the templates (default: none)",
    )


def config_from_args(args: argparse.Namespace, encode: EncodeConfig) -> ZeroShotConfig:
    config = ZeroShotConfig(
        templates_file=Path(args.templates) if args.templates else None,
        class_names_file=Path(args.classnames) if args.classnames else None,
        prompts_file=Path(args.prompts) if args.prompts else None,
        prompt_file=Path(args.prompt) if args.prompt else None,
        encode=encode,
    )
    if config.prompt_file is not None:  # a missing or foreign file fails before the model loads
        from .prompt_learning.prompt_file import read_prompt_info

        read_prompt_info(config.prompt_file)
    if config.templates_file is not None:
        config.resolved_templates()  # a bad templates file fails before the model loads
    if config.class_names_file is not None:
        load_class_names(config.class_names_file)
    return config


def build_classifier(
    model,
    tokenizer,
    class_names: Sequence[str],
    templates: Sequence[str] | Mapping[str, Sequence[str]],
    config: EncodeConfig,
) -> torch.Tensor:
    """Class weights [C, D]: the normalised mean of each class's normalised prompt embeddings.

    ``templates`` are shared (``{c}`` filled with each name) or, as a mapping, each class's own
    prompts (CuPL); classes may then have different numbers of prompts."""
    if isinstance(templates, Mapping):
        per_class = [list(templates[name]) for name in class_names]
    else:
        per_class = [[fill(template, name) for template in templates] for name in class_names]
    prompts = [prompt for own in per_class for prompt in own]
    owner = torch.tensor([c for c, own in enumerate(per_class) for _ in own], dtype=torch.long)
    embeds = encode_texts(model, tokenizer, prompts, config, description="class prompts")  # [P, D]
    sums = torch.zeros(len(class_names), embeds.shape[1]).index_add_(0, owner, embeds)
    counts = torch.bincount(owner, minlength=len(class_names)).clamp(min=1)
    return F.normalize(sums / counts[:, None], dim=-1)  # [C, D]


def class_names_of(
    source: MapSource | StreamSource, origin: str = "data", names_file: Path | None = None
) -> list[str]:
    """The source's class names, or ``names_file``'s (which must name as many classes)."""
    names = source.class_names() if isinstance(source, MapSource) else None
    if names_file is not None:
        given = load_class_names(names_file, dataset_key(source))
        if names and len(given) != len(names):
            raise ValueError(
                f"{names_file}: {len(given)} class names, but {origin} has {len(names)} classes"
            )
        return given
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
    class_names = class_names_of(source, getattr(source, "name", "data"), config.class_names_file)
    if config.prompt_file is not None:
        from .prompt_learning.prompt_file import load_prompt  # imports this module

        learner = load_prompt(config.prompt_file, model, tokenizer, class_names)
        with torch.no_grad():
            classifier = learner.class_weights().cpu()
        templates: Any = tuple(learner.describe())
        num_templates = len(templates)
    elif config.prompts_file is not None:
        templates = load_class_prompts(config.prompts_file, class_names, dataset_key(source))
        num_templates = sum(len(prompts) for prompts in templates.values())
    else:
        own = source.templates() if isinstance(source, MapSource) else None
        templates = config.resolved_templates(own)
        num_templates = len(templates)
    if config.prompt_file is None:
        classifier = build_classifier(model, tokenizer, class_names, templates, config.encode)
    encoded = encode_images(model, preprocess, source, config.encode)
    metrics, num_samples, unlabelled = classify(encoded, classifier, config.block_size)
    skipped = encoded.skipped + unlabelled
    return {
        "task": TASK,
        "metrics": metrics,
        "num_samples": num_samples,
        "num_classes": len(class_names),
        "num_templates": num_templates,  # per-class prompts: their total
        "templates": {k: list(v) for k, v in templates.items()}
        if isinstance(templates, Mapping)
        else list(templates),
        "skipped": [{"key": key, "reason": reason} for key, reason in skipped],
    }
