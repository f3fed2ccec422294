"""Write any data source in CLIP_benchmark's ``wds_*`` layout (``clipforge data export-wds``).

The counterpart of ``clip_benchmark_export_wds``: a split folder of ``webdataset.ShardWriter``
shards (``SPLIT/0.tar …``, at most ``max_count`` samples each, keys ``s0000000 …``) with
``nshards.txt``, and beside it ``classnames.txt`` and ``zeroshot_classification_templates.txt``
(classification) or ``dataset_type.txt`` = ``retrieval``. A classification sample is the image
and ``.cls`` (its label); a retrieval sample the image and ``.txt``, its captions joined by
``\\n`` (a newline inside a caption written as the two characters ``\\n``, as CLIP_benchmark
does). So a clipforge data set (``builtin:emoji?split=val``, an image folder, a CSV) can be
evaluated by CLIP_benchmark itself, and read back by :mod:`.sources.clip_benchmark`.

Images are copied as encoded when they are PNG, JPEG or WebP without transparency; others are
decoded, flattened onto white (as clipforge's loader does, so both tools see the same pixels)
and written as lossless WebP, CLIP_benchmark's default. Records that cannot be used (bad image,
no label, no caption) are left out and counted.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import webdataset as wds
from PIL import Image

from .record import BadRecordError, RawRecord, clean_captions, decode_image, open_image
from .sources.base import MapSource
from .sources.clip_benchmark import (
    CLASSNAMES_FILE,
    NSHARDS_FILE,
    TEMPLATES_FILE,
    TYPE_FILE,
)

COPIED_FORMATS = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp"}


@dataclass
class ExportSummary:
    samples: int
    shards: int
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (key, reason)


def image_member(record: RawRecord) -> tuple[str, bytes]:
    """(extension, bytes) for the record's image; raises :class:`BadRecordError`."""
    ref = record.image
    if not isinstance(ref, Image.Image):
        opened = open_image(ref, record.key)
        extension = COPIED_FORMATS.get(opened.format or "")
        has_alpha = opened.mode in ("RGBA", "LA", "PA") or "transparency" in opened.info
        if extension and not has_alpha:
            data = ref if isinstance(ref, bytes) else Path(ref).read_bytes()
            return extension, bytes(data)
    buffer = io.BytesIO()
    decode_image(record).save(buffer, "WEBP", lossless=True)
    return "webp", buffer.getvalue()


def export_clip_benchmark(
    source: MapSource,
    out: str | Path,
    split: str = "test",
    retrieval: bool = False,
    templates: Sequence[str] = (),
    max_count: int = 10_000,
) -> ExportSummary:
    """Write ``source`` to ``out`` (see the module docstring); ``out/split`` must not exist."""
    out = Path(out)
    split_dir = out / split
    if split_dir.exists():
        raise FileExistsError(f"{split_dir}: already exists; not overwriting an exported split")
    class_names = None if retrieval else source.class_names()
    if not retrieval and not class_names:
        raise ValueError(
            f"{getattr(source, 'name', 'data')}: names no classes; export it with --retrieval "
            f"(captions) or give labelled data"
        )
    if max_count < 1:
        raise ValueError(f"max count per shard must be ≥ 1, got {max_count}")
    split_dir.mkdir(parents=True)
    summary = ExportSummary(0, 0)
    sink = wds.ShardWriter(str(split_dir / "%d.tar"), maxcount=max_count, verbose=0)
    try:
        for index in range(len(source)):
            record = source[index]
            try:
                extension, image = image_member(record)
                if retrieval:
                    texts = [c.replace("\n", r"\n") for c in clean_captions(record)]
                    payload: dict = {"txt": "\n".join(texts)}
                elif record.metadata.get("label") is None:
                    raise BadRecordError(record.key, "no label")
                else:
                    payload = {"cls": int(record.metadata["label"])}
            except BadRecordError as error:
                summary.skipped.append((record.key, error.reason))
                continue
            sink.write({"__key__": f"s{summary.samples:07d}", extension: image, **payload})
            summary.samples += 1
        summary.shards = sink.shard  # close() deletes it
    finally:
        sink.close()
    (split_dir / NSHARDS_FILE).write_text(f"{summary.shards}\n")
    if retrieval:
        (out / TYPE_FILE).write_text("retrieval\n")
    else:
        assert class_names is not None
        (out / CLASSNAMES_FILE).write_text("".join(f"{name}\n" for name in class_names))
        if templates:
            (out / TEMPLATES_FILE).write_text("".join(f"{t}\n" for t in templates))
    return summary
