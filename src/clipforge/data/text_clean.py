"""Text clean-up applied before tokenizing, by name (stored with the tokenizer).

``"lower"`` is OpenCLIP's default (``open_clip.tokenizer._clean_lower``, from OpenAI CLIP):
``ftfy.fix_text`` (mojibake, curly quotes → straight, ligatures, NFC), HTML entities unescaped
twice, runs of whitespace collapsed to one space, stripped, lower-cased. It matters for the ids:
``it’s`` and ``it's`` tokenize differently without it. ``ftfy`` is imported on first use.
"""

from __future__ import annotations

import html
from collections.abc import Callable


def clean_lower(text: str) -> str:
    """OpenCLIP's ``clean="lower"``: ftfy + HTML unescape, whitespace collapsed, lower case."""
    import ftfy

    text = html.unescape(html.unescape(ftfy.fix_text(text))).strip()
    return " ".join(text.split()).lower()


CLEANERS: dict[str, Callable[[str], str]] = {"lower": clean_lower}


def cleaner(name: str | None) -> Callable[[str], str] | None:
    """The clean-up function called ``name`` (None: none)."""
    if name is None:
        return None
    if name not in CLEANERS:
        raise ValueError(f"unknown text clean {name!r}; known: {', '.join(sorted(CLEANERS))}")
    return CLEANERS[name]
