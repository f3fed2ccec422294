"""``builtin:NAME``: the data sets that come with clipforge (see :mod:`clipforge.data.builtin`)."""

from __future__ import annotations

from dataclasses import replace

from .base import MapSource, SourceOptions


def open_builtin(location: str, options: SourceOptions) -> MapSource:
    """Open ``builtin:emoji``, ``builtin:openclipart?split=val`` …; ``location`` is the name."""
    from ..builtin import BUILTIN_SETS

    name = location.strip().strip("/")
    if name not in BUILTIN_SETS:
        known = ", ".join(f"builtin:{known}" for known in BUILTIN_SETS.names())
        raise ValueError(f"unknown built-in data set {f'builtin:{location}'!r}; known: {known}")
    factory = BUILTIN_SETS.get(name)
    from_options = getattr(factory, "from_options", None)  # a set that reads more than split
    if from_options:
        return from_options(replace(options, split=options.split or "train"))
    return factory(split=options.split or "train")
