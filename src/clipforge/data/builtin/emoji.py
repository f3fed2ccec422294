"""``builtin:emoji``: the 3,655 Unicode 15.0 emoji drawn by Noto Color Emoji, with captions.

A small image-text set that works offline on any machine: the repository ships it as
``data/assets/emoji.parquet`` (made by :func:`.prepare.prepare_emoji`; licences in
``data/assets/NOTICE``). One row per fully-qualified emoji:

    key           "1f44b-1f3fd"  codepoints, Noto file-name style (no U+FE0F)
    emoji         "👋🏽"
    name          "waving hand: medium skin tone"   CLDR short name
    group         "People & Body"                   9 groups
    subgroup      "hand-fingers-open"               99 subgroups (the zero-shot classes)
    keywords      ["hand", "wave", …]              CLDR keywords (none for 31 emoji new in 15.0)
    captions      five phrasings, see ``scripts/emoji_asset/emoji_captions.py``
    base          "waving hand"                     the name without skin tones
    split         "train" | "val"
    emoji_version "1.0"
    image         72 × 72 RGBA WebP (lossless, 256-colour palette)

**Split.** Fixed and by emoji, never by image: :func:`.splits.choose_val_units` puts ~15 % of each
subgroup in ``val`` by hashing the ``base`` name, so an emoji and its skin-tone variants are always
on the same side (otherwise ``val`` would hold recoloured copies of training images). Every
subgroup with ≥ 3 emoji in ≥ 2 bases is in both splits.

**Zero-shot.** ``class_names()`` are the readable subgroup names of all 99 subgroups, the same list
for every split so labels compare; ``metadata["label"]`` is the index into it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq

from ..record import RawRecord
from ..sources.base import MapSource
from .splits import check_split

EMOJI_ASSET = Path(__file__).resolve().parent.parent / "assets" / "emoji.parquet"
ASSET_FORMAT = "clipforge-emoji-1"
_METADATA_COLUMNS = ("name", "group", "subgroup", "keywords", "emoji", "base", "split")


class EmojiSource(MapSource):
    """The shipped emoji set, one split of it; images stay encoded until the loader decodes."""

    name = "emoji"

    def __init__(self, split: str = "train", path: str | Path = EMOJI_ASSET):
        check_split(split, "emoji")
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(
                f"emoji data not found: {path}; rebuild it with "
                "`python scripts/prepare_builtin.py emoji`"
            )
        table = pq.read_table(path)
        metadata = {
            key.decode(): value.decode() for key, value in (table.schema.metadata or {}).items()
        }
        if metadata.get("clipforge.format") != ASSET_FORMAT:
            raise ValueError(
                f"{path} is not a {ASSET_FORMAT} file (format {metadata.get('clipforge.format')!r})"
            )
        if split != "all":
            table = table.filter(table.column("split").to_numpy(zero_copy_only=False) == split)
        self.split = split
        self._class_names: list[str] = json.loads(metadata["clipforge.class_names"])
        label_of = {
            subgroup: index
            for index, subgroup in enumerate(json.loads(metadata["clipforge.subgroups"]))
        }
        self._keys: list[str] = table.column("key").to_pylist()
        self._captions = [tuple(c) for c in table.column("captions").to_pylist()]
        self._columns = {name: table.column(name).to_pylist() for name in _METADATA_COLUMNS}
        self._labels = [label_of[subgroup] for subgroup in self._columns["subgroup"]]
        self._images = table.column("image").combine_chunks()  # binary, decoded per record

    def __len__(self) -> int:
        return len(self._keys)

    def __getitem__(self, index: int) -> RawRecord:
        if not -len(self) <= index < len(self):
            raise IndexError(f"emoji index {index} out of range for {len(self)} records")
        index %= len(self)
        metadata = {name: values[index] for name, values in self._columns.items()}
        metadata["codepoints"] = self._keys[index]
        metadata["label"] = self._labels[index]
        metadata["class_name"] = self._class_names[self._labels[index]]
        return RawRecord(
            self._keys[index], self._images[index].as_py(), self._captions[index], metadata
        )

    def captions(self) -> Iterator[str]:
        for captions in self._captions:
            yield from captions

    def class_names(self) -> list[str]:
        return list(self._class_names)


def open_emoji(split: str = "train") -> EmojiSource:
    return EmojiSource(split)
