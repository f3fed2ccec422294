"""Help text that shows the library's defaults without importing the library to build a parser.

Verb flags default to ``None`` so the library's dataclass (or function signature) holds the one
default; ``--help`` still shows it: :func:`shows_default` attaches a lazily resolved value that
argparse formats into ``%(library_default)s`` only when the help is printed.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import inspect
from typing import Any


class LibraryDefault:
    """``module:Owner.field`` — a dataclass field's default or a function parameter's default,
    looked up on ``str()`` (the module may import torch)."""

    def __init__(self, location: str):
        self.location = location

    def value(self) -> Any:
        module_name, _, path = self.location.partition(":")
        owner_path, _, name = path.rpartition(".")
        owner: Any = importlib.import_module(module_name)
        for part in owner_path.split("."):
            owner = getattr(owner, part)
        if dataclasses.is_dataclass(owner):
            field = {f.name: f for f in dataclasses.fields(owner)}[name]
            if field.default_factory is not dataclasses.MISSING:
                return field.default_factory()
            return field.default
        return inspect.signature(owner).parameters[name].default

    def __str__(self) -> str:
        value = self.value()
        if isinstance(value, (tuple, list)):
            return " ".join(str(v) for v in value)
        return str(value)


def shows_default(action: argparse.Action, location: str) -> argparse.Action:
    """Append ``(default: …)`` from ``location`` (see :class:`LibraryDefault`) to the help."""
    action.library_default = LibraryDefault(location)  # type: ignore[attr-defined]
    action.help = f"{action.help or ''} (default: %(library_default)s)".strip()
    return action


def given(**values: Any) -> dict[str, Any]:
    """The keyword arguments the user set (flags left at ``None`` keep the library default)."""
    return {key: value for key, value in values.items() if value is not None}
