"""``coco:``: MS-COCO captions in COCO's own layout, read in place (retrieval evaluation).

::

    ROOT/
      annotations/captions_val2017.json   {"images": [{"id", "file_name", …}],
                                           "annotations": [{"image_id", "caption", …}]}
      val2017/000000000139.jpg …

``coco:ROOT`` reads ``ROOT/annotations/captions_{split}2017.json`` with ``ROOT/{split}2017/``
(``?split=`` default ``val``); ``coco:FILE.json`` reads that file, its images in the folder
named by the file (``…/annotations/captions_val2014.json`` → ``…/val2014/``), else beside it;
``?image_root=DIR`` names the image folder outright. One record per image, in the JSON's image
order, with **all** its captions (COCO has about five, in annotation order), so retrieval counts
each caption as a query, as CLIP_benchmark's ``mscoco_captions`` does. An image no annotation
names has nothing to retrieve: it is left out and counted in ``uncaptioned``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ...common.files import read_json
from ..record import RawRecord
from .base import MapSource, SourceOptions

DEFAULT_SPLIT = "val"
LAYOUT = "COCO captions JSON: images[].id/file_name, annotations[].image_id/caption"


def read_json_keys(path: Path, keys: tuple[str, ...], layout: str) -> dict[str, Any]:
    """The JSON object in ``path``; a missing file, invalid JSON or a missing top-level key is a
    one-line error naming it and the expected ``layout``."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such annotation file ({layout})")
    data = read_json(path)
    for key in keys:
        if not isinstance(data, dict) or not isinstance(data.get(key), list):
            raise ValueError(f"{path}: no list under key {key!r} (expected {layout})")
    return data


def field(item: Any, key: str, where: str, path: Path) -> Any:
    """``item[key]``, or a one-line error naming the entry and the key."""
    if not isinstance(item, dict) or key not in item:
        raise ValueError(f"{path}: {where} has no key {key!r}")
    return item[key]


def image_folder(path: Path) -> Path:
    """Where COCO keeps the images of an annotation file: ``captions_val2017.json`` in
    ``annotations/`` → ``../val2017``; any other name → the file's folder."""
    match = re.fullmatch(r"captions_(\w+)\.json", path.name)
    if match and path.parent.name == "annotations":
        return path.parent.parent / match.group(1)
    return path.parent


class COCOCaptionsSource(MapSource):
    name = "coco"

    def __init__(self, location: str | Path, options: SourceOptions | None = None):
        options = options or SourceOptions()
        given = Path(location).expanduser()
        split = options.split or DEFAULT_SPLIT
        if given.is_dir():
            self.path = given / "annotations" / f"captions_{split}2017.json"
            default_root = given / f"{split}2017"
        else:
            self.path, default_root = given, image_folder(given)
        self.image_root = Path(options.image_root) if options.image_root else default_root
        data = read_json_keys(self.path, ("images", "annotations"), LAYOUT)
        if not self.image_root.is_dir():
            raise FileNotFoundError(
                f"{self.image_root}: no such image folder for {self.path.name} "
                f"(give it with ?image_root=DIR)"
            )
        captions: dict[Any, list[str]] = {}
        for index, note in enumerate(data["annotations"]):
            where = f"annotations[{index}]"
            image_id = field(note, "image_id", where, self.path)
            captions.setdefault(image_id, []).append(str(field(note, "caption", where, self.path)))
        self.items: list[tuple[Any, str, tuple[str, ...]]] = []
        self.uncaptioned = 0
        for index, image in enumerate(data["images"]):
            image_id = field(image, "id", f"images[{index}]", self.path)
            file_name = str(field(image, "file_name", f"images[{index}]", self.path))
            if image_id in captions:
                self.items.append((image_id, file_name, tuple(captions[image_id])))
            else:
                self.uncaptioned += 1
        if not self.items:
            raise ValueError(f"{self.path}: no image has a caption")

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> RawRecord:
        image_id, file_name, captions = self.items[index]
        return RawRecord(
            str(image_id), self.image_root / file_name, captions, {"image_id": image_id}
        )

    def captions(self):
        for _, _, captions in self.items:
            yield from captions
