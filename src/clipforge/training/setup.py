"""Building what a run needs from its config: model + tokenizer, frozen parameters, data."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from ..data.loader import LoaderConfig, build_loader
from ..data.sources import MapSource, StreamSource, open_source
from ..data.tokenizer import Tokenizer
from ..data.transforms import ImageTransform
from ..models import MODELS, CLIP, ModelConfig, create_model, model_config
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
    for objective in objectives.values():           # e.g. SigLIP's t' = ln 10, b = -10
        for key, value in objective.model_defaults.items():
            set_dotted(config, key, value)
    for key, value in flatten(section.overrides).items():    # the user's word wins
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
        raise ValueError(f"model {section.name!r} is neither a registered size "
                         f"({', '.join(MODELS.names())}) nor a model directory")


def build_model_and_tokenizer(section: ModelSection, objectives: dict[str, Objective],
                              source: MapSource | StreamSource) -> tuple[CLIP, Tokenizer]:
    """A fresh model of a registered size with a BPE trained on the captions, or a model
    (and its tokenizer) loaded from a directory to continue from."""
    if section.name not in MODELS:
        path = Path(section.name)
        if not path.exists():
            raise ValueError(f"model {section.name!r} is neither a registered size "
                             f"({', '.join(MODELS.names())}) nor a model directory")
        from ..loading import load_model_dir, resolve_model_dir
        model, tokenizer = load_model_dir(resolve_model_dir(path))
        if tokenizer is None:
            raise ValueError(f"{section.name}: the model directory has no tokenizer")
        return model.train(), tokenizer
    config = build_model_config(section, objectives)
    if config.text.pretrained:      # a pretrained text tower brings its own tokenizer
        from ..models.pretrained_text import pretrained_tokenizer
        tokenizer = pretrained_tokenizer(config.text.pretrained, config.text.context_length)
        config.text.pad_token_id, config.text.eos_token_id = tokenizer.pad_id, tokenizer.eot_id
        return create_model(config), tokenizer
    vocab = section.tokenizer_vocab_size or config.text.vocab_size
    if not isinstance(source, MapSource):
        raise ValueError("training a tokenizer needs a listable data source; give a model "
                         "directory with a tokenizer to train on a stream")
    tokenizer = Tokenizer.train(source.captions(), vocab_size=vocab,
                                context_length=config.text.context_length)
    config.text.vocab_size = tokenizer.vocab_size
    config.text.eos_token_id = tokenizer.eot_id
    config.text.pad_token_id = tokenizer.pad_id
    return create_model(config), tokenizer


def freeze(model: CLIP, prefixes: list[str]) -> int:
    """Freeze parameters whose names start with any prefix; every prefix must match something."""
    frozen = 0
    for prefix in prefixes:
        matched = [p for n, p in model.named_parameters() if n.startswith(prefix)]
        if not matched:
            names = sorted({n.split(".")[0] for n, _ in model.named_parameters()})
            raise ValueError(f"freeze prefix {prefix!r} matches no parameter; top-level "
                             f"names: {names}")
        for parameter in matched:
            parameter.requires_grad_(False)
            frozen += parameter.numel()
    return frozen


def build_train_loader(source, section: DataSection, model: CLIP, tokenizer: Tokenizer,
                       objectives: dict[str, Objective], seed: int, rank: int, world: int):
    transform = ImageTransform(model.config.preprocess, train=True, crop_scale=section.crop_scale)
    extras = tuple(sorted({name for o in objectives.values() for name in o.extra_inputs}))
    config = LoaderConfig(batch_size=section.batch_size, workers=section.workers, shuffle=True,
                          drop_last=True, seed=seed, strict=section.strict, extra_inputs=extras)
    return build_loader(source, transform, tokenizer, config, rank=rank, world_size=world)


def open_train_source(spec: str, seed: int) -> MapSource | StreamSource:
    return open_source(spec, seed=seed)
