"""Class names and per-class prompts for zero-shot classification, read from files.

Class names (``--classnames FILE``) override the names a source gives its labels (an image
folder's sub-folder names, a CLIP_benchmark ``classnames.txt``), in label order:

- ``.txt``: one class name per line (CLIP_benchmark's ``classnames.txt``);
- ``.json``: a list of names, or CLIP_benchmark's ``--custom_classname_file`` layout
  ``{dataset: [names]}`` (the entry is chosen by ``dataset``, or the only one).

Per-class prompts (``--prompts FILE``, CuPL: Pratt et al. 2023, "What does a platypus look
like?") replace the shared templates: each class has its own descriptive sentences and its
classifier weight is the normalised mean of their normalised embeddings. The JSON is
``{class name: [prompts]}`` or, as CLIP_benchmark's ``cupl_prompts.json``,
``{dataset: {class name: [prompts]}}``. Every class of the data needs at least one prompt.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..common.files import read_json


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    return read_json(path)


def _pick_dataset(table: dict, path: Path, dataset: str | None, what: str) -> Any:
    """The entry for ``dataset`` of a file keyed by data set name (or its only entry)."""
    keys = [dataset, dataset.split("/", 1)[-1]] if dataset else []
    for key in keys:
        if key in table:
            return table[key]
    if len(table) == 1:
        return next(iter(table.values()))
    raise ValueError(
        f"{path}: {what} for {len(table)} data sets ({', '.join(sorted(table)[:5])}…); "
        f"none is named {dataset!r}"
    )


def load_class_names(path: str | Path, dataset: str | None = None) -> list[str]:
    """Class names in label order from a ``.txt`` (one per line) or ``.json`` file."""
    path = Path(path)
    if path.suffix.lower() == ".json":
        value = _read_json(path)
        if isinstance(value, dict):
            value = _pick_dataset(value, path, dataset, "class names")
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError(f"{path}: expected a list of class names (or {{dataset: [names]}})")
        names = [name.strip() for name in value]
    else:
        if not path.is_file():
            raise FileNotFoundError(f"{path}: class names file not found")
        names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
        names = [name for name in names if name]
    if not names:
        raise ValueError(f"{path}: no class names (one per line, in label order)")
    return names


def load_class_prompts(
    path: str | Path, class_names: Sequence[str], dataset: str | None = None
) -> dict[str, tuple[str, ...]]:
    """``{class name: prompts}`` for exactly ``class_names`` from a CuPL-style JSON file."""
    path = Path(path)
    table = _read_json(path)
    if not isinstance(table, dict):
        raise ValueError(f"{path}: expected {{class name: [prompts]}}")
    if table and all(isinstance(v, dict) for v in table.values()):
        table = _pick_dataset(table, path, dataset, "prompts")
    prompts: dict[str, tuple[str, ...]] = {}
    for name in class_names:
        given = table.get(name)
        if isinstance(given, str):
            given = [given]
        if not given or not all(isinstance(p, str) and p.strip() for p in given):
            raise ValueError(
                f"{path}: no prompts for class {name!r} (the file has "
                f"{len(table)} classes; each class of the data needs a list of prompts)"
            )
        prompts[name] = tuple(p.strip() for p in given)
    return prompts
