"""Building what a run needs from its config: model + tokenizer, frozen parameters, data."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

from ..data.holdout import HOLDOUT_FRACTION, HOLDOUT_MAX, HOLDOUT_MIN_RECORDS, split_holdout
from ..data.loader import LoaderConfig, build_loader
from ..data.sources import DATA_SOURCES, MapSource, SourceSpec, StreamSource, open_source
from ..data.tokenizer import STREAM_TOKENIZER_CAPTIONS, Tokenizer
from ..data.transforms import ImageTransform
from ..models import CLIP, MODELS, ModelConfig, create_model, model_config
from ..objectives import Objective
from .config import DataSection, ModelSection


def set_dotted(config: Any, dotted: str, value: Any) -> None:
    """Set ``vision.layers``-style fields on nested dataclasses, refusing unknown names."""
    *parents, leaf = dotted.split(".")
    node = config
    for part in parents:
        node = getattr(node, part)
    if not dataclasses.is_dataclass(node) or leaf not in {f.name for f in dataclasses.fields(node)}:
        raise ValueError(f"unknown model config field {dotted!r}")
    setattr(node, leaf, tuple(value) if isinstance(value, list) else value)


def build_model_config(section: ModelSection, objectives: dict[str, Objective]) -> ModelConfig:
    config = model_config(section.name)
    for objective in objectives.values():  # e.g. SigLIP's t' = ln 10, b = -10
        for key, value in objective.model_defaults.items():
            set_dotted(config, key, value)
    for key, value in flatten(section.overrides).items():  # the user's word wins
        set_dotted(config, key, value)
    return config


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"vision": {"layers": 2}}`` → ``{"vision.layers": 2}`` (dotted keys pass through)."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def check_model_section(section: ModelSection, objectives: dict[str, Objective]) -> None:
    """Fail fast, before any data is read, on a model name or override that cannot work."""
    if section.name in MODELS:
        build_model_config(section, objectives)
    elif not Path(section.name).exists():
        raise ValueError(
            f"model {section.name!r} is neither a registered size "
            f"({', '.join(MODELS.names())}) nor a model directory"
        )


def build_model_and_tokenizer(
    section: ModelSection, objectives: dict[str, Objective], source: MapSource | StreamSource
) -> tuple[CLIP, Tokenizer]:
    """A fresh model of a registered size with a BPE trained on the captions, or a model
    (and its tokenizer) loaded from a directory to continue from."""
    if section.name not in MODELS:
        path = Path(section.name)
        if not path.exists():
            raise ValueError(
                f"model {section.name!r} is neither a registered size "
                f"({', '.join(MODELS.names())}) nor a model directory"
            )
        from ..loading import load_model_dir, resolve_model_dir

        model, tokenizer = load_model_dir(resolve_model_dir(path))
        if tokenizer is None:
            raise ValueError(f"{section.name}: the model directory has no tokenizer")
        return model.train(), tokenizer
    config = build_model_config(section, objectives)
    if config.text.pretrained:  # a pretrained text tower brings its own tokenizer
        from ..models.pretrained_text import pretrained_tokenizer

        tokenizer = pretrained_tokenizer(config.text.pretrained, config.text.context_length)
        config.text.pad_token_id, config.text.eos_token_id = tokenizer.pad_id, tokenizer.eot_id
        return create_model(config), tokenizer
    vocab = section.tokenizer_vocab_size or config.text.vocab_size
    captions = (
        source.captions()
        if isinstance(source, MapSource)
        else source.captions(STREAM_TOKENIZER_CAPTIONS)
    )  # a stream: its first N
    tokenizer = Tokenizer.train(
        captions, vocab_size=vocab, context_length=config.text.context_length
    )
    config.text.vocab_size = tokenizer.vocab_size
    config.text.eos_token_id = tokenizer.eot_id
    config.text.pad_token_id = tokenizer.pad_id
    return create_model(config), tokenizer


def prepare_for_training(
    model: CLIP, section: ModelSection, objectives: dict[str, Objective], device: torch.device
) -> int:
    """Put ``model`` on ``device`` in training mode as ``section`` says (gradient checkpointing,
    frozen prefixes) and set each objective up on it; returns the frozen parameter count. The
    trainer and ``bench train`` both call this, so the benchmark times the step a run takes."""
    model.to(device).train()
    if section.grad_checkpointing:
        model.set_grad_checkpointing(True)
    frozen = freeze(model, section.freeze)
    for objective in objectives.values():
        objective.setup(model)
        objective.to(device)
    return frozen


def freeze(model: CLIP, prefixes: list[str]) -> int:
    """Freeze parameters whose names start with any prefix; every prefix must match something."""
    frozen = 0
    for prefix in prefixes:
        matched = [p for n, p in model.named_parameters() if n.startswith(prefix)]
        if not matched:
            names = sorted({n.split(".")[0] for n, _ in model.named_parameters()})
            raise ValueError(
                f"freeze prefix {prefix!r} matches no parameter; top-level names: {names}"
            )
        for parameter in matched:
            parameter.requires_grad_(False)
            frozen += parameter.numel()
    return frozen


def build_train_loader(
    source,
    section: DataSection,
    model: CLIP,
    tokenizer: Tokenizer,
    objectives: dict[str, Objective],
    seed: int,
    rank: int,
    world: int,
):
    transform = ImageTransform(model.config.preprocess, train=True, crop_scale=section.crop_scale)
    extras = tuple(extra for o in objectives.values() for extra in o.extra_inputs)  # declared
    # strict=False: bad records reach the trainer, which stops at the first one in the main
    # process (a worker's exception would arrive wrapped in its traceback)
    config = LoaderConfig(
        batch_size=section.batch_size,
        workers=section.workers,
        shuffle=True,
        drop_last=True,
        seed=seed,
        strict=False,
        extra_inputs=extras,
    )
    return build_loader(source, transform, tokenizer, config, rank=rank, world_size=world)


def open_train_source(
    spec: str, seed: int, options: dict[str, Any] | None = None
) -> MapSource | StreamSource:
    return open_source(spec, seed=seed, **(options or {}))


def open_train_and_val(
    section: DataSection,
    seed: int,
    train_source: MapSource | StreamSource | None = None,
    val_source: MapSource | StreamSource | None = None,
) -> tuple[MapSource | StreamSource, MapSource | StreamSource | None, str]:
    """The training source, the validation source (or None) and a line saying which.

    ``data.val: auto`` (the default) validates on the training data's own: a built-in set's
    ``val`` split, else records held out of the training data (:mod:`clipforge.data.holdout`:
    5 %, at most 1,000, not trained on), else none (a stream, or under 100 records). A spec is
    opened now, so a missing validation set fails before training, not after it."""
    options = section.source_options()  # --csv-img-key …: for the training and validation data
    train = train_source or open_train_source(section.train, seed, options)
    if val_source is not None:
        return train, val_source, "validation: the given source"
    if section.val is None:
        return train, None, "validation: none"
    if section.val != "auto":
        return train, open_source(section.val, **options), f"validation: {section.val}"
    builtin = builtin_val_spec(section.train) if train_source is None else None
    if builtin:
        return train, open_source(builtin), f"validation: {builtin} (the set's own split)"
    if not isinstance(train, MapSource):
        return train, None, "validation: none (a stream has no held-out split; give --val)"
    kept, held = split_holdout(train)
    if held is None:
        return (
            train,
            None,
            (
                f"validation: none ({len(train)} records are under "
                f"{HOLDOUT_MIN_RECORDS} to hold some out; give --val)"
            ),
        )
    return (
        kept,
        held,
        (
            f"validation: {len(held)} records held out of the training data "
            f"({HOLDOUT_FRACTION:.0%}, at most {HOLDOUT_MAX:,}; not trained on)"
        ),
    )


def builtin_val_spec(train_spec: str) -> str | None:
    """``builtin:NAME`` training on its train split → ``builtin:NAME?split=val``, else None."""
    parsed = SourceSpec.parse(train_spec, DATA_SOURCES.names())
    if parsed.kind != "builtin" or parsed.query.get("split", "train") != "train":
        return None
    query = "&".join(f"{k}={v}" for k, v in {**parsed.query, "split": "val"}.items())
    return f"builtin:{parsed.location}?{query}"
