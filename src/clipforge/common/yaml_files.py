"""YAML config files, with a ``base:`` key so that recipes share one base file.

YAML has no include, so a config may name the file(s) it extends::

    base: base/tiny-emoji.yaml          # relative to this file; or a list, applied in order
    objectives:
      - {name: filip, weight: 0.5}
    run: {out: runs/filip}

The bases are read first (recursively) and this file's keys are merged over them: mappings
merge key by key, anything else (lists such as ``objectives``, scalars, an explicit ``null``)
replaces the base's value. A file that reaches itself again is an error naming the cycle.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

BASE_KEY = "base"


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """``override`` over ``base``: mappings merge recursively, other values are replaced
    (the inputs are not modified)."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_yaml_mapping(path: str | Path, _chain: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The mapping in YAML file ``path`` with its ``base:`` files resolved (an empty file: {})."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"config file not found: {path}" + (f" (the base of {_chain[-1]})" if _chain else "")
        )
    resolved = path.resolve()
    if resolved in _chain:
        cycle = " → ".join(str(p) for p in (*_chain[_chain.index(resolved) :], resolved))
        raise ValueError(f"{path}: config base cycle: {cycle}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise ValueError(f"{path}: {yaml_problem(error)}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a config file must hold a mapping")
    bases = data.pop(BASE_KEY, None) or []
    if isinstance(bases, str):
        bases = [bases]
    if not isinstance(bases, list) or not all(isinstance(b, str) for b in bases):
        raise ValueError(f"{path}: {BASE_KEY!r} must be a file path or a list of file paths")
    merged: dict[str, Any] = {}
    for base in bases:
        merged = merge(merged, load_yaml_mapping(path.parent / base, (*_chain, resolved)))
    return merge(merged, data)


def yaml_problem(error: yaml.YAMLError) -> str:
    """A YAML syntax error in one line: where (line, column) and what."""
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or str(error).splitlines()[0]
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
    return f"invalid YAML: {where}{problem}"
