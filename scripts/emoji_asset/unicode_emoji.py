"""Read the Unicode emoji list and the CLDR English keywords, as Debian installs them.

* ``emoji-test.txt`` (package ``unicode-data``) lists every emoji in keyboard order under
  ``# group:`` and ``# subgroup:`` headings, one per line::

      1F44B 1F3FD ; fully-qualified # 👋🏽 E1.0 waving hand: medium skin tone

  Only ``fully-qualified`` lines are kept: they are the RGI set (UTS #51 ED-18), one line per
  distinct picture; minimally-/un-qualified lines are the same pictures again.
* ``annotations/en.xml`` and ``annotationsDerived/en.xml`` (package ``unicode-cldr-core``) give
  ``<annotation cp="😀">face | grin | grinning face</annotation>``; the derived file covers skin
  tones, flags and ZWJ sequences. CLDR keys drop the emoji presentation selector U+FE0F.

This module only parses text; rendering is in :mod:`.prepare`.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path

DEBIAN_EMOJI_TEST = Path("/usr/share/unicode/emoji/emoji-test.txt")
DEBIAN_CLDR_ANNOTATIONS = (
    Path("/usr/share/unicode/cldr/common/annotations/en.xml"),
    Path("/usr/share/unicode/cldr/common/annotationsDerived/en.xml"),
)
DEBIAN_EMOJI_FONT = Path("/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf")
DEBIAN_PACKAGES = "fonts-noto-color-emoji unicode-data unicode-cldr-core"

# Fitzpatrick modifiers U+1F3FB…U+1F3FF: the five skin tones an emoji modifier base can take.
SKIN_TONES = frozenset(range(0x1F3FB, 0x1F400))
PRESENTATION_SELECTOR = 0xFE0F

_LINE = re.compile(
    r"^(?P<codes>[0-9A-F ]+?)\s*;\s*fully-qualified\s*#\s*\S+\s+E(?P<version>[\d.]+)"
    r"\s+(?P<name>.+)$"
)


@dataclass(frozen=True)
class EmojiEntry:
    codepoints: tuple[int, ...]
    name: str  # CLDR short name, e.g. "waving hand: medium skin tone"
    group: str  # e.g. "People & Body"
    subgroup: str  # e.g. "hand-fingers-open"
    version: str  # emoji version that introduced it, e.g. "1.0"
    keywords: tuple[str, ...] = ()

    @property
    def text(self) -> str:
        return "".join(map(chr, self.codepoints))

    @property
    def key(self) -> str:
        """Stable id, Noto's file-name style: ``1f44b-1f3fd``."""
        return codepoints_key(self.codepoints)

    @property
    def base_key(self) -> str:
        """The key without skin-tone modifiers: a skin-tone variant shares its base's split."""
        return codepoints_key(tuple(c for c in self.codepoints if c not in SKIN_TONES))


def codepoints_key(codepoints: tuple[int, ...]) -> str:
    return "-".join(f"{code:x}" for code in codepoints if code != PRESENTATION_SELECTOR)


def parse_emoji_test(path: Path = DEBIAN_EMOJI_TEST) -> list[EmojiEntry]:
    """Fully-qualified emoji of ``emoji-test.txt`` in file order (without keywords)."""
    entries: list[EmojiEntry] = []
    group = subgroup = ""
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.startswith("# group:"):
            group = line.partition(":")[2].strip()
        elif line.startswith("# subgroup:"):
            subgroup = line.partition(":")[2].strip()
        elif match := _LINE.match(line):
            codepoints = tuple(int(code, 16) for code in match["codes"].split())
            entries.append(
                EmojiEntry(codepoints, match["name"].strip(), group, subgroup, match["version"])
            )
    if not entries:
        raise ValueError(f"no fully-qualified emoji found in {path}; is it emoji-test.txt?")
    return entries


def parse_cldr_keywords(
    paths: tuple[Path, ...] = DEBIAN_CLDR_ANNOTATIONS,
) -> dict[str, tuple[str, ...]]:
    """CLDR keywords by :func:`codepoints_key`; later files add to earlier ones."""
    keywords: dict[str, tuple[str, ...]] = {}
    for path in paths:
        root = ElementTree.parse(path).getroot()
        for node in root.iter("annotation"):
            if node.get("type") == "tts" or not node.text:
                continue
            key = codepoints_key(tuple(ord(char) for char in node.get("cp", "")))
            words = tuple(word.strip() for word in node.text.split("|") if word.strip())
            keywords[key] = tuple(dict.fromkeys(keywords.get(key, ()) + words))
    return keywords


def read_emoji(
    emoji_test: Path = DEBIAN_EMOJI_TEST,
    cldr_annotations: tuple[Path, ...] = DEBIAN_CLDR_ANNOTATIONS,
) -> list[EmojiEntry]:
    """Every fully-qualified emoji with its CLDR keywords (empty where CLDR is older)."""
    keywords = parse_cldr_keywords(cldr_annotations)
    return [
        EmojiEntry(e.codepoints, e.name, e.group, e.subgroup, e.version, keywords.get(e.key, ()))
        for e in parse_emoji_test(emoji_test)
    ]
