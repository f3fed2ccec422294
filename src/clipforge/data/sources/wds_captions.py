"""Where a WebDataset sample keeps its caption(s): ``caption_key`` and ``caption_lines``.

img2dataset writes the caption as ``KEY.txt``, the default here as in OpenCLIP's loader (which
renames ``txt`` to ``text``). Other writers keep it in the sample's ``.json``, often as a list
(COCO-style data, five captions per image), or write several captions to one ``.txt``, a line
each (CLIP_benchmark's retrieval shards). ``caption_key`` names the place:

- ``txt`` (default) or another member's suffix (``caption``, ``text``…): that file, as UTF-8;
- ``json:FIELD``: a top-level field of the sample's ``.json``; a string is one caption, a list
  of strings several.

With ``caption_lines`` every non-empty line of a caption string is a caption of its own.

All of a sample's captions go into :attr:`~clipforge.data.record.RawRecord.captions`, in order:
training draws one per step, evaluation uses them all (see :mod:`clipforge.data.record`).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import webdataset as wds

DEFAULT_MEMBER = "txt"
JSON_PREFIX = "json:"


@dataclass(frozen=True)
class CaptionKey:
    member: str = DEFAULT_MEMBER  # the sample member (file suffix) holding the caption(s)
    field: str | None = None  # with member "json": the field holding them
    lines: bool = False  # one caption per line

    @classmethod
    def parse(cls, text: str | None, lines: bool = False) -> CaptionKey:
        """``None``/``txt``/``caption``… or ``json:FIELD`` → a key; anything else is refused."""
        text = (text or DEFAULT_MEMBER).strip().lstrip(".")
        if text.startswith(JSON_PREFIX):
            field = text[len(JSON_PREFIX) :]
            if not field:
                raise ValueError(f"wds caption key {text!r}: name the field, e.g. json:caption")
            return cls("json", field, lines)
        if text == "json" or not text or ":" in text:
            raise ValueError(
                f"wds caption key {text!r}: expected a member suffix (txt) or json:FIELD"
            )
        return cls(text.lower(), None, lines)

    def __str__(self) -> str:
        return f"{JSON_PREFIX}{self.field}" if self.field else self.member

    def captions(self, sample: dict, parsed_json: Any) -> tuple[str, ...] | None:
        """The captions of a webdataset sample dict (its ``.json`` already parsed, or None);
        ``None`` when the sample lacks the key, ``()`` when it holds no text."""
        if self.field is None:
            if self.member not in sample:
                return None
            return self._split([bytes(sample[self.member]).decode("utf-8", errors="replace")])
        if not isinstance(parsed_json, dict) or self.field not in parsed_json:
            return None
        value = parsed_json[self.field]
        values = value if isinstance(value, list) else [value]
        return self._split(v for v in values if isinstance(v, str))

    def _split(self, texts: Iterable[str]) -> tuple[str, ...]:
        parts = (line for text in texts for line in text.splitlines()) if self.lines else texts
        return tuple(part.strip() for part in parts if part.strip())

    def check(self, shard: str, samples: int = 16) -> None:
        """Refuse this key when none of the first ``samples`` samples of ``shard`` (a local
        tar) has it: one line naming what the first sample holds instead."""
        pipeline = wds.DataPipeline(
            wds.SimpleShardList([shard]), wds.tarfile_to_samples(handler=wds.ignore_and_continue)
        )
        first: tuple[dict, Any] | None = None
        for sample in itertools.islice(pipeline, samples):
            parsed, _ = parse_json_member(sample)
            if self.captions(sample, parsed) is not None:
                return
            first = first or (sample, parsed)
        if first is None:
            return  # an unreadable shard is reported while training
        sample, parsed = first
        members = sorted(k for k in sample if not k.startswith("__"))
        fields = f", .json fields {sorted(parsed)}" if isinstance(parsed, dict) else ""
        raise ValueError(
            f"{shard}: no caption {str(self)!r} (caption_key / --wds-caption-key) in its first "
            f"samples; sample {sample['__key__']!r} has members {members}{fields}"
        )


def parse_json_member(sample: dict) -> tuple[Any, str | None]:
    """The sample's parsed ``.json`` (None when it has none), and the parse error if any."""
    if "json" not in sample:
        return None, None
    try:
        return json.loads(sample["json"]), None
    except (ValueError, UnicodeDecodeError) as error:
        return None, str(error)


TXT_CAPTION = CaptionKey()  # img2dataset's and OpenCLIP's: the sample's .txt, one caption
