"""From a model path and a data spec to a result dict in CLIP_benchmark's schema.

What ``clipforge eval TASK`` calls: load the model (:func:`clipforge.load`), open the data the way
the task needs it, run the task's evaluator, and add what CLIP_benchmark's result JSON holds::

    {"dataset": …, "model": …, "pretrained": …, "task": …, "metrics": {…}, "language": "en",
     "num_samples": …, "skipped": […], …}

The first six keys are CLIP_benchmark's (``clip_benchmark build`` reads them), always written, so
every clipforge result file aggregates with CLIP_benchmark's own; clipforge's extra keys follow.
``dataset`` is the data spec as given (for a CLIP_benchmark folder its CLIP_benchmark name,
``wds/NAME``), ``model`` the model as given, ``pretrained`` the weights actually loaded (a run
directory's final model or latest checkpoint; the model as given when it is not a local path),
``language`` the language of the prompts (clipforge's templates are English).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..common.files import atomic_write_text
from ..data.sources import DATA_SOURCES, open_source
from ..data.sources.base import MapSource, StreamSource
from ..data.sources.classfolder import ClassFolderSource
from ..data.sources.clip_benchmark import TYPE_FILE, looks_like_clip_benchmark

LANGUAGE = "en"  # of the prompts; CLIP_benchmark's "language" key


def _no_arguments(parser: argparse.ArgumentParser) -> None:
    pass


@dataclass(frozen=True)
class Evaluator:
    """One task: the function that runs it, its config class, how to open its data, and its
    own command-line flags (``clipforge eval NAME``; the common ones — ``--model``, ``--data``,
    ``--batch-size`` … — are added by the CLI).

    ``run(model, preprocess, tokenizer, source, config)`` returns a dict with ``"task"`` and a
    flat ``"metrics"`` mapping. ``config_class`` is a dataclass with an ``encode`` field
    (:class:`EncodeConfig`); its other fields are the ``options`` of an ``evals:`` entry.
    """

    run: Callable[..., dict[str, Any]]
    config_class: type
    open_data: Callable[[str], MapSource | StreamSource]
    description: str = ""
    data_help: str = "data spec, e.g. builtin:emoji?split=val"
    add_arguments: Callable[[argparse.ArgumentParser], None] = _no_arguments
    # (parsed flags, EncodeConfig) → config; None: the config's defaults
    config_from_args: Callable[[argparse.Namespace, Any], Any] | None = None
    task_name: str | None = None  # the CLIP_benchmark task its results name; None: its own name
    data_flag: str = "--data"  # the CLI flag naming the evaluated data (linear probe: --test)

    def config_from_cli(self, args: argparse.Namespace, encode: Any) -> Any:
        if self.config_from_args is not None:
            return self.config_from_args(args, encode)
        return self.config_class(encode=encode)

    def config_from_options(self, options: dict[str, Any], encode: Any = None) -> Any:
        """The config from an ``evals:`` entry's ``options`` (YAML lists become tuples)."""
        fields = {f.name for f in dataclasses.fields(self.config_class)} - {"encode"}
        unknown = set(options) - fields
        if unknown:
            raise ValueError(
                f"unknown options {sorted(unknown)} for evaluator "
                f"{self.config_class.__name__}; known: {sorted(fields)}"
            )
        values = {
            key: tuple(value) if isinstance(value, list) else value
            for key, value in options.items()
        }
        return self.config_class(**values, **({"encode": encode} if encode is not None else {}))


CLASSFOLDER = "classfolder:"  # explicit class-per-folder layout, for any task


def _has_kind_prefix(spec: str) -> bool:
    kind, sep, _ = spec.partition(":")
    return bool(sep) and kind in DATA_SOURCES


def open_data(spec: str) -> MapSource | StreamSource:
    """``open_source(spec)``, with a missing path reported as such."""
    if spec.startswith(CLASSFOLDER):
        return ClassFolderSource(spec.removeprefix(CLASSFOLDER).partition("?")[0])
    path = Path(spec.partition("?")[0])
    if not _has_kind_prefix(spec) and not path.exists():
        raise FileNotFoundError(
            f"{path}: no such file or folder (nor a KIND:LOCATION spec with "
            f"KIND in {', '.join(DATA_SOURCES.names())})"
        )
    source = open_source(spec)
    _warn_if_joined_captions(source)
    return source


