"""Linear probe: logistic regression on frozen image features (Radford et al. 2021, App. A.3).

The protocol is CLIP_benchmark's ``linear_probe``: features of the training, validation and test
sets are computed once and cached (:mod:`.feature_cache`); the L2 weight λ is swept on the
validation set (:func:`.logistic.sweep_l2`); the final probe is refitted with the chosen λ on
training + validation data — or, for a few-shot probe, on the k-per-class training sample only —
and scored on the test set. Metrics: ``lp_acc1``, ``lp_acc5`` (NaN below 5 classes),
``lp_mean_per_class_recall``.

Validation data: ``val`` (a data spec, CLIP_benchmark's ``--val_split``) or else a share
``val_proportion`` of the training set (``--val_proportion``; default 0.1 as in its README),
split per class with ``seed`` (CLIP_benchmark splits at random; per class keeps every class in
training on small sets). ``l2`` given: no sweep, one fit on the training data with that λ.
Few-shot (``k_shot``): k samples of every class drawn with ``seed`` from the training part.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import torch

from ..data.sources.base import MapSource, StreamSource
from ..data.transforms import ImageTransform
from .embedding import EncodeConfig, _device_of
from .feature_cache import LabelledFeatures, cached_features, default_cache_dir, model_fingerprint
from .logistic import fit_logistic, k_shot_indices, stratified_split, sweep_l2
from .metrics import classification_metrics
from .runner import open_classification_data

TASK = "linear_probe"


@dataclass
class LinearProbeConfig:
    train: str | None = None  # data spec; None: the test spec with split=train
    val: str | None = None  # data spec; None: val_proportion of the training data
    val_proportion: float = 0.1
    l2: float | None = None  # fixed λ (no sweep); None: sweep on the validation data
    k_shot: int | None = None  # samples per class; None: all
    seed: int = 0  # validation split and few-shot sample
    max_iter: int = 100  # L-BFGS iterations per fit (scikit-learn's default)
    cache_dir: Path | None = field(default_factory=default_cache_dir)  # None: no cache
    encode: EncodeConfig = field(default_factory=EncodeConfig)

    def __post_init__(self):
        if self.k_shot is not None and self.k_shot < 1:
            raise ValueError(f"--k-shot must be ≥ 1 samples per class, got {self.k_shot}")
        if not 0 <= self.val_proportion < 1:
            raise ValueError(f"--val-proportion must be in [0, 1), got {self.val_proportion}")
        if self.l2 is not None and self.l2 < 0:
            raise ValueError(f"--l2 must be ≥ 0, got {self.l2}")
        if self.l2 is None and self.val is None and self.val_proportion == 0:
            raise ValueError("the L2 sweep needs validation data: --val, --val-proportion or --l2")
        if self.cache_dir is not None:
            self.cache_dir = Path(self.cache_dir)


class SpecSource(MapSource):
    """A labelled map source that remembers the spec it was opened from (the cache key)."""

    def __init__(self, source: MapSource, spec: str):
        self.source, self.spec, self.name = source, spec, spec

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int):
        return self.source[index]

    def class_names(self) -> list[str] | None:
        return self.source.class_names()


def open_labelled(spec: str) -> SpecSource:
    """A class folder or a data spec with class names (error otherwise), keeping its spec."""
    return SpecSource(open_classification_data(spec), spec)


def train_spec_for(test_spec: str) -> str:
    """``builtin:emoji?split=val`` → ``builtin:emoji?split=train``; no split: an error."""
    base, _, query = test_spec.partition("?")
    options = dict(parse_qsl(query, keep_blank_values=True))
    if options.get("split", "train") == "train":
        raise ValueError(f"{test_spec}: no training set; name one with --train SPEC")
    return f"{base}?{urlencode({**options, 'split': 'train'})}"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``clipforge eval linear-probe`` flags beyond the common ones (the test set is --test)."""
    parser.add_argument("--train", required=True, help="training data spec (labelled)")
    parser.add_argument(
        "--val", help="validation data spec for the L2 sweep (default: part of --train)"
    )
    parser.add_argument(
        "--val-proportion",
        type=float,
        help=f"share of --train held out for the sweep "
        f"(default: {LinearProbeConfig.val_proportion})",
    )
    parser.add_argument("--l2", type=float, help="fixed L2 weight λ: no sweep (default: sweep)")
    parser.add_argument(
        "--k-shot", type=int, metavar="K", help="few-shot: K training samples per class"
    )
    parser.add_argument(
        "--seed", type=int, help="seed of the validation split and the few-shot sample (default: 0)"
    )
    parser.add_argument(
        "--cache-dir",
        help="feature cache (default: $CLIPFORGE_CACHE/features, ~/.cache/clipforge/features)",
    )
    parser.add_argument("--no-cache", action="store_true", help="encode again, store nothing")


