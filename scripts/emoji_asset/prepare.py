"""Regenerate the shipped emoji set (``data/assets/emoji.parquet``) from Debian's packages.

The repository ships the result, so nobody needs this to train; it documents exactly how the
asset was made and rebuilds it for a newer Unicode or font::

    apt-get install fonts-noto-color-emoji unicode-data unicode-cldr-core
    python scripts/prepare_builtin.py emoji            # → src/clipforge/data/assets/emoji.parquet

Rendering: Noto Color Emoji is a CBDT bitmap font whose only strike is 109 px (a 136 × 128 cell),
so it is drawn at that size with colour on a transparent 136 × 136 canvas, centred, then resized
(premultiplied Lanczos) to ``size``. Sequences (flags, ZWJ families, skin tones) need Pillow's
Raqm layout to become one glyph; a sequence the font still draws as several glyphs is left out.

Encoding (measured on all 3,655 emoji at 72 px, size of the image column):

    PNG, lossless RGBA              21.4 MiB
    WebP lossless RGBA              15.5 MiB
    WebP lossy q80 (alpha q90)       8.3 MiB   PSNR 33.5 dB on white
    256-colour palette, PNG          8.4 MiB   PSNR 39.4 dB
    256-colour palette, WebP lossless  6.2 MiB   PSNR 39.4 dB   ← used

A 256-colour palette with alpha is visually lossless for emoji art and stays within a few MiB.
"""

from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image, ImageDraw, ImageFont, features

from clipforge.data.builtin.emoji import ASSET_FORMAT, EMOJI_ASSET
from clipforge.data.builtin.splits import choose_val_units

from .emoji_captions import base_name, class_name, emoji_captions
from .unicode_emoji import (
    DEBIAN_CLDR_ANNOTATIONS,
    DEBIAN_EMOJI_FONT,
    DEBIAN_EMOJI_TEST,
    DEBIAN_PACKAGES,
    EmojiEntry,
    read_emoji,
)

STRIKE_SIZE = 109  # the one size CBDT Noto Color Emoji renders at
CELL = 136  # glyph advance at that size; the canvas is CELL × CELL
PALETTE_COLOURS = 256


def debian_emoji_files() -> list[Path]:
    return [DEBIAN_EMOJI_TEST, *DEBIAN_CLDR_ANNOTATIONS, DEBIAN_EMOJI_FONT]


def prepare_emoji(
    out_path: str | Path = EMOJI_ASSET, size: int = 72, val_fraction: float = 0.15
) -> Path:
    """Render, caption and split every fully-qualified emoji into one Parquet file."""
    table = emoji_table(size, val_fraction)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(
        table,
        out_path,
        compression="zstd",
        use_dictionary=["group", "subgroup", "split", "emoji_version"],
    )
    return out_path


def emoji_table(size: int = 72, val_fraction: float = 0.15, images: bool = True) -> pa.Table:
    """The rows of the asset; ``images=False`` skips drawing (for checks: ~1 s instead of ~15)."""
    missing = [str(path) for path in debian_emoji_files() if not path.exists()]
    if missing:
        raise FileNotFoundError(
            f"emoji sources not found: {', '.join(missing)}; install them "
            f"with: apt-get install {DEBIAN_PACKAGES}"
        )
    font = emoji_font()
    listed = read_emoji()
    entries = [entry for entry in listed if font.getlength(entry.text) <= CELL * 1.2]
    val_units = choose_val_units(((base_name(e.name), e.subgroup) for e in entries), val_fraction)
    subgroups = list(dict.fromkeys(entry.subgroup for entry in entries))
    rows = []
    for entry in entries:
        base = base_name(entry.name)
        rows.append(
            dict(
                key=entry.key,
                emoji=entry.text,
                name=entry.name,
                group=entry.group,
                subgroup=entry.subgroup,
                keywords=list(entry.keywords),
                captions=list(
                    emoji_captions(entry.name, entry.keywords, entry.group, entry.subgroup)
                ),
                base=base,
                split="val" if base in val_units else "train",
                emoji_version=entry.version,
                image=encode(render(entry, font, size)) if images else b"",
            )
        )
    drawn = {entry.name for entry in entries}
    return pa.Table.from_pylist(rows).replace_schema_metadata(
        {
            "clipforge.format": ASSET_FORMAT,
            "clipforge.subgroups": json.dumps(subgroups),
            "clipforge.class_names": json.dumps([class_name(s) for s in subgroups]),
            "clipforge.image": json.dumps(
                {
                    "size": size,
                    "format": "WEBP",
                    "lossless": True,
                    "palette_colours": PALETTE_COLOURS,
                }
            ),
            "clipforge.sources": json.dumps(_debian_versions()),
            "clipforge.not_drawable": json.dumps([e.name for e in listed if e.name not in drawn]),
        }
    )


def emoji_font() -> ImageFont.FreeTypeFont:
    if not features.check("raqm"):
        raise RuntimeError(
            "Pillow was built without Raqm text layout, which emoji sequences "
            "(flags, skin tones, families) need; install libraqm, then Pillow"
        )
    return ImageFont.truetype(
        str(DEBIAN_EMOJI_FONT), STRIKE_SIZE, layout_engine=ImageFont.Layout.RAQM
    )


def render(entry: EmojiEntry, font: ImageFont.FreeTypeFont, size: int) -> Image.Image:
    """The emoji on a transparent square, ``size`` × ``size`` RGBA."""
    canvas = Image.new("RGBA", (CELL, CELL), (0, 0, 0, 0))
    ImageDraw.Draw(canvas).text(
        (CELL / 2, CELL / 2), entry.text, font=font, embedded_color=True, anchor="mm"
    )
    return canvas.resize((size, size), Image.Resampling.LANCZOS)


def encode(image: Image.Image) -> bytes:
    """256-colour palette (alpha kept), stored as lossless WebP; see the module docstring."""
    quantized = image.quantize(PALETTE_COLOURS, method=Image.Quantize.FASTOCTREE)
    buffer = io.BytesIO()
    quantized.convert("RGBA").save(buffer, "WEBP", lossless=True, quality=100, method=4)
    return buffer.getvalue()


def _debian_versions() -> dict[str, str]:
    """Installed versions of the source packages, for provenance (empty off Debian)."""
    try:
        result = subprocess.run(
            ["dpkg-query", "-W", "-f", "${Package} ${Version}\\n", *DEBIAN_PACKAGES.split()],
            capture_output=True,
            text=True,
            check=False,
        )
    except FileNotFoundError:
        return {}
    return dict(line.split(" ", 1) for line in result.stdout.splitlines() if " " in line)
