"""``clipforge adapt prompt``: few-shot curves of learnt prompts against the hand templates.

For every k in ``shots``: draw k images per class from the training source (seeded), cache their
features, learn a context (:mod:`.tuning`), and classify the held-out source with the learnt class
weights. The baseline is zero-shot with the hand templates (the data set's own, else clipforge's
built-in ensemble) on the same held-out images. Result (``curve.json``)::

    {"task": "prompt_learning", "model", "dataset", "eval_dataset", "method": "coop+gram",
     "config": {...}, "num_classes", "num_eval_samples",
     "baseline": {"templates": [...], "metrics": {"acc1", "acc5", "mean_per_class_recall"}},
     "curve": [{"shots": k, "num_train": n, "metrics": {...}, "final_loss": l,
                "prompt": "prompt-4shot.safetensors"}, ...]}
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ...common.optional import require
from ...data.sources.base import MapSource
from ...data.transforms import ImageTransform
from ..embedding import EncodeConfig, encode_images
from ..zeroshot import ZeroShotConfig, build_classifier, class_names_of, classify
from .few_shot import SubsetSource, encode_views, k_shot_indices, labels_of
from .learner import PromptLearner
from .prompt_file import save_prompt
from .tuning import PromptTuningConfig, train_prompt

TASK = "prompt_learning"
DEFAULT_SHOTS = (1, 2, 4, 8, 16)


@dataclass
class AdaptConfig:
    shots: tuple[int, ...] = DEFAULT_SHOTS  # k per class, one learnt prompt each
    tuning: PromptTuningConfig = field(default_factory=PromptTuningConfig)
    encode: EncodeConfig = field(default_factory=EncodeConfig)

    def __post_init__(self):
        if not self.shots:
            raise ValueError("--shots: give at least one shot count, e.g. 1,2,4")
        bad = [k for k in self.shots if k < 1]
        if bad:
            raise ValueError(f"--shots: {bad[0]} is not a number of shots per class (≥ 1)")


def parse_shots(text: str) -> tuple[int, ...]:
    """``"1,2,4"`` → (1, 2, 4); anything else is a one-line error naming it."""
    try:
        shots = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ValueError(
            f"--shots {text!r}: expected comma-separated integers, e.g. 1,2,4"
        ) from None
    if not shots or min(shots) < 1:
        raise ValueError(f"--shots {text!r}: every shot count must be ≥ 1")
    return tuple(sorted(set(shots)))


def method_name(config: PromptTuningConfig) -> str:
    return "coop+gram" if config.regulation == "gram" else "coop"


def adapt_prompt(
    model,
    preprocess: ImageTransform,
    tokenizer,
    train_source: MapSource,
    eval_source: MapSource,
    config: AdaptConfig,
    out_dir: str | Path | None = None,
    names: tuple[str, str, str] = ("model", "data", "eval data"),
) -> dict[str, Any]:
    """The few-shot curve; with ``out_dir`` also ``prompt-{k}shot.safetensors`` + ``.json``.

    ``names`` are the model, training data and held-out data as the user gave them (for files).
    """
    class_names = class_names_of(train_source, names[1])
    eval_names = class_names_of(eval_source, names[2])
    if eval_names != class_names:
        raise ValueError(
            f"{names[2]}: its {len(eval_names)} classes differ from {names[1]}'s "
            f"{len(class_names)}; learnt prompts are per class"
        )
    tuning, encode = config.tuning, config.encode
    device = next(model.parameters()).device
    held_out = encode_images(model, preprocess, eval_source, encode)
    templates = ZeroShotConfig().resolved_templates(eval_source.templates())
    baseline = build_classifier(model, tokenizer, class_names, templates, encode)
    baseline_metrics, num_eval, _ = classify(held_out, baseline)
    labels = labels_of(train_source)
    curve = []
    for k in config.shots:
        rows = k_shot_indices(labels, k, tuning.seed)
        shots = SubsetSource(train_source, rows)
        features, shot_labels = encode_views(
            model, preprocess, shots, tuning.views, tuning.seed, encode
        )
        generator = torch.Generator().manual_seed(tuning.seed)
        learner = PromptLearner(
            model.text,
            tokenizer,
            class_names,
            tuning.templates,
            tuning.n_ctx,
            tuning.class_specific,
            tuning.ctx_init,
            generator,
        ).to(device)
        losses = train_prompt(model, learner, features, shot_labels, tuning)
        with torch.no_grad():
            metrics, _, _ = classify(held_out, learner.class_weights().cpu())
        point: dict[str, Any] = {
            "shots": k,
            "num_train": len(shot_labels),
            "metrics": metrics,
            "final_loss": losses[-1],
        }
        if out_dir is not None:
            saved = save_prompt(
                Path(out_dir) / f"prompt-{k}shot",
                learner,
                model,
                names[0],
                {"shots": k, "seed": tuning.seed, "method": method_name(tuning), "data": names[1]},
            )
            point["prompt"] = saved.name
        curve.append(point)
    return {
        "task": TASK,
        "model": names[0],
        "dataset": names[1],
        "eval_dataset": names[2],
        "method": method_name(tuning),
        "config": dataclasses.asdict(tuning),
        "num_classes": len(class_names),
        "num_eval_samples": num_eval,
        "baseline": {"templates": list(templates), "metrics": baseline_metrics},
        "curve": curve,
    }


def plot_curve(result: dict[str, Any], path: str | Path, metric: str = "acc1") -> Path:
    """acc1 against shots (log₂ axis), the hand-template zero-shot score as a dashed line."""
    matplotlib = require("matplotlib", "plots", "the few-shot curve plot")
    matplotlib.use("Agg")
    pyplot = require("matplotlib.pyplot", "plots", "the few-shot curve plot")
    shots: Sequence[int] = [point["shots"] for point in result["curve"]]
    scores = [100 * point["metrics"][metric] for point in result["curve"]]
    figure, axes = pyplot.subplots(figsize=(5, 3.5), dpi=120)
    axes.plot(shots, scores, "o-", label=f"learnt prompt ({result['method']})")
    axes.axhline(
        100 * result["baseline"]["metrics"][metric],
        linestyle="--",
        color="grey",
        label="hand templates (zero-shot)",
    )
    axes.set_xscale("log", base=2)
    axes.set_xticks(shots, [str(k) for k in shots])
    axes.set_xlabel("shots per class")
    axes.set_ylabel(f"{metric} (%) on {result['eval_dataset']}")
    axes.set_title(f"{result['model']}: few-shot prompt learning", fontsize=9)
    axes.legend(fontsize=8)
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    pyplot.close(figure)
    return path