def config_from_args(args: argparse.Namespace, encode: EncodeConfig) -> LinearProbeConfig:
    given = {
        name: getattr(args, name)
        for name in ("val", "val_proportion", "l2", "k_shot", "seed")
        if getattr(args, name) is not None
    }
    cache: dict[str, Any] = {"cache_dir": None} if args.no_cache else {}
    if args.cache_dir and not args.no_cache:
        cache["cache_dir"] = Path(args.cache_dir)
    return LinearProbeConfig(train=args.train, **given, **cache, encode=encode)


def _check_labels(name: str, labels: torch.Tensor, num_classes: int) -> None:
    if len(labels) == 0:
        raise ValueError(f"{name}: no labelled images (every record was bad or unlabelled)")
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(f"{name}: labels must lie in [0, {num_classes})")


def linear_probe(
    model,
    preprocess: ImageTransform,
    tokenizer,
    source: MapSource | StreamSource,
    config: LinearProbeConfig | None = None,
) -> dict[str, Any]:
    """Linear probe of ``model``'s image features, tested on ``source``; returns::

    {"task": "linear_probe", "metrics": {"lp_acc1", "lp_acc5", "lp_mean_per_class_recall"},
     "num_samples" (test), "num_classes", "num_train", "num_val", "k_shot", "seed",
     "l2_regularization" (λ used), "sweep": [{"l2", "val_acc1"}], "train_dataset",
     "val_dataset", "features_cached": {"train", "val", "test": bool}, "skipped": [{key, reason}]}

    ``tokenizer`` is unused (the probe sees images only); it is there for the evaluator API.
    """
    config = config or LinearProbeConfig()
    test_name = getattr(source, "spec", getattr(source, "name", "test data"))
    class_names = source.class_names() if isinstance(source, MapSource) else None
    if not class_names:
        raise ValueError(f"{test_name}: has no class names; a linear probe needs labelled data")
    train_source = open_labelled(config.train or train_spec_for(str(test_name)))
    val_source = open_labelled(config.val) if config.val and config.l2 is None else None
    for other in (train_source, val_source):
        if other is not None and other.class_names() != class_names:
            raise ValueError(
                f"{other.spec}: its classes differ from those of {test_name} "
                f"({len(other.class_names() or [])} vs {len(class_names)} names)"
            )
    num_classes = len(class_names)
    fingerprint = model_fingerprint(model, preprocess, config.encode) if config.cache_dir else None

    def features_of(data: MapSource | StreamSource) -> LabelledFeatures:
        spec = getattr(data, "spec", None)
        return cached_features(
            model, preprocess, data, spec, config.encode, config.cache_dir, fingerprint
        )

    features = {"train": features_of(train_source)}
    if val_source is not None:
        features["val"] = features_of(val_source)
    features["test"] = features_of(source)
    for split, part in features.items():
        _check_labels(f"{split} data", part.labels, num_classes)

    device = _device_of(model)
    train_x, train_y = features["train"].features.to(device), features["train"].labels
    val_x = val_y = None
    if config.l2 is None and val_source is not None:
        val_x, val_y = features["val"].features.to(device), features["val"].labels
    elif config.l2 is None:
        train_rows, val_rows = stratified_split(train_y, config.val_proportion, config.seed)
        if len(val_rows) == 0:
            raise ValueError(
                f"{train_source.spec}: --val-proportion {config.val_proportion} holds out no "
                f"image (too few per class); give --val SPEC or a fixed --l2"
            )
        val_x, val_y = train_x[val_rows.to(device)], train_y[val_rows]
        train_x, train_y = train_x[train_rows.to(device)], train_y[train_rows]
    if config.k_shot is not None:
        rows = k_shot_indices(train_y, config.k_shot, num_classes, config.seed, class_names)
        train_x, train_y = train_x[rows.to(device)], train_y[rows]

    sweep: list[tuple[float, float]] = []
    l2 = config.l2
    if l2 is None:
        assert val_x is not None and val_y is not None
        result = sweep_l2((train_x, train_y), (val_x, val_y), num_classes, max_iter=config.max_iter)
        l2, sweep = result.l2, result.tried
        if config.k_shot is None:  # full probe: refit on train + val (few-shot: train only)
            train_x, train_y = torch.cat([train_x, val_x]), torch.cat([train_y, val_y])
    classifier = fit_logistic(train_x, train_y, num_classes, l2, config.max_iter)
    test = features["test"]
    logits = classifier.logits(test.features.to(device)).cpu()
    metrics = classification_metrics(logits, test.labels)
    return {
        "task": TASK,
        "metrics": {f"lp_{name}": value for name, value in metrics.items()},
        "num_samples": len(test.labels),
        "num_classes": num_classes,
        "num_train": len(train_y),
        "num_val": 0 if val_y is None else len(val_y),
        "k_shot": config.k_shot,
        "seed": config.seed,
        "l2_regularization": l2,
        "sweep": [{"l2": value, "val_acc1": accuracy} for value, accuracy in sweep],
        "train_dataset": train_source.spec,
        "val_dataset": val_source.spec if val_source is not None else None,
        "features_cached": {split: part.from_cache for split, part in features.items()},
        "skipped": [{"key": key, "reason": reason} for key, reason in test.skipped],
    }
