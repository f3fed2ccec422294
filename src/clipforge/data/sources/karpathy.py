"""``karpathy:``: Karpathy's split files for Flickr30k, Flickr8k and COCO, read in place.

The JSON of Karpathy & Fei-Fei's "Deep visual-semantic alignments" (2015) split, which most
retrieval papers (and CLIP_benchmark's ``flickr30k``/``mscoco_captions`` test sets) use::

    dataset_flickr30k.json  {"images": [{"filename": "1000092795.jpg", "split": "test",
                                          "sentences": [{"raw": "Two young guys …"}, …]}, …]}
    dataset_coco.json       the same, plus "filepath": "val2014" per image

``karpathy:FILE.json?split=test`` (default ``test``; also ``val``, ``train``, and COCO's
``restval``) gives one record per image of that split with all its ``sentences[].raw`` as
captions. Images are found at ``IMAGE_ROOT/[filepath/]filename``, ``IMAGE_ROOT`` being
``?image_root=DIR`` or else the JSON's folder; the first image is looked for when the source
opens, so a wrong folder fails at once, naming where it looked, not as N bad records later.
"""

from __future__ import annotations

from pathlib import Path

from ..record import RawRecord
from .base import MapSource, SourceOptions
from .coco_captions import field, read_json_keys

DEFAULT_SPLIT = "test"
LAYOUT = "Karpathy split JSON: images[].filename/split/sentences[].raw"


class KarpathySplitSource(MapSource):
    name = "karpathy"

    def __init__(self, location: str | Path, options: SourceOptions | None = None):
        options = options or SourceOptions()
        self.path = Path(location).expanduser()
        self.split = options.split or DEFAULT_SPLIT
        self.image_root = Path(options.image_root) if options.image_root else self.path.parent
        data = read_json_keys(self.path, ("images",), LAYOUT)
        if not self.image_root.is_dir():
            raise FileNotFoundError(
                f"{self.image_root}: no such image folder for {self.path.name} "
                f"(give it with ?image_root=DIR)"
            )
        self.items: list[tuple[str, tuple[str, ...]]] = []
        splits: set[str] = set()
        for index, image in enumerate(data["images"]):
            where = f"images[{index}]"
            split = str(field(image, "split", where, self.path))
            splits.add(split)
            if split != self.split:
                continue
            name = str(field(image, "filename", where, self.path))
            relative = f"{image['filepath']}/{name}" if image.get("filepath") else name
            sentences = field(image, "sentences", where, self.path)
            captions = tuple(
                str(field(s, "raw", f"{where}.sentences[{i}]", self.path))
                for i, s in enumerate(sentences)
            )
            self.items.append((relative, captions))
        if not self.items:
            raise ValueError(
                f"{self.path}: no image in split {self.split!r} "
                f"(splits here: {', '.join(sorted(splits)) or 'none'})"
            )
        first = self.image_root / self.items[0][0]
        if not first.is_file():
            raise FileNotFoundError(
                f"{first}: image not found; {self.path.name}'s images are read from "
                f"{self.image_root}/[filepath/]filename (give the folder with ?image_root=DIR)"
            )

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> RawRecord:
        relative, captions = self.items[index]
        return RawRecord(relative, self.image_root / relative, captions, {"split": self.split})

    def captions(self):
        for _, captions in self.items:
            yield from captions
