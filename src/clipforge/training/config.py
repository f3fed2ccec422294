"""The typed configuration of a training run, composed of one section per concern.

A YAML file mirrors this structure; ``key=value`` overrides address fields by dotted path
(``optim.lr=1e-3``, ``data.batch_size=128``). Each function receives only the section it uses.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from ..common.precision import PRECISIONS, Precision
from ..common.yaml_files import load_yaml_mapping, yaml_problem
from .clock import BUDGET_CLOCKS
from .reporters import parse_report_to
from .validate import check_choice, check_number, check_pair, to_float

if TYPE_CHECKING:  # both import torch; --help must not
    from ..evaluation.scheduled import EvalSpec
    from ..models.grow import GrowStage


@dataclass
class ObjectiveSpec:
    """One term of the training loss: a registered objective, its weight and its kwargs."""

    name: str = "clip"
    weight: float = 1.0
    params: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, value: str | dict | ObjectiveSpec) -> ObjectiveSpec:
        """``"filip:0.5"`` or ``{"name": "filip", "weight": 0.5, "temperature": 0.07}``."""
        if isinstance(value, ObjectiveSpec):
            return value
        if isinstance(value, str):
            name, _, weight = value.partition(":")
            return cls(
                name=name, weight=to_float(f"objective {name} weight", weight) if weight else 1.0
            )
        if not isinstance(value, dict) or "name" not in value:
            raise ValueError(
                f"an objective is 'NAME[:WEIGHT]' or a mapping with a name, got {value!r}"
            )
        value = dict(value)
        name = value.pop("name")
        weight = to_float(f"objective {name} weight", value.pop("weight", 1.0))
        params = dict(value.pop("params", {}))
        params.update(value)
        return cls(name=name, weight=weight, params=params)


@dataclass
class ModelSection:
    name: str = "tiny"  # registered size (clipforge list models) or a
    # model/run directory to continue from
    overrides: dict[str, Any] = field(default_factory=dict)  # ModelConfig fields, dotted ok,
    # e.g. {vision.layers: 4, projection: mlp}
    tokenizer_vocab_size: int | None = None  # BPE trained on the captions; null: the model's
    grad_checkpointing: bool = False  # recompute activations in backward
    freeze: list[str] = field(default_factory=list)  # parameter-name prefixes (visual,
    # text.encoder); each must match

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"model.name must be a model size or directory, got {self.name!r}")
        check_number(
            "model.tokenizer_vocab_size", self.tokenizer_vocab_size, int, minimum=1, optional=True
        )


SOURCE_OPTION_FIELDS = (
    "csv_img_key",
    "csv_caption_key",
    "csv_separator",
    "wds_caption_key",
    "wds_caption_lines",
)


@dataclass
class DataSection:
    train: str = "builtin:emoji"  # data spec (--data)
    val: str | None = "auto"  # data spec evaluated during and after training;
    # auto: a built-in set's val split, else 5 %
    # (at most 1,000) of the training data held out;
    # null: none (--val none)
    batch_size: int = 64  # per process
    workers: int = 2  # data-loading processes per process
    crop_scale: tuple[float, float] = (0.8, 1.0)  # random-resized-crop area range
    epoch_samples: int | None = None  # streams: samples per epoch (default: the shards'
    # sizes.json / img2dataset stats, if any)
    strict: bool = False  # stop at the first bad record instead of skipping
    csv_img_key: str | None = None  # train+val tables: image column (--csv-img-key);
    # null: image, else filepath
    csv_caption_key: str | None = None  # tables: caption column; null: caption, else title
    csv_separator: str | None = None  # tables: delimiter (tab ok); null: by suffix, header
    wds_caption_key: str | None = None  # wds: txt (null), another member, or json:FIELD
    wds_caption_lines: bool | None = None  # wds: each line of the caption is a caption

    def __post_init__(self) -> None:
        self.validate()

    def source_options(self) -> dict[str, Any]:
        """The data-source options set here, for the train and val sources, by their flag names
        (``SourceOptions`` reads them); they win over the same options in a spec's query."""
        return {
            name: getattr(self, name)
            for name in SOURCE_OPTION_FIELDS
            if getattr(self, name) is not None
        }

    def validate(self) -> None:
        for name in SOURCE_OPTION_FIELDS:
            value, kind = getattr(self, name), bool if name == "wds_caption_lines" else str
            if value is not None and not (isinstance(value, kind) and value != ""):
                raise ValueError(f"data.{name} must be a {kind.__name__}, got {value!r}")
        for key in ("train", "val"):
            value = getattr(self, key)
            if not (isinstance(value, str) and value) and not (key == "val" and value is None):
                raise ValueError(f"data.{key} must be a data spec string, got {value!r}")
        check_number("data.batch_size", self.batch_size, int, minimum=1)
        check_number("data.workers", self.workers, int, minimum=0)
        check_pair("data.crop_scale", self.crop_scale, low=0.0, high=1.0)
        check_number("data.epoch_samples", self.epoch_samples, int, minimum=1, optional=True)


