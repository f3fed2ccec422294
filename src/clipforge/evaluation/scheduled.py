"""Evaluators run during training, from the ``evals:`` section of a training config::

    evals:
      - {name: zeroshot, data: "classfolder:/data/pets", every: 500}
      - {name: retrieval, data: "csv:/data/coco_val.csv", options: {recall_k: [1, 5]}}

Each entry names a registered evaluator (``clipforge list evaluators``), its data spec, how
often it runs (``every`` steps, a multiple of ``run.eval_every``, the trainer's evaluation tick;
absent: at the end of training only) and its ``options`` (fields of the evaluator's config,
e.g. ``templates`` for zero-shot, ``recall_k`` for retrieval). Every entry also runs once at the
end. Its metrics are logged as ``LABEL/METRIC`` (label: the evaluator's name unless given) in
``eval.jsonl`` beside the validation metrics, and end up in ``metrics.json["eval"]``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

SEPARATOR = "/"


@dataclass
class EvalSpec:
    name: str  # registered evaluator
    data: str  # its data spec
    every: int | None = None  # steps; None: at the end of training only
    options: dict[str, Any] = field(default_factory=dict)  # fields of the evaluator's config
    label: str | None = None  # metric prefix; None: ``name``

    @property
    def key(self) -> str:
        return self.label or self.name

    @classmethod
    def parse(cls, value: dict[str, Any] | EvalSpec, where: str = "evals") -> EvalSpec:
        """Check an ``evals:`` entry: known keys, a registered evaluator, valid options."""
        if isinstance(value, EvalSpec):
            return value
        if not isinstance(value, dict):
            raise ValueError(
                f"{where}: expected a mapping {{name, data, every, options}}, got {value!r}"
            )
        known = {f.name for f in dataclasses.fields(cls)}
        if set(value) - known or not {"name", "data"} <= set(value):
            raise ValueError(
                f"{where}: keys {sorted(value)}; expected name and data, and "
                f"optionally {sorted(known - {'name', 'data'})}"
            )
        spec = cls(**value)
        if spec.every is not None and (not isinstance(spec.every, int) or spec.every < 1):
            raise ValueError(
                f"{where}.every: expected a positive number of steps, got {spec.every!r}"
            )
        from . import EVALUATORS

        try:
            evaluator = EVALUATORS.get(spec.name)
        except KeyError as error:
            raise ValueError(f"{where}.name: {error.args[0]}") from None
        try:
            evaluator.config_from_options(spec.options)
        except (TypeError, ValueError) as error:
            raise ValueError(f"{where}.options: {error}") from None
        return spec


def run_scheduled(
    model,
    preprocess,
    tokenizer,
    specs: list[EvalSpec],
    step: int,
    final: bool,
    encode: Any = None,
    done: Collection[str] = (),
) -> dict[str, float]:
    """Run the entries due at ``step`` (every one when ``final``) except those whose label is
    in ``done``; returns ``{LABEL/METRIC: value}``."""
    from . import EVALUATORS

    metrics: dict[str, float] = {}
    for spec in specs:
        due = final or (spec.every is not None and step % spec.every == 0)
        if not due or spec.key in done:
            continue
        evaluator = EVALUATORS.get(spec.name)
        config = evaluator.config_from_options(spec.options, encode)
        result = evaluator.run(model, preprocess, tokenizer, evaluator.open_data(spec.data), config)
        metrics.update(
            {f"{spec.key}{SEPARATOR}{name}": value for name, value in result["metrics"].items()}
        )
    return metrics
