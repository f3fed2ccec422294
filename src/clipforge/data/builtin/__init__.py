"""Built-in data sets, opened as ``builtin:NAME`` with ``?split=train|val|all``.

Each is a small image-text set with a fixed train/val split and zero-shot classes, for trying
clipforge end to end without downloading anything:

* ``emoji`` — 3,655 emoji (Noto Color Emoji, Unicode 15.0) with captions from the CLDR; shipped
  with the package (:mod:`.emoji`).
* ``openclipart`` — ~6,900 public-domain drawings, read from Debian's ``openclipart-png``
  (:mod:`.openclipart`).

Adding one is a module with a :class:`~clipforge.data.sources.base.MapSource` whose constructor
takes ``split``, plus one line in :data:`BUILTIN_SETS`.
"""

from __future__ import annotations

from ...registry import Registry
from .emoji import EmojiSource
from .openclipart import OpenClipartSource

BUILTIN_SETS: Registry = Registry(
    "built-in data set",
    {
        "emoji": EmojiSource,
        "openclipart": OpenClipartSource,
    },
)

__all__ = ["BUILTIN_SETS", "EmojiSource", "OpenClipartSource"]
