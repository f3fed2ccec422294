"""Built-in data sets, opened as ``builtin:NAME`` with ``?split=train|val|all``.

Each is a small image-text set with a fixed train/val split and zero-shot classes, for trying
clipforge end to end without downloading anything:

* ``emoji`` — 3,655 emoji (Noto Color Emoji, Unicode 15.0) with captions from the CLDR; shipped
  with the package (:mod:`.emoji`).
* ``emoji-scenes`` — emoji composited on generated backgrounds at known boxes, with region
  captions, for grounding (:mod:`.emoji_scenes`); rendered on demand, ``?seed=N`` for others.
* ``openclipart`` — ~6,900 public-domain drawings, read from Debian's ``openclipart-png``
  (:mod:`.openclipart`).

Adding one is a module with a :class:`~clipforge.data.sources.base.MapSource` whose constructor
takes ``split`` (or a ``from_options(SourceOptions)`` class method), plus one line in
:data:`BUILTIN_SETS`.
"""

from __future__ import annotations

from ...registry import Registry
from .emoji import EmojiSource
from .emoji_scenes import EmojiScenesSource
from .openclipart import OpenClipartSource

BUILTIN_SETS: Registry = Registry(
    "built-in data set",
    {
        "emoji": EmojiSource,
        "emoji-scenes": EmojiScenesSource,
        "openclipart": OpenClipartSource,
    },
)

__all__ = ["BUILTIN_SETS", "EmojiScenesSource", "EmojiSource", "OpenClipartSource"]
