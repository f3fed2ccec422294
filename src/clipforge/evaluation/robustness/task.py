"""``clipforge eval robustness``: clean vs adversarial zero-shot accuracy and retrieval recall.

One pass over the test images, batch by batch: clean embeddings, then for every ε the attacked
images' embeddings, for each task the data supports (labels → zero-shot, captions → retrieval).
The attacks (``config.attack``):

* ``pgd`` — per image, white-box, on the evaluated model (:mod:`.pgd`); each task its own loss;
* ``uap`` — one δ per ε trained on ``uap_data`` (another split) and added to every test image
  (:mod:`.uap`);
* ``sga`` — set-level guidance attack computed on ``surrogate`` and transferred (:mod:`.sga`);
* ``views`` — no adversary: viewpoint/augmentation invariance (:mod:`.views`).

Returns ``{"task": "robustness", "metrics": {clean_acc1, adv_acc1, clean_image_retrieval_recall@1,
adv_image_retrieval_recall@1, …}, "attack", "eps", "sweep": [{eps, metrics}], "max_linf", …}``;
``max_linf`` is the largest ‖x_adv − x‖∞ measured over all attacked images.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from ...data.sources.base import MapSource
from ...data.transforms import ImageTransform
from ..embedding import encode_texts, frozen
from ..runner import dataset_key, open_data
from ..templates import fill
from ..zeroshot import ZeroShotConfig, build_classifier
from .config import RobustnessConfig
from .perturbers import make_perturber
from .pixels import PixelBatch, PixelEncoder, PixelReader
from .scores import TaskScores, eps_label, flatten, retrieval_metrics, zeroshot_metrics
from .views import VIEW_FUNCTIONS, ViewScores

TASK = "robustness"


def open_robustness_data(spec: str) -> MapSource:
    source = open_data(spec)
    if not isinstance(source, MapSource) or len(source) == 0:
        raise ValueError(f"{spec}: robustness needs a non-empty data set with random access")
    return source


def tasks_of(source: MapSource, on: str) -> list[str]:
    """The tasks attacked: those asked for that the data supports (checked on record 0)."""
    has_labels = bool(source.class_names()) and source[0].metadata.get("label") is not None
    has_captions = any(c.strip() for c in source[0].captions)
    available = [t for t, ok in (("zeroshot", has_labels), ("retrieval", has_captions)) if ok]
    wanted = available if on == "auto" else [on]
    if not available or not set(wanted) <= set(available):
        raise ValueError(
            f"{getattr(source, 'name', 'data')}: no {on if on != 'auto' else 'labels or captions'}"
            f" to attack (zero-shot needs class names and labels, retrieval captions)"
        )
    return wanted


class Context:
    """What every batch needs: the model's pixel encoder, tokenizer and class classifier."""

    def __init__(
        self, model, preprocess, tokenizer, source: MapSource, config: RobustnessConfig, tasks
    ):
        self.model, self.tokenizer, self.config = model, tokenizer, config
        self.encoder = PixelEncoder(model, preprocess)
        self.class_names = list(source.class_names() or [])
        self.templates = ZeroShotConfig(templates_file=config.templates_file).resolved_templates(
            source.templates()
        )
        self.classifier = None
        # the classifier: for the zero-shot attack and for the views' predictions
        if self.class_names and ("zeroshot" in tasks or config.attack == "views"):
            self.classifier = build_classifier(
                model, tokenizer, self.class_names, self.templates, config.encode
            ).to(self.encoder.mean.device)

    def caption_sets(self, batch: PixelBatch) -> list[list[str]]:
        """Each image's captions; a labelled image without captions: its class's prompts."""
        return [
            list(captions)
            if captions
            else [fill(t, self.class_names[label]) for t in self.templates]
            if label is not None and self.class_names
            else []
            for captions, label in zip(batch.captions, batch.labels)
        ]

    def own_captions(self, batch: PixelBatch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(texts [M, D], owner [M] batch rows, mean own caption per image [B, D])."""
        texts = [c for captions in batch.captions for c in captions]
        owner = torch.tensor(
            [row for row, captions in enumerate(batch.captions) for _ in captions], dtype=torch.long
        )
        embeds = encode_texts(self.model, self.tokenizer, texts, self.config.encode)
        embeds = embeds.to(batch.pixels.device)
        means = torch.zeros(len(batch.pixels), embeds.shape[-1], device=embeds.device)
        means.index_add_(0, owner.to(embeds.device), embeds)
        return embeds, owner, F.normalize(means, dim=-1)


def robustness(
    model, preprocess: ImageTransform, tokenizer, source: MapSource, config: RobustnessConfig
) -> dict[str, Any]:
    """Attack ``source``'s images as ``config`` says; see the module docstring."""
    config = config or RobustnessConfig()
    if not isinstance(source, MapSource):
        raise ValueError("robustness needs a data set with random access (a map source)")
    tasks = tasks_of(source, config.on)
    with frozen(model):
        context = Context(model, preprocess, tokenizer, source, config, tasks)
        if config.attack == "views":
            return _views(context, source, preprocess, tasks)
        perturber = make_perturber(context, preprocess)
        return _attack(context, perturber, source, preprocess, tasks)


def _attack(context: Context, perturber, source, preprocess, tasks) -> dict[str, Any]:
    config, encoder = context.config, context.encoder
    reader = PixelReader.for_model(preprocess, config.encode, config.limit)
    scores = {task: TaskScores() for task in tasks}
    max_linf, images = 0.0, 0
    for batch in reader.batches(source, encoder.mean.device):
        images += len(batch.pixels)
        labels = torch.tensor([-1 if y is None else y for y in batch.labels])
        labels = labels.to(batch.pixels.device)
        if "retrieval" in tasks:
            texts, owner, own_mean = context.own_captions(batch)
        else:  # no text encoding: a zero-shot attack needs only the labels
            texts = own_mean = torch.zeros(0)
            owner = torch.zeros(0, dtype=torch.long)
        perturber.start_batch(batch, labels, own_mean)
        for task in tasks:
            rows = (labels >= 0) if task == "zeroshot" else (own_mean.norm(dim=-1) > 0)
            if not bool(rows.any()):
                continue
            with torch.no_grad():
                clean = encoder(batch.pixels[rows])
            adversarial = {}
            for eps in config.eps:
                attacked = perturber(task, eps, rows)
                max_linf = max(max_linf, float((attacked - batch.pixels[rows]).abs().max()))
                with torch.no_grad():
                    adversarial[eps] = encoder(attacked)
            kept = scores[task]
            if task == "zeroshot":
                kept.labels.append(labels[rows].cpu())
            else:
                new_row = torch.cumsum(rows.long(), 0) - 1  # batch row → kept row
                kept.texts.append(texts.cpu())
                kept.text_owner.append((new_row[owner.to(rows.device)] + kept.rows).cpu())
            kept.add(clean, adversarial)
    if images == 0:
        raise ValueError("no images to attack (every record was bad)")
    tables = []
    for task in tasks:
        if scores[task].rows == 0:
            continue
        if task == "zeroshot":
            assert context.classifier is not None  # tasks_of: zero-shot data has class names
            tables.append(zeroshot_metrics(scores[task], context.classifier))
        else:
            tables.append(retrieval_metrics(scores[task]))
    flat = flatten(tables, config.eps)
    result = {
        "task": TASK,
        "metrics": flat["metrics"],
        "attack": config.attack,
        "eps": list(config.eps),
        "eps_labels": [eps_label(eps) for eps in config.eps],
        "steps": config.steps,
        "step_size": [config.alpha(eps) for eps in config.eps],
        "random_start": config.random_start,
        "attacked_tasks": tasks,
        "max_linf": max_linf,
        "num_samples": images,
        "sweep": flat["sweep"],
        **perturber.describe(),
        "skipped": [{"key": key, "reason": reason} for key, reason in reader.skipped],
    }
    if config.plot is not None:
        from .plot import plot_sweep

        titled = {**result, "dataset": dataset_key(source) or getattr(source, "name", "data")}
        result["plot"] = str(plot_sweep(titled, config.plot))
    return result


def _views(context: Context, source, preprocess, tasks) -> dict[str, Any]:
    config, encoder = context.config, context.encoder
    reader = PixelReader.for_model(preprocess, config.encode, config.limit)
    scores = ViewScores({name: VIEW_FUNCTIONS[name] for name in config.views})
    for batch in reader.batches(source, encoder.mean.device):
        labels = torch.tensor([-1 if y is None else y for y in batch.labels])
        scores.add(encoder, batch.pixels, context.classifier, labels.to(batch.pixels.device))
    if scores.images == 0:
        raise ValueError("no images to view (every record was bad)")
    return {
        "task": TASK,
        "metrics": scores.metrics(),
        "attack": "views",
        "views": list(config.views),
        "num_samples": scores.images,
        "skipped": [{"key": key, "reason": reason} for key, reason in reader.skipped],
    }
