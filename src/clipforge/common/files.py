"""Atomic file writes: a reader (or a resumed run after a crash) sees the old file or the new
one, never half of one.

The content goes to a hidden sibling ``.tmp-PID-NAME`` (same directory, so the same file system;
same suffix, so writers that infer the format from it still work), then ``os.replace`` renames it
over the target — atomic on POSIX and Windows. On any error the temporary file is removed and the
target is untouched. Files get the process umask's permissions, like any ``open(…, "w")``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any


def temporary_sibling(path: Path) -> Path:
    return path.with_name(f".tmp-{os.getpid()}-{path.name}")


def atomic_write(path: str | Path, write: Callable[[Path], Any]) -> Path:
    """Call ``write(tmp)`` to produce the file, then rename ``tmp`` to ``path``; returns ``path``.

    E.g. ``atomic_write(out / "model.safetensors", lambda tmp: save_file(state, str(tmp)))``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_sibling(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text))


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def read_json(path: str | Path) -> Any:
    """The JSON in ``path``, or ``ValueError`` naming the file (one line) when it is not JSON."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from None