@dataclass
class OptimSection:
    lr: float = 5e-4  # AdamW peak learning rate
    weight_decay: float = 0.2  # not on norms, biases, embeddings, logit scale
    betas: tuple[float, float] = (0.9, 0.98)  # AdamW
    eps: float = 1e-6  # AdamW
    warmup_fraction: float = 0.05  # of total steps, linear, then cosine
    min_lr_fraction: float = 0.0  # cosine floor, as a fraction of lr
    grad_clip: float | None = 1.0  # global gradient norm; null: off
    accumulation: int = 1  # micro-batches per optimizer step
    gradcache_chunk: int | None = None  # GradCache: embed the batch in chunks of this many
    # samples; exact gradients (clip/siglip only)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        check_number("optim.lr", self.lr, float, minimum=0.0, exclusive=True)
        check_number("optim.weight_decay", self.weight_decay, float, minimum=0.0)
        check_pair("optim.betas", self.betas, low=0.0, high=1.0, ordered=False)
        check_number("optim.eps", self.eps, float, minimum=0.0, exclusive=True)
        check_number("optim.warmup_fraction", self.warmup_fraction, float, minimum=0.0, maximum=1.0)
        check_number("optim.min_lr_fraction", self.min_lr_fraction, float, minimum=0.0, maximum=1.0)
        check_number(
            "optim.grad_clip", self.grad_clip, float, minimum=0.0, exclusive=True, optional=True
        )
        check_number("optim.accumulation", self.accumulation, int, minimum=1)
        check_number("optim.gradcache_chunk", self.gradcache_chunk, int, minimum=1, optional=True)


@dataclass
class RunSection:
    out: str = "runs/default"  # run directory
    epochs: float | None = None  # exactly one of epochs / steps / time_budget
    # (none given: 1 epoch)
    steps: int | None = None  # optimizer steps
    time_budget: float | None = None  # minutes of training; the schedule is planned
    # from measured step times to fit it
    budget_clock: str = "wall"  # what the time budget counts: wall | cpu (CPU time of
    # the trainer and its loader workers, the same compute on a busy machine)
    seed: int = 0  # seeds the model, data order and augmentations
    precision: Precision = "auto"  # auto: bf16 autocast where the hardware runs it
    # fast (CUDA, AVX-512-BF16/AMX CPUs), else fp32
    # ($CLIPFORGE_PRECISION=fp32|bf16 replaces
    # what auto picks)
    log_every: int = 10  # steps between metrics.jsonl lines
    eval_every: int | None = None  # steps; null: at the end only
    save_every: int | None = None  # steps; null: at the end only
    keep_checkpoints: int = 2  # newest complete checkpoints kept
    resume: bool = False  # continue the run in out from its newest intact
    # checkpoint with its saved config.yaml; only the
    # run length (extends) and logging may differ
    overwrite: bool = False  # replace an earlier run in out (only a run)
    progress: bool = True  # progress bar
    report_to: list[str] = field(default_factory=list)  # experiment trackers besides
    # metrics.jsonl and train.log: csv, tensorboard, wandb (--report-to tensorboard,csv)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        if not isinstance(self.out, str) or not self.out:
            raise ValueError(f"run.out must be a directory path, got {self.out!r}")
        check_number("run.epochs", self.epochs, float, minimum=0.0, exclusive=True, optional=True)
        check_number("run.steps", self.steps, int, minimum=1, optional=True)
        check_number(
            "run.time_budget", self.time_budget, float, minimum=0.0, exclusive=True, optional=True
        )
        check_choice("run.budget_clock", self.budget_clock, BUDGET_CLOCKS)
        check_number("run.seed", self.seed, int)
        check_choice("run.precision", self.precision, PRECISIONS)
        check_number("run.log_every", self.log_every, int, minimum=1)
        check_number("run.eval_every", self.eval_every, int, minimum=1, optional=True)
        check_number("run.save_every", self.save_every, int, minimum=1, optional=True)
        check_number("run.keep_checkpoints", self.keep_checkpoints, int, minimum=0)
        self.report_to = parse_report_to(self.report_to)
        if self.resume and self.overwrite:
            raise ValueError(
                "give --resume (continue the run in --out) or --overwrite (replace it), not both"
            )


