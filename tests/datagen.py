"""Tiny on-disk data sets for tests: folders, tables and WebDataset shards, with bad records.

Every writer returns what a correct reader must find, so tests compare against it. Images are
real PNG/JPEG files made with Pillow (a solid colour per record, so a decoded pixel tells which
record it came from).
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pa_parquet
from PIL import Image

PALETTE = [
    (200, 30, 30),
    (30, 160, 30),
    (30, 60, 210),
    (220, 200, 20),
    (150, 40, 160),
    (20, 170, 170),
    (240, 130, 20),
    (90, 90, 90),
]


def color_of(index: int) -> tuple[int, int, int]:
    return PALETTE[index % len(PALETTE)]


def image_bytes(index: int, fmt: str = "PNG", size: int = 8) -> bytes:
    """An encoded solid-colour image; ``fmt`` is a Pillow format name (PNG, JPEG, WEBP, …)."""
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), color_of(index)).save(buffer, format=fmt)
    return buffer.getvalue()


def truncated_jpeg(index: int = 0) -> bytes:
    """A JPEG cut in half: it has a valid header, so only a full decode notices."""
    data = image_bytes(index, "JPEG", size=64)
    return data[: len(data) // 2]


RANDOM_BYTES = bytes(range(256)) * 4  # not any image format


def write_folder(
    root: Path,
    count: int = 4,
    missing_caption: tuple[int, ...] = (),
    corrupt: tuple[int, ...] = (),
    with_json: bool = True,
) -> dict[str, str]:
    """img2dataset ``files`` layout under ``root``: ``00000/000000003.png`` + ``.txt`` + ``.json``.

    Odd records are JPEG, even PNG; records are split over two sub-folders. Returns key →
    caption ("" for records written without a caption file).
    """
    expected = {}
    for index in range(count):
        folder = root / f"{index % 2:05d}"
        folder.mkdir(parents=True, exist_ok=True)
        stem = f"{index:09d}"
        fmt, suffix = ("JPEG", ".jpg") if index % 2 else ("PNG", ".png")
        data = truncated_jpeg(index) if index in corrupt else image_bytes(index, fmt)
        (folder / (stem + suffix)).write_bytes(data)
        caption = "" if index in missing_caption else f"picture number {index}"
        if caption:
            (folder / (stem + ".txt")).write_text(caption + "\n")
        if with_json:
            (folder / (stem + ".json")).write_text(json.dumps({"index": index, "width": 8}))
        expected[f"{folder.name}/{stem}"] = caption
    return expected


def write_table(path: Path, columns: dict[str, list], separator: str | None = None) -> Path:
    """Write ``columns`` as Parquet (by suffix ``.parquet``) or delimited text (CSV/TSV)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.table(columns)
    if path.suffix == ".parquet":
        pa_parquet.write_table(table, path)
        return path
    delimiter = separator or ("\t" if path.suffix == ".tsv" else ",")
    if delimiter == "\t":  # TSV convention: no quoting at all (pyarrow refuses)
        rows = zip(*columns.values())
        lines = ["\t".join(columns), *("\t".join(map(str, row)) for row in rows)]
        path.write_text("\n".join(lines) + "\n")
        return path
    pa_csv.write_csv(table, path, pa_csv.WriteOptions(delimiter=delimiter))
    return path


def write_image_files(folder: Path, count: int, fmt: str = "PNG") -> list[str]:
    """``count`` images ``img0.png …`` in ``folder``; returns their file names."""
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for index in range(count):
        name = f"img{index}.{'jpg' if fmt == 'JPEG' else fmt.lower()}"
        (folder / name).write_bytes(image_bytes(index, fmt))
        names.append(name)
    return names


def write_shard(path: Path, samples: list[dict[str, bytes | str]]) -> None:
    """One tar shard; each sample is ``{"__key__": k, "jpg": bytes, "txt": str, …}``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w") as tar:
        for sample in samples:
            key = sample["__key__"]
            for ext, value in sample.items():
                if ext == "__key__":
                    continue
                data = value.encode() if isinstance(value, str) else value
                info = tarfile.TarInfo(f"{key}.{ext}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))


def write_shards(
    folder: Path, shards: int = 4, per_shard: int = 3, drop: dict[str, str] | None = None
) -> dict[str, str]:
    """img2dataset-style shards ``folder/00000.tar …``; keys ``SSSSSIIII`` as img2dataset.

    ``drop`` maps a key to the member ("jpg" or "txt") to leave out of that sample. Returns
    key → caption for every sample written.
    """
    drop = drop or {}
    expected = {}
    for shard in range(shards):
        samples = []
        for item in range(per_shard):
            index = shard * per_shard + item
            key = f"{shard:05d}{item:04d}"
            caption = f"caption of sample {index}"
            sample = {
                "__key__": key,
                "jpg": image_bytes(index, "JPEG"),
                "txt": caption,
                "json": json.dumps({"index": index}),
            }
            sample.pop(drop.get(key, ""), None)
            samples.append(sample)
            expected[key] = caption
        write_shard(folder / f"{shard:05d}.tar", samples)
    return expected


def truncate(path: Path, fraction: float = 0.5) -> None:
    """Cut a file to ``fraction`` of its size (a download that died half way)."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])


def truncate_shard_inside(path: Path, member: str) -> None:
    """Cut a tar shard in the middle of ``member``'s data (a cut on a member boundary would
    read as a shorter but valid tar)."""
    with tarfile.open(path) as tar:
        info = tar.getmember(member)
    data = path.read_bytes()
    path.write_bytes(data[: info.offset_data + info.size // 2])
