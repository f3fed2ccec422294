"""The on-disk layout of an embedding directory, as clip-retrieval writes it.

::

    DIR/img_emb/img_emb_0000.npy         [n, D] image embeddings (float32 or float16)
    DIR/text_emb/text_emb_0000.npy       [n, D] caption embeddings
    DIR/sparse_img/sparse_img_0000.npz   [n, V] lexical (LexLIP) vectors, scipy CSR, if any
    DIR/sparse_text/sparse_text_0000.npz
    DIR/metadata/metadata_0000.parquet   id, key, caption, image_path, thumbnail: a row per vector
    DIR/skipped/skipped_0000.jsonl       bad records of the shard, merged into DIR/skipped.jsonl
    DIR/images/…                         thumbnails of records that had no image file (bytes)
    DIR/info.json                        model, dims, count, shard list

Shard ``i`` holds the good records among source records ``[i·S, (i+1)·S)``, in source order, so a
shard's content never depends on what ran before. Every file is written to a temporary name and
renamed into place; a shard counts as done when all of its files exist, so a run killed at any
moment is resumed by recomputing only the shards that are not done.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..common.files import atomic_write, atomic_write_text
from .deps import require

INFO_FILE, CONFIG_FILE, SKIPPED_FILE = "info.json", "embed_config.json", "skipped.jsonl"
IMAGES_DIR = "images"
# kind → (folder, file prefix, suffix)
KINDS = {
    "image": ("img_emb", "img_emb", ".npy"),
    "text": ("text_emb", "text_emb", ".npy"),
    "sparse_image": ("sparse_img", "sparse_img", ".npz"),
    "sparse_text": ("sparse_text", "sparse_text", ".npz"),
    "metadata": ("metadata", "metadata", ".parquet"),
    "skipped": ("skipped", "skipped", ".jsonl"),
}
METADATA_SCHEMA = pa.schema(
    [
        ("id", pa.int64()),
        ("key", pa.string()),
        ("caption", pa.string()),
        ("image_path", pa.string()),
        ("thumbnail", pa.string()),
    ]
)


def shard_path(directory: Path, kind: str, index: int) -> Path:
    folder, prefix, suffix = KINDS[kind]
    return Path(directory) / folder / f"{prefix}_{index:04d}{suffix}"


@dataclass
class ShardData:
    """One shard's rows; arrays are row-aligned with the metadata lists."""

    ids: list[int]  # record position in the source
    keys: list[str]
    captions: list[str]
    image_paths: list[str]  # the image file if known, else the record key
    thumbnails: list[str]  # path under DIR/images/ ("" if none exported)
    image: np.ndarray | None = None  # [n, D]
    text: np.ndarray | None = None  # [n, D]
    sparse_image: object | None = None  # scipy.sparse.csr_matrix [n, V]
    sparse_text: object | None = None
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (key, reason)

    def kinds(self) -> list[str]:
        present = [
            k
            for k in ("image", "text", "sparse_image", "sparse_text")
            if getattr(self, k) is not None
        ]
        return [*present, "skipped", "metadata"]


def write_shard(directory: Path, index: int, shard: ShardData) -> None:
    """Write every file of shard ``index``; metadata last (a shard is done once all exist)."""
    directory = Path(directory)
    for kind in ("image", "text"):
        array = getattr(shard, kind)
        if array is not None:

            def save(tmp, array=array):
                with open(tmp, "wb") as handle:
                    np.save(handle, np.ascontiguousarray(array))

            atomic_write(shard_path(directory, kind, index), save)
    for kind in ("sparse_image", "sparse_text"):
        matrix = getattr(shard, kind)
        if matrix is not None:
            sparse = require("scipy.sparse")

            def save_sparse(tmp, matrix=matrix, sparse=sparse):
                with open(tmp, "wb") as handle:
                    sparse.save_npz(handle, sparse.csr_matrix(matrix))

            atomic_write(shard_path(directory, kind, index), save_sparse)
    lines = "".join(
        json.dumps({"key": key, "reason": reason}) + "\n" for key, reason in shard.skipped
    )
    atomic_write_text(shard_path(directory, "skipped", index), lines)
    table = pa.table(
        {
            "id": pa.array(shard.ids, pa.int64()),
            "key": shard.keys,
            "caption": shard.captions,
            "image_path": shard.image_paths,
            "thumbnail": shard.thumbnails,
        },
        schema=METADATA_SCHEMA,
    )
    atomic_write(shard_path(directory, "metadata", index), lambda tmp: pq.write_table(table, tmp))


def shard_done(directory: Path, index: int, kinds: list[str]) -> bool:
    return all(shard_path(directory, kind, index).is_file() for kind in kinds)


def shard_indices(directory: Path) -> list[int]:
    """Indices of the shards whose metadata exists, ascending."""
    folder = Path(directory) / KINDS["metadata"][0]
    return sorted(int(p.stem.rsplit("_", 1)[1]) for p in folder.glob("metadata_*.parquet"))


def merge_skipped(directory: Path, indices: list[int]) -> int:
    """Concatenate the shards' skip lists into ``DIR/skipped.jsonl``; returns the count."""
    lines: list[str] = []
    for index in indices:
        path = shard_path(directory, "skipped", index)
        if path.exists():
            lines.extend(line for line in path.read_text().splitlines() if line.strip())
    atomic_write_text(Path(directory) / SKIPPED_FILE, "".join(line + "\n" for line in lines))
    return len(lines)


class EmbeddingDir:
    """Read side of an embedding directory: concatenated shards, in shard order."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        info_path = self.directory / INFO_FILE
        if not info_path.is_file():
            raise FileNotFoundError(
                f"{self.directory}: not an embedding directory (no {INFO_FILE}"
                "; run `clipforge embed` first)"
            )
        self.info = json.loads(info_path.read_text())
        self.shards: list[int] = list(self.info["shards"])

    def has(self, kind: str) -> bool:
        return bool(self.shards) and all(
            shard_path(self.directory, kind, i).is_file() for i in self.shards
        )

    def dense(self, kind: str) -> np.ndarray:
        """All rows of ``kind`` ("image" | "text") as one float32 array [N, D]."""
        if not self.has(kind):
            raise FileNotFoundError(
                f"{self.directory}: no {kind} embeddings "
                f"({KINDS[kind][0]}/ is missing or incomplete)"
            )
        parts = [np.load(shard_path(self.directory, kind, i), mmap_mode="r") for i in self.shards]
        dim = int(self.info["dims"][kind])
        parts = [p for p in parts if p.shape[0]] or [np.zeros((0, dim), np.float32)]
        return np.concatenate(parts).astype(np.float32, copy=False)

    def sparse(self, kind: str):
        sparse = require("scipy.sparse")
        parts = [sparse.load_npz(shard_path(self.directory, kind, i)) for i in self.shards]
        width = int(self.info["dims"][kind])
        parts = [p for p in parts if p.shape[0]] or [sparse.csr_matrix((0, width))]
        return sparse.vstack(parts, format="csr").astype(np.float32)

    def metadata(self) -> pa.Table:
        tables = [pq.read_table(shard_path(self.directory, "metadata", i)) for i in self.shards]
        return pa.concat_tables(tables) if tables else METADATA_SCHEMA.empty_table()
