"""The typed configuration of a training run, composed of one section per concern.

A YAML file mirrors this structure; ``key=value`` overrides address fields by dotted path
(``optim.lr=1e-3``, ``data.batch_size=128``). Each function receives only the section it uses.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from ..common.yaml_files import load_yaml_mapping

Precision = Literal["auto", "fp32", "bf16"]


@dataclass
class ObjectiveSpec:
    """One term of the training loss: a registered objective, its weight and its kwargs."""

    name: str = "clip"
    weight: float = 1.0
    params: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, value: "str | dict | ObjectiveSpec") -> "ObjectiveSpec":
        """``"filip:0.5"`` or ``{"name": "filip", "weight": 0.5, "temperature": 0.07}``."""
        if isinstance(value, ObjectiveSpec):
            return value
        if isinstance(value, str):
            name, _, weight = value.partition(":")
            return cls(name=name, weight=float(weight) if weight else 1.0)
        value = dict(value)
        name = value.pop("name")
        weight = float(value.pop("weight", 1.0))
        params = dict(value.pop("params", {}))
        params.update(value)
        return cls(name=name, weight=weight, params=params)


@dataclass
class ModelSection:
    name: str = "tiny"                      # registered size, or a model/run dir to start from
    overrides: dict[str, Any] = field(default_factory=dict)   # ModelConfig fields, dotted ok
    tokenizer_vocab_size: int | None = None  # BPE trained on captions; None = the model's
    grad_checkpointing: bool = False
    freeze: list[str] = field(default_factory=list)  # parameter-name prefixes, e.g. ["visual"]


@dataclass
class DataSection:
    train: str = "builtin:emoji"
    val: str | None = "builtin:emoji?split=val"
    batch_size: int = 64
    workers: int = 2
    crop_scale: tuple[float, float] = (0.8, 1.0)
    epoch_samples: int | None = None         # streams: samples per epoch (default: the shards'
                                             # sizes.json / img2dataset stats, if any)
    strict: bool = False


@dataclass
class OptimSection:
    lr: float = 5e-4
    weight_decay: float = 0.2
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = 1e-6
    warmup_fraction: float = 0.05            # of total steps
    min_lr_fraction: float = 0.0             # cosine floor, as a fraction of lr
    grad_clip: float | None = 1.0
    accumulation: int = 1                    # micro-batches per optimizer step
    gradcache_chunk: int | None = None       # GradCache: embed the batch in chunks of this many
                                             # samples; exact gradients (clip/siglip only)


@dataclass
class RunSection:
    out: str = "runs/default"
    epochs: float | None = None              # one of epochs / steps / time_budget
    steps: int | None = None
    time_budget: float | None = None         # minutes of training; the schedule fits it
    seed: int = 0
    precision: Precision = "auto"            # auto: bf16 where the hardware has it, else fp32
    log_every: int = 10
    eval_every: int | None = None            # steps; None: at the end only
    save_every: int | None = None            # steps; None: at the end only
    keep_checkpoints: int = 2
    resume: bool = False
    progress: bool = True


@dataclass
class TrainConfig:
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    objectives: list[ObjectiveSpec] = field(default_factory=lambda: [ObjectiveSpec("clip")])
    optim: OptimSection = field(default_factory=OptimSection)
    run: RunSection = field(default_factory=RunSection)
    grow: list[dict[str, Any]] = field(default_factory=list)  # GrowCLIP stages

    # -- building ----------------------------------------------------------------------------

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        data = dict(data or {})
        unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown config sections: {sorted(unknown)}")
        model = data.get("model", {})
        if isinstance(model, str):
            model = {"name": model}
        return cls(
            model=_section(ModelSection, model, "model"),
            data=_section(DataSection, data.get("data", {}), "data"),
            objectives=[ObjectiveSpec.parse(o) for o in data.get("objectives", ["clip"])],
            optim=_section(OptimSection, data.get("optim", {}), "optim"),
            run=_section(RunSection, data.get("run", {}), "run"),
            grow=list(data.get("grow", [])),
        )

    @classmethod
    def from_yaml(cls, path: str | Path, overrides: list[str] = ()) -> "TrainConfig":
        """Read ``path`` (its ``base:`` files merged under it) and apply ``key=value`` overrides."""
        data = load_yaml_mapping(path)
        for override in overrides:
            apply_override(data, override)
        return cls.from_dict(data)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _section(section_cls, values: dict[str, Any], name: str):
    fields = {f.name: f for f in dataclasses.fields(section_cls)}
    unknown = set(values) - set(fields)
    if unknown:
        raise ValueError(f"unknown keys in config section {name!r}: {sorted(unknown)}; "
                         f"known: {sorted(fields)}")
    converted = {}
    for key, value in values.items():
        default = fields[key].default
        if isinstance(default, tuple) and isinstance(value, list):
            value = tuple(value)
        elif isinstance(default, float) and isinstance(value, (int, str)):
            value = float(value)
        converted[key] = value
    return section_cls(**converted)


def apply_override(data: dict[str, Any], override: str) -> None:
    """Apply ``section.key=value`` (value parsed as YAML) onto a nested dict in place."""
    if "=" not in override:
        raise ValueError(f"override {override!r} is not of the form key=value")
    dotted, _, raw = override.partition("=")
    keys = dotted.strip().split(".")
    node = data
    for key in keys[:-1]:
        if isinstance(node.get(key), str) and key == "model":
            node[key] = {"name": node[key]}
        node = node.setdefault(key, {})
    node[keys[-1]] = yaml.safe_load(raw)