@dataclass
class TrainConfig:
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    objectives: list[ObjectiveSpec] = field(default_factory=lambda: [ObjectiveSpec("clip")])
    # each {name, weight, **hyper-parameters}; --objective filip:0.5
    optim: OptimSection = field(default_factory=OptimSection)
    run: RunSection = field(default_factory=RunSection)
    grow: list[GrowStage] = field(default_factory=list)  # GrowCLIP stages (models/grow.py)
    evals: list[EvalSpec] = field(default_factory=list)  # evaluators run during training
    # (evaluation/scheduled.py)

    # -- building ----------------------------------------------------------------------------

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        data = dict(data or {})
        unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown config sections: {sorted(unknown)}")
        model = data.get("model", {})
        if isinstance(model, str):
            model = {"name": model}
        objectives = data.get("objectives", ["clip"])
        if not isinstance(objectives, list) or not objectives:
            raise ValueError(f"objectives must be a non-empty list, got {objectives!r}")
        from ..models.grow import GrowStage  # lazy: imports torch

        run = _section(RunSection, data.get("run", {}), "run")
        return cls(
            model=_section(ModelSection, model, "model"),
            data=_section(DataSection, data.get("data", {}), "data"),
            objectives=[ObjectiveSpec.parse(o) for o in objectives],
            optim=_section(OptimSection, data.get("optim", {}), "optim"),
            run=run,
            grow=[GrowStage.parse(stage) for stage in data.get("grow") or []],
            evals=_evals(data.get("evals") or [], run),
        )

    @classmethod
    def from_yaml(cls, path: str | Path, overrides: Sequence[str] = ()) -> TrainConfig:
        """Read ``path`` (its ``base:`` files merged under it) and apply ``key=value`` overrides."""
        data = load_yaml_mapping(path)
        for override in overrides:
            apply_override(data, override)
        return cls.from_dict(data)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def validate(self) -> None:
        """Check every section again (fields may have been set after construction)."""
        for section in (self.model, self.data, self.optim, self.run):
            section.validate()
        for spec in self.objectives:
            check_number(f"objective {spec.name} weight", spec.weight, float)


def _evals(entries: list[Any], run: RunSection) -> list[EvalSpec]:
    """``evals:`` entries, checked; ``every`` must fall on the trainer's evaluation steps."""
    from ..evaluation.scheduled import EvalSpec  # lazy: imports torch

    if not isinstance(entries, list):
        raise ValueError("evals: expected a list of {name, data, every, options}")
    specs = [EvalSpec.parse(entry, f"evals[{i}]") for i, entry in enumerate(entries)]
    for i, spec in enumerate(specs):
        if spec.every is not None and (not run.eval_every or spec.every % run.eval_every):
            raise ValueError(
                f"evals[{i}].every={spec.every}: must be a multiple of "
                f"run.eval_every ({run.eval_every}), the steps the trainer "
                "evaluates at"
            )
    labels = [spec.key for spec in specs]
    if len(set(labels)) < len(labels):
        raise ValueError(
            f"evals: two entries with the label {max(labels, key=labels.count)!r}; "
            "give one a distinct label"
        )
    return specs


def _section(section_cls, values: dict[str, Any], name: str):
    if not isinstance(values, dict):
        raise ValueError(f"config section {name!r} must be a mapping, got {values!r}")
    fields = {f.name: f for f in dataclasses.fields(section_cls)}
    unknown = set(values) - set(fields)
    if unknown:
        raise ValueError(
            f"unknown keys in config section {name!r}: {sorted(unknown)}; known: {sorted(fields)}"
        )
    converted = {}
    for key, value in values.items():
        default = fields[key].default
        if isinstance(default, tuple) and isinstance(value, list):
            value = tuple(value)
        elif isinstance(default, float) or fields[key].type in ("float | None",):
            value = to_float(f"{name}.{key}", value)
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
    try:
        node[keys[-1]] = yaml.safe_load(raw)
    except yaml.YAMLError as error:
        raise ValueError(f"override {override!r}: {yaml_problem(error)}") from None
