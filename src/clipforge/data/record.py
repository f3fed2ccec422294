"""One image-text pair as a data source yields it, before decoding.

Sources stay cheap: they list records and hand over encoded bytes or a path. Decoding happens in
data-loader workers (:func:`decode_image`), where a bad record raises :class:`BadRecordError`
naming it; the loader skips and counts such records (or stops on the first one with ``strict``).

Decompression bombs: an image whose header declares more than Pillow's limit
(``PIL.Image.MAX_IMAGE_PIXELS``, 89.5 MP unless the application changed it) is a bad record,
refused before any pixel is decoded. Pillow itself only warns between 1× and 2× its limit, and a
268–536 MP image then costs ~2 GB and seconds to decode. This module reads the limit per image
and never changes Pillow's globals.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

ImageRef = bytes | str | Path | Image.Image
# metadata key a source sets on a record it already knows is bad (e.g. an undecodable CSV row):
# decode_image and clean_captions then raise BadRecordError with its value as the reason
RECORD_ERROR = "record_error"


@dataclass(frozen=True)
class RawRecord:
    """One image and every caption it has.

    Several captions per image (COCO's five, a CLIP_benchmark retrieval shard's ``\\n``-joined
    ``.txt``, a ``.json`` list, a Parquet ``list<string>``, extra caption columns) are all kept
    in ``captions``, in the source's order, one string each: sources split them, nothing
    downstream does. Who reads them how:

    - training uses one per sample and step: :class:`~clipforge.data.loader.SampleMaker` draws
      it with ``sample_rng(seed, epoch, index)`` (index: the row, or a stream reader's slot and
      position; ``caption_choice="first"`` takes the first), so the pick is the same for any
      worker count and after a resume, and changes from epoch to epoch; objectives that want
      more (sub-captions, ALIP's raw + synthetic) read the whole tuple via :mod:`.extras`;
    - evaluation uses them all (:mod:`clipforge.evaluation.retrieval`): each caption is a
      text → image query of its own, and an image → text query is right on any of its captions;
    - ``()`` is allowed (a classification record has a label, no caption); training counts it as
      a bad record (:func:`clean_captions`).
    """

    key: str  # stable id: relative path, row number or WebDataset __key__
    image: ImageRef  # encoded bytes, a file path, or a decoded PIL image
    captions: tuple[str, ...]  # every caption of this image, in order; may be empty
    metadata: dict[str, Any] = field(default_factory=dict)


class BadRecordError(ValueError):
    """A record that cannot be used: unreadable image, missing file, empty caption."""

    def __init__(self, key: str, reason: str):
        super().__init__(f"bad record {key!r}: {reason}")
        self.key = key
        self.reason = reason


def pixel_limit(max_pixels: int | None = None) -> int | None:
    """The decompression-bomb limit in pixels: ``max_pixels``, else Pillow's current one."""
    return Image.MAX_IMAGE_PIXELS if max_pixels is None else max_pixels


def open_image(ref: bytes | str | Path, key: str, max_pixels: int | None = None) -> Image.Image:
    """Open (not decode) an encoded image, refusing one whose header declares more than
    :func:`pixel_limit` pixels; raises :class:`BadRecordError` naming ``key``."""
    source = (
        io.BytesIO(bytes(ref)) if isinstance(ref, (bytes, bytearray, memoryview)) else Path(ref)
    )
    try:
        with warnings.catch_warnings():  # we raise for the 1×–2× range Pillow only warns on
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(source)
    except FileNotFoundError:  # only a path can be missing: bytes are read from memory
        raise BadRecordError(key, f"image file not found: {source}") from None
    except (
        UnidentifiedImageError,
        OSError,
        SyntaxError,
        ValueError,
        Image.DecompressionBombError,
    ) as error:
        raise BadRecordError(key, f"cannot decode image: {error}") from None
    check_pixels(image, key, max_pixels)
    return image


def check_pixels(image: Image.Image, key: str, max_pixels: int | None = None) -> None:
    """Raise :class:`BadRecordError` when ``image`` (opened, header read) is over the limit."""
    limit = pixel_limit(max_pixels)
    width, height = image.size
    if limit is not None and width * height > limit:
        raise BadRecordError(
            key,
            f"image is {width} × {height} = {width * height:,} pixels, over "
            f"the decompression-bomb limit of {limit:,} "
            f"(PIL.Image.MAX_IMAGE_PIXELS)",
        )


def decode_image(
    record: RawRecord,
    background: tuple[int, int, int] = (255, 255, 255),
    max_pixels: int | None = None,
) -> Image.Image:
    """Decode the record's image to RGB, compositing transparency onto ``background``.

    An image over ``max_pixels`` (default: Pillow's ``MAX_IMAGE_PIXELS``) is refused from its
    header, before decoding. A PIL image already opened is trusted: whoever opened it checked it
    (:func:`open_image`; the loader's JPEG draft shrinks the size it reports)."""
    if RECORD_ERROR in record.metadata:
        raise BadRecordError(record.key, str(record.metadata[RECORD_ERROR]))
    ref = record.image
    if isinstance(ref, Image.Image):
        image = ref
    else:
        image = open_image(ref, record.key, max_pixels)
    try:
        image.load()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise BadRecordError(record.key, f"cannot decode image: {error}") from None
    return to_rgb(image, background)


def to_rgb(image: Image.Image, background: tuple[int, int, int] = (255, 255, 255)) -> Image.Image:
    if image.mode == "RGB":
        return image
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        canvas = Image.new("RGB", rgba.size, background)
        canvas.paste(rgba, mask=rgba.getchannel("A"))
        return canvas
    return image.convert("RGB")


def clean_captions(record: RawRecord) -> list[str]:
    """Non-empty, whitespace-normalised captions; raises if none is left."""
    if RECORD_ERROR in record.metadata:
        raise BadRecordError(record.key, str(record.metadata[RECORD_ERROR]))
    captions = [" ".join(c.split()) for c in record.captions if c and c.strip()]
    if not captions:
        raise BadRecordError(record.key, "empty caption")
    return captions
