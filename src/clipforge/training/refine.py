"""CLIP-Refine: a short post-pre-training run that closes the modality gap.

Yamaguchi et al., "Post-pre-training for Modality Alignment in Vision-Language Foundation
Models", CVPR 2025. Starting from a trained model, train for about one epoch at the paper's
learning rate 1e-6 (AdamW, weight decay 0.1) on the objectives ``hycd`` (hybrid contrastive
distillation from the frozen start model) + ``rafa`` (random feature alignment) — see
:mod:`clipforge.objectives.refine`. The modality gap (Liang et al., "Mind the Gap", NeurIPS
2022) is measured before and after::

    gap = ‖ mean_i(image_embed_i) − mean_j(text_embed_j) ‖₂      # over the validation set

``refine(config)`` writes the refined model into ``config.out`` (a normal run directory) and
``refine.json`` there with the gap (and zero-shot/retrieval metrics) before and after.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..data.sources import MapSource, StreamSource, open_source
from ..data.transforms import ImageTransform
from ..evaluation.metrics import modality_gap
from .config import TrainConfig
from .console import say
from .precision import Precision


@dataclass
class RefineConfig:
    model: str  # run / model directory to start from
    data: str  # training data spec (image-text pairs)
    out: str  # run directory for the refined model
    val: str | None = None  # data for the gap and metrics; None = ``data``
    lr: float = 1e-6  # the paper's: a post-pre-training nudge, not a re-train
    epochs: float | None = None  # run length: one of epochs / steps / time_budget
    steps: int | None = None  #   (none given: one epoch, as in the paper)
    time_budget: float | None = None  # minutes of training, the schedule fitted to them
    batch_size: int = 64
    workers: int = 2
    alpha: float = 0.5  # HyCD blend of identity and teacher targets
    temperature: float = 1.0  # HyCD temperature
    similarity: str = "scaled_cosine"  # HyCD logits: s·cos, or "dot" (the reference's F_I·F_T)
    rafa_weight: float = 1.0
    hycd_weight: float = 1.0
    weight_decay: float = 0.1
    seed: int = 0
    precision: Precision = "auto"
    evaluate: bool = True  # zero-shot / retrieval metrics before and after
    progress: bool = True


def measure(
    model,
    preprocess: ImageTransform,
    tokenizer,
    source: MapSource | StreamSource,
    config: RefineConfig,
) -> dict[str, Any]:
    """The modality gap over ``source`` (every image; every caption of every image)."""
    from ..evaluation import EncodeConfig, encode_images, encode_texts, evaluate

    encode = EncodeConfig(
        batch_size=max(config.batch_size, 64), workers=config.workers, progress=False
    )
    encoded = encode_images(model, preprocess, source, encode)
    captions = [caption for captions in encoded.captions for caption in captions]
    texts = encode_texts(model, tokenizer, captions, encode)
    result: dict[str, Any] = {
        "modality_gap": modality_gap(encoded.embeds, texts),
        "images": len(encoded.embeds),
        "texts": len(texts),
    }
    if config.evaluate:
        result["metrics"] = evaluate(model, preprocess, tokenizer, source, encode)
    return result


def train_config(config: RefineConfig) -> TrainConfig:
    """The fine-tuning run: start from ``config.model``, objectives hycd + rafa."""
    return TrainConfig.from_dict(
        {
            "model": {"name": config.model},
            "data": {
                "train": config.data,
                "val": None,
                "batch_size": config.batch_size,
                "workers": config.workers,
            },
            "objectives": [
                {
                    "name": "hycd",
                    "weight": config.hycd_weight,
                    "alpha": config.alpha,
                    "temperature": config.temperature,
                    "similarity": config.similarity,
                },
                {"name": "rafa", "weight": config.rafa_weight},
            ],
            "optim": {"lr": config.lr, "weight_decay": config.weight_decay},
            "run": {
                "out": config.out,
                **run_length(config),
                "seed": config.seed,
                "precision": config.precision,
                "progress": config.progress,
            },
        }
    )


def run_length(config: RefineConfig) -> dict[str, float]:
    """The one run-length option given (train's rule), or one epoch."""
    given = {
        k: v
        for k, v in (
            ("epochs", config.epochs),
            ("steps", config.steps),
            ("time_budget", config.time_budget),
        )
        if v is not None
    }
    if len(given) > 1:
        raise ValueError(f"give one of --epochs, --steps, --time-budget (got {sorted(given)})")
    return given or {"epochs": 1.0}


def refine(
    config: RefineConfig,
    train_source: MapSource | StreamSource | None = None,
    val_source: MapSource | StreamSource | None = None,
) -> dict[str, Any]:
    """Measure → train (hycd + rafa) → measure; writes ``refine.json`` in ``config.out``.

    ``train_source`` / ``val_source`` replace the data specs (sources built in code).
    """
    from ..loading import load
    from .trainer import train

    start, preprocess, tokenizer = load(config.model)
    if tokenizer is None:
        raise ValueError(f"{config.model}: the model has no tokenizer files")
    val = val_source or open_source(config.val or config.data)
    measured = "the modality gap" + (
        " and zero-shot / retrieval metrics" if config.evaluate else ""
    )
    say(f"refine: measuring {measured} of {config.model} on {config.val or config.data}")
    before = measure(start, preprocess, tokenizer, val, config)
    del start
    result = train(train_config(config), train_source)
    say(f"refine: measuring {measured} of the refined model")
    refined, preprocess, tokenizer = load(config.out)
    after = measure(refined, preprocess, tokenizer, val, config)
    report = {
        "gap_before": before["modality_gap"],
        "gap_after": after["modality_gap"],
        "before": before,
        "after": after,
        "steps": result.steps,
        "config": asdict(config),
    }
    (Path(config.out) / "refine.json").write_text(json.dumps(report, indent=2))
    return report
