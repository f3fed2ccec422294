"""``builtin:NAME``: the data sets that come with clipforge (see :mod:`clipforge.data.builtin`)."""

from __future__ import annotations

from .base import MapSource, SourceOptions


def open_builtin(location: str, options: SourceOptions) -> MapSource:
    """Open ``builtin:emoji``, ``builtin:openclipart?split=val`` …; ``location`` is the name."""
    from ..builtin import BUILTIN_SETS

    name = location.strip().strip("/")
    if name not in BUILTIN_SETS:
        known = ", ".join(f"builtin:{known}" for known in BUILTIN_SETS.names())
        raise ValueError(f"unknown built-in data set {f'builtin:{location}'!r}; known: {known}")
    return BUILTIN_SETS.get(name)(split=options.split or "train")
