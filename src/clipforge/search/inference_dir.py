"""Read a ``clip-retrieval inference`` output folder as an embedding directory.

clip-retrieval (``clip_inference/writer.py``) writes, per output partition ``N``::

    DIR/img_emb/img_emb_N.npy            [n, D] image embeddings (usually float16)
    DIR/text_emb/text_emb_N.npy          [n, D] caption embeddings
    DIR/metadata/metadata_N.parquet      image_path, caption, and with --enable_metadata the
                                         source's own fields (url, key, width, …): row r = vector r

``N`` is zero-padded to the width of the partition count, so within one run lexical order is
numeric order; folders merged from several runs (``img_emb_2`` beside ``img_emb_10``) are not.
Here every file is paired with the others **by the integer value of N**, and partitions are
concatenated in ascending N, so index id ``i`` is always the metadata row the vector came from
whatever the names' padding or the order the files were written in. A partition that lacks one
of its files, or whose vector and metadata row counts differ, is an error naming the file.

:class:`InferenceDir` has the read side of :class:`.shards.EmbeddingDir` (``info``, ``has``,
``dense``, ``metadata``), so ``clipforge index`` takes either; :func:`open_embeddings` picks.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .shards import INFO_FILE, EmbeddingDir

# kind → (folder, file prefix, suffix), clip-retrieval's names
PARTS = {
    "image": ("img_emb", "img_emb", ".npy"),
    "text": ("text_emb", "text_emb", ".npy"),
    "metadata": ("metadata", "metadata", ".parquet"),
}
STRING_COLUMNS = ("key", "caption", "image_path", "thumbnail")  # what clipforge's index reads


def is_inference_dir(directory: Path) -> bool:
    """A clip-retrieval output: no clipforge ``info.json``, and ``img_emb/`` or ``text_emb/``."""
    directory = Path(directory)
    return not (directory / INFO_FILE).is_file() and any(
        (directory / PARTS[kind][0]).is_dir() for kind in ("image", "text")
    )


def open_embeddings(directory: str | Path) -> EmbeddingDir | InferenceDir:
    """The reader for ``directory``: clipforge's own layout, or clip-retrieval's."""
    directory = Path(directory)
    if is_inference_dir(directory):
        return InferenceDir(directory)
    if not (directory / INFO_FILE).is_file():
        raise FileNotFoundError(
            f"{directory}: not an embedding directory (no {INFO_FILE} from `clipforge embed`, "
            "no img_emb/ or text_emb/ from `clip-retrieval inference`)"
        )
    return EmbeddingDir(directory)


def partition_files(directory: Path, kind: str) -> dict[int, Path]:
    """Partition number → file of ``kind``; two names for one number (``_2``, ``_02``) refused."""
    folder, prefix, suffix = PARTS[kind]
    pattern = re.compile(rf"{re.escape(prefix)}_(\d+){re.escape(suffix)}")
    found: dict[int, Path] = {}
    for path in sorted((directory / folder).iterdir()):
        match = pattern.fullmatch(path.name)
        if not match:
            continue
        number = int(match.group(1))
        if number in found:
            raise ValueError(
                f"{path} and {found[number].name} are both partition {number}; keep one"
            )
        found[number] = path
    return found


class InferenceDir:
    """Read side of a clip-retrieval ``inference`` folder (module doc), partitions by number."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        kinds = [k for k in ("image", "text") if (self.directory / PARTS[k][0]).is_dir()]
        metadata_folder = self.directory / PARTS["metadata"][0]
        if not metadata_folder.is_dir():
            raise FileNotFoundError(
                f"{metadata_folder}: missing; a clip-retrieval inference folder needs metadata/ "
                f"(metadata_N.parquet, a row per vector) beside {PARTS[kinds[0]][0]}/"
            )
        self.files = {kind: partition_files(self.directory, kind) for kind in [*kinds, "metadata"]}
        self.shards = sorted(self.files["metadata"])
        if not self.shards:
            raise FileNotFoundError(f"{metadata_folder}: no metadata_N.parquet files in it")
        for kind in kinds:
            self._check_pairs(kind)
        self.dims = {
            kind: int(np.load(self.files[kind][self.shards[0]], mmap_mode="r").shape[1])
            for kind in kinds
        }
        counts = [pq.ParquetFile(self.files["metadata"][n]).metadata.num_rows for n in self.shards]
        self.info = {
            "model": None,  # clip-retrieval records none: `clipforge index --model` names it
            "format": "clip-retrieval",
            "dims": self.dims,
            "count": int(sum(counts)),
            "shards": self.shards,
        }

    def _check_pairs(self, kind: str) -> None:
        """Same partition numbers as metadata/, and per partition the same row count."""
        vectors, metadata = self.files[kind], self.files["metadata"]
        for number in sorted(set(vectors) ^ set(metadata)):
            present, (folder, prefix, suffix) = (
                (vectors, PARTS["metadata"]) if number in vectors else (metadata, PARTS[kind])
            )
            raise FileNotFoundError(
                f"{self.directory / folder}: no {prefix}_{number}{suffix} to pair with "
                f"{present[number].relative_to(self.directory)}"
            )
        for number in self.shards:
            rows = np.load(vectors[number], mmap_mode="r").shape[0]
            meta_rows = pq.ParquetFile(metadata[number]).metadata.num_rows
            if rows != meta_rows:
                raise ValueError(
                    f"{vectors[number]} holds {rows} vectors but {metadata[number].name} "
                    f"{meta_rows} rows; they must match row for row"
                )

    def has(self, kind: str) -> bool:
        return kind in self.dims

    def dense(self, kind: str) -> np.ndarray:
        """All rows of ``kind`` ("image" | "text") as float32 [N, D], partitions ascending."""
        if not self.has(kind):
            raise FileNotFoundError(
                f"{self.directory}: no {kind} embeddings ({PARTS[kind][0]}/ is missing)"
            )
        parts = [np.load(self.files[kind][n], mmap_mode="r") for n in self.shards]
        return np.concatenate(parts).astype(np.float32, copy=False)

    def sparse(self, kind: str):
        raise FileNotFoundError(f"{self.directory}: clip-retrieval folders hold no {kind} vectors")

    def metadata(self) -> pa.Table:
        """Every partition's rows in order, with clipforge's string columns added where missing
        (``key`` defaults to the row's id) and every other column kept (``url``, ``width``, …)."""
        tables, start = [], 0
        for number in self.shards:
            table = pq.read_table(self.files["metadata"][number])
            tables.append(_with_clipforge_columns(table, start))
            start += table.num_rows
        table = pa.concat_tables(tables, promote_options="permissive")
        return _absolute_image_paths(table)


def _with_clipforge_columns(table: pa.Table, start: int) -> pa.Table:
    for name in STRING_COLUMNS:
        if name in table.column_names:
            column = table.column(name).cast(pa.string()).fill_null("")
            table = table.set_column(table.column_names.index(name), name, column)
        elif name == "key":
            keys = [str(row) for row in range(start, start + table.num_rows)]
            table = table.append_column(name, pa.array(keys, pa.string()))
        else:
            table = table.append_column(name, pa.array([""] * table.num_rows, pa.string()))
    return table


def _absolute_image_paths(table: pa.Table) -> pa.Table:
    """clip-retrieval stores image paths as given to ``--input_dataset``, often relative to where
    it ran; when the first one exists from the working directory, all relative ones are made
    absolute so ``serve`` can find the images (otherwise they are left as they are)."""
    paths = table.column("image_path").to_pylist()
    relative = [p for p in paths if p and not Path(p).is_absolute()]
    if not relative or not Path(relative[0]).is_file():
        return table
    fixed = [str(Path(p).resolve()) if p and not Path(p).is_absolute() else p for p in paths]
    return table.set_column(
        table.column_names.index("image_path"), "image_path", pa.array(fixed, pa.string())
    )