def _warn_if_joined_captions(source: MapSource | StreamSource) -> None:
    """Plain ``wds:`` on a CLIP_benchmark retrieval split would read each image's ``\\n``-joined
    captions as one text, and recall would be wrong without an error: say how to read it."""
    shards = getattr(source, "shards", None)
    if not isinstance(source, StreamSource) or not shards or "://" in str(shards[0]):
        return
    split = Path(shards[0]).parent
    if (split.parent / TYPE_FILE).is_file():
        warnings.warn(
            f"{split} is a split of a CLIP_benchmark data set, read here as plain WebDataset "
            f"(each .txt one caption); read it as clip_benchmark:{split.parent}"
            f"?split={split.name} to count each of an image's captions",
            stacklevel=2,
        )


def open_classification_data(spec: str) -> MapSource:
    """A bare folder is an image-classification folder (one sub-folder per class); anything
    else is a data spec whose source must have class names."""
    path = Path(spec)
    if (
        not spec.startswith(CLASSFOLDER)
        and not _has_kind_prefix(spec)
        and (path.is_dir() or not path.exists())
        and not looks_like_clip_benchmark(spec.partition("?")[0])
    ):
        return ClassFolderSource(path)
    source = open_data(spec)
    if not isinstance(source, MapSource) or not source.class_names():
        raise ValueError(
            f"{spec}: has no class names; classification (zero-shot, linear probe) needs an "
            f"image folder with one sub-folder per class, or a labelled data source "
            f"such as builtin:emoji?split=val"
        )
    return source


def dataset_key(source: MapSource | StreamSource) -> str | None:
    """The name a file keyed by data set uses for ``source`` (CLIP_benchmark's ``wds/NAME``)."""
    name_of = getattr(source, "dataset_name", None)
    return name_of() if callable(name_of) else None


def run_evaluation(
    task: str, model: str | Path, data: str, config: Any = None, device: str | torch.device = "cpu"
) -> dict[str, Any]:
    """Evaluate ``model`` (run dir, checkpoint, model dir or HF CLIP dir) on ``data``."""
    from ..loading import load
    from . import EVALUATORS

    evaluator = EVALUATORS.get(task)
    config = config if config is not None else evaluator.config_class()
    if not isinstance(config, evaluator.config_class):
        raise TypeError(f"task {task!r} takes a {evaluator.config_class.__name__}")
    source = evaluator.open_data(data)
    loaded_model, preprocess, tokenizer = load(model, device=device)
    if tokenizer is None:
        raise ValueError(f"{model}: the model has no tokenizer files (tokenizer.json)")
    result = evaluator.run(loaded_model, preprocess, tokenizer, source, config)
    return package_result(result, model, dataset_key(source) or data)


def pretrained_of(model: str | Path) -> str:
    """The weights ``model`` loads from: a run's final model or latest checkpoint directory,
    a model directory itself; the model as given when it is no local path (a name)."""
    from ..models.io import resolve_model_dir

    try:
        return str(resolve_model_dir(model))
    except (FileNotFoundError, ValueError):
        return str(model)


def package_result(
    result: dict[str, Any], model: str | Path, dataset: str, pretrained: str | None = None
) -> dict[str, Any]:
    """An evaluator's result with CLIP_benchmark's keys first (see the module docstring)."""
    return {
        "dataset": dataset,
        "model": str(model),
        "pretrained": pretrained if pretrained is not None else pretrained_of(model),
        "task": result["task"],
        "metrics": result["metrics"],
        "language": LANGUAGE,
        **{key: value for key, value in result.items() if key not in ("task", "metrics")},
    }


def _json_safe(value: Any) -> Any:
    """NaN/inf → null (JSON has no NaN); tuples → lists."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(item) for item in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _json_safe(dataclasses.asdict(value))
    return value


def write_json(result: dict[str, Any], path: str | Path) -> Path:
    """Atomically: a grid resumed with ``--skip-existing`` never finds half a file."""
    text = json.dumps(_json_safe(result), indent=2, allow_nan=False) + "\n"
    return atomic_write_text(path, text)
