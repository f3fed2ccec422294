"""The reader side of ``embed``: a source cut into fixed shards of records, each row tagged.

Shard ``i`` is source records ``[i·S, (i+1)·S)`` in source order — for map sources by index, for
streams by counting records as they come — so shard boundaries never move between runs.

Each record's key is replaced by a tag (JSON of id, key, image path, thumbnail) before the data
loader sees it; the loader carries keys through decoding, collation and skipping untouched, so
the writer gets each row's metadata back without a second read of the source. Records whose image
is bytes or a decoded picture (built-in sets, parquet with image bytes) get a thumbnail written
under ``DIR/images/`` in the loader worker, so ``serve`` has a file to show.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..common.files import atomic_write_bytes
from ..data.record import BadRecordError, RawRecord, decode_image
from ..data.sources.base import MapSource, StreamSource

THUMBNAIL_SIZE = 256


@dataclass(frozen=True)
class RowTag:
    id: int  # record position in the source
    key: str
    image_path: str  # the image file if the record names one, else the key
    thumbnail: str  # relative to the embedding directory, "" if none

    def encode(self) -> str:
        return json.dumps([self.id, self.key, self.image_path, self.thumbnail])

    @classmethod
    def decode(cls, text: str) -> RowTag:
        return cls(*json.loads(text))


class ListSource(MapSource):
    """A list of records as a map source (a shard of a stream)."""

    def __init__(self, records: list[RawRecord]):
        self.records = records

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> RawRecord:
        return self.records[index]


class TaggedShard(MapSource):
    """``length`` records of ``records`` from ``offset``, keys replaced by :class:`RowTag`."""

    def __init__(self, shard: ShardSlice, out_dir: Path | None, export_thumbnails: bool):
        self.shard = shard
        self.thumbnail_dir = out_dir if export_thumbnails else None  # None: no thumbnails

    def __len__(self) -> int:
        return self.shard.length

    def __getitem__(self, index: int) -> RawRecord:
        record = self.shard.records[self.shard.offset + index]
        record_id = self.shard.first_id + index
        image, thumbnail = record.image, ""
        if isinstance(image, (str, Path)):
            image_path = str(image)
        else:
            image_path = record.key
            if self.thumbnail_dir is not None:
                image, thumbnail = self._thumbnail(record, record_id, self.thumbnail_dir)
        tag = RowTag(record_id, record.key, image_path, thumbnail)
        return RawRecord(tag.encode(), image, record.captions, record.metadata)

    def _thumbnail(self, record: RawRecord, record_id: int, out_dir: Path):
        """Decode once, write a thumbnail, hand the decoded image on; bad images pass through."""
        try:
            picture = decode_image(record)
        except BadRecordError:
            return record.image, ""
        relative = f"images/{self.shard.index:04d}/{record_id:09d}.png"
        path = out_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        small = picture.copy()
        small.thumbnail((THUMBNAIL_SIZE, THUMBNAIL_SIZE))
        buffer = io.BytesIO()
        small.save(buffer, format="PNG", optimize=True)
        atomic_write_bytes(path, buffer.getvalue())
        return picture, relative


@dataclass
class ShardSlice:
    index: int  # shard number
    records: MapSource  # the whole map source, or the shard's records of a stream
    offset: int  # position of the shard's first record in ``records``
    first_id: int  # position of the shard's first record in the source
    length: int


def iter_shards(
    source: MapSource | StreamSource, shard_size: int, skip: set[int] | None = None
) -> Iterator[ShardSlice]:
    """Shards in order. A stream is read past the shards in ``skip`` without keeping them."""
    skip = skip or set()
    if isinstance(source, MapSource):
        total = len(source)
        for index, start in enumerate(range(0, total, shard_size)):
            yield ShardSlice(index, source, start, start, min(shard_size, total - start))
        return
    buffer: list[RawRecord] = []
    index = count = 0
    for record in source:
        count += 1
        if index not in skip:
            buffer.append(record)
        if count == shard_size:
            yield ShardSlice(index, ListSource(buffer), 0, index * shard_size, count)
            buffer, index, count = [], index + 1, 0
    if count:
        yield ShardSlice(index, ListSource(buffer), 0, index * shard_size, count)
