"""What ``clipforge benchmark`` runs: a list of (task, data set) entries, the default or a YAML.

A suite file::

    entries:
      - {task: zeroshot_classification, data: /data/wds_cifar10}          # CLIP_benchmark layout
      - {task: retrieval, data: "csv:coco_val.csv", name: mscoco_captions,
         options: {recall_k: [1, 5, 10]}}
      - {task: auto, data: "classfolder:/data/pets", options: {templates_file: pets.txt}}

``task`` is a registered evaluator (``clipforge list evaluators``), the CLIP_benchmark task it
writes (``zeroshot_classification``, ``zeroshot_retrieval``, …), or ``auto`` (CLIP_benchmark's
``--task auto``: zero-shot classification when the data names classes, else retrieval).
``name`` is the ``dataset`` written in the results and their file names (default: the data
spec; ``wds/NAME`` for a CLIP_benchmark ``wds_NAME`` folder, as CLIP_benchmark names it);
``options`` are fields of the evaluator's config, as in a training config's ``evals:``.
The default suite uses only data shipped with clipforge, so it runs anywhere offline.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

AUTO = "auto"
DEFAULT = "default"


@dataclass(frozen=True)
class SuiteEntry:
    task: str  # evaluator name, CLIP_benchmark task name, or "auto"
    data: str  # data spec
    name: str | None = None  # the "dataset" written; None: see the module docstring
    options: dict[str, Any] = field(default_factory=dict)  # fields of the evaluator's config


DEFAULT_SUITE: tuple[SuiteEntry, ...] = (
    SuiteEntry("zeroshot_classification", "builtin:emoji?split=val"),
    SuiteEntry("zeroshot_retrieval", "builtin:emoji?split=val"),
)


def parse_entry(value: Any, where: str) -> SuiteEntry:
    known = {f.name for f in dataclasses.fields(SuiteEntry)}
    if not isinstance(value, dict) or not {"task", "data"} <= set(value) or set(value) - known:
        raise ValueError(
            f"{where}: expected a mapping with task and data (and optionally name, options), "
            f"got {value!r}"
        )
    if not isinstance(value.get("options", {}), dict):
        raise ValueError(f"{where}.options: expected a mapping of config fields")
    return SuiteEntry(
        str(value["task"]),
        str(value["data"]),
        None if value.get("name") is None else str(value["name"]),
        dict(value.get("options") or {}),
    )


def load_suite(name_or_path: str | Path) -> tuple[SuiteEntry, ...]:
    """``default`` or a suite YAML file (a ``base:`` key works as in training configs)."""
    if str(name_or_path) == DEFAULT:
        return DEFAULT_SUITE
    from ..common.yaml_files import load_yaml_mapping

    path = Path(name_or_path)
    data = load_yaml_mapping(path)
    entries = data.get("entries")
    if set(data) - {"entries"} or not isinstance(entries, list) or not entries:
        raise ValueError(f"{path}: a suite file holds one key, entries: a non-empty list")
    return tuple(parse_entry(entry, f"{path}: entries[{i}]") for i, entry in enumerate(entries))


def entries_from_datasets(datasets: list[str], task: str = AUTO) -> tuple[SuiteEntry, ...]:
    """``--datasets SPEC …`` (each optionally ``NAME=SPEC``) with one ``--task`` for all."""
    entries = []
    for item in datasets:
        name, equals, spec = item.partition("=")
        named = equals and spec and not any(mark in name for mark in "?:")
        entries.append(SuiteEntry(task, spec if named else item, name if named else None))
    return tuple(entries)
