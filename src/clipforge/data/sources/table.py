"""Image-text pairs listed in a table: CSV, TSV or Parquet, read with pyarrow.

One row is one record. Columns (names set by :class:`SourceOptions`):

- ``image_column`` (default ``image``, else OpenCLIP's ``filepath`` when the table has that
  instead): an absolute path; a relative one, found in the table's folder or else in the
  working directory (OpenCLIP opens paths as written, i.e. relative to where it runs; a missing
  image is a bad record whose reason names both places tried); or the encoded image itself (a
  Parquet ``binary`` column, or the ``struct<bytes, path>`` that Hugging Face ``datasets``
  writes for its ``Image`` feature).
- ``caption_column`` (default ``caption``, else OpenCLIP's ``title``): a string, or a list of
  strings (Parquet ``list<string>``) for several captions of one image.
- ``extra_caption_columns``: more caption columns, e.g. synthetic captions. Their captions follow
  the main ones in ``RawRecord.captions`` (so ``captions[1]`` is the first extra column's when
  the main cell holds one caption, which is what ALIP's ``alt_text`` reads) and their raw values
  also go into ``metadata`` under the column name, so objectives can tell raw from synthetic.
- ``key`` or ``id``: the record key when present, else the row number.
- every other column goes into ``metadata``.

The format comes from the suffix (``.csv`` comma, ``.tsv`` tab, ``.parquet``/``.pq``), except
that a ``.csv`` whose header line has tabs and no comma is read as tab-separated (OpenCLIP reads
every table with ``--csv-separator``'s default, a tab, so its ``train.csv`` files often are);
a file with another suffix is read as delimited text, with ``options.separator`` (``tab`` or
``\\t`` accepted) or else the delimiter its header line suggests. TSV is read without quoting
(the TSV convention: a caption may start with ``"``); CSV follows RFC 4180 quoting, newlines
allowed inside quoted cells. Delimited text is UTF-8: a row with an undecodable byte is a bad record
(skipped and counted by the loader, its row number and column named), not a reason to refuse the
whole file; its cells are kept with U+FFFD in place of the bad bytes.

Memory: the table stays as Arrow columns (no pandas, no per-row Python objects); a row becomes
Python values only when it is asked for. Loader workers get a pickled copy of the columns.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pa_csv

from ..record import RECORD_ERROR, RawRecord
from .base import MapSource, SourceOptions

PARQUET_SUFFIXES = (".parquet", ".pq")
KEY_COLUMNS = ("key", "id")
# columns used when the option is not given: clipforge's name, then OpenCLIP's default
DEFAULT_COLUMNS = {"image_column": ("image", "filepath"), "caption_column": ("caption", "title")}


class ArrowColumn:
    """Row access into a chunked Arrow column in O(log chunks), without copying it."""

    def __init__(self, column: pa.ChunkedArray):
        self.chunks = [chunk for chunk in column.chunks if len(chunk)]
        self.starts = [0]
        for chunk in self.chunks:
            self.starts.append(self.starts[-1] + len(chunk))

    def __getitem__(self, row: int) -> Any:
        chunk = bisect.bisect_right(self.starts, row) - 1
        return self.chunks[chunk][row - self.starts[chunk]].as_py()

    def __iter__(self) -> Iterator[Any]:
        for chunk in self.chunks:
            yield from chunk.to_pylist()


def read_table(path: Path, separator: str | None = None) -> tuple[pa.Table, dict[int, str]]:
    """The table in ``path`` as Arrow, and row → why it is bad for rows with undecodable text;
    see the module docstring for how the format is chosen."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such table file")
    if path.suffix.lower() in PARQUET_SUFFIXES:
        import pyarrow.parquet as pa_parquet  # 0.2 s to import; only when needed

        return pa_parquet.read_table(path), {}
    delimiter = _delimiter(path, separator)
    parse = (
        pa_csv.ParseOptions(delimiter="\t", quote_char=False)
        if delimiter == "\t"
        else pa_csv.ParseOptions(delimiter=delimiter, newlines_in_values=True)
    )
    try:
        # every column as text: captions like "1984" and ids like "007" stay as written
        # read as bytes, then decode: one bad byte must not reject the other rows
        header = pa_csv.open_csv(path, parse_options=parse).schema.names
        convert = pa_csv.ConvertOptions(column_types={name: pa.binary() for name in header})
        raw = pa_csv.read_csv(path, parse_options=parse, convert_options=convert)
    except (pa.ArrowInvalid, StopIteration) as error:
        raise ValueError(
            f"{path}: cannot read as delimited text (delimiter {delimiter!r}): {error}"
        ) from None
    return decode_text_columns(raw)


def decode_text_columns(raw: pa.Table) -> tuple[pa.Table, dict[int, str]]:
    """Binary columns → UTF-8 string columns; rows holding invalid UTF-8 are decoded with
    U+FFFD and returned as row → reason (the first bad column of the row)."""
    bad_rows: dict[int, str] = {}
    columns = []
    for name in raw.column_names:
        column = raw.column(name)
        try:
            columns.append(column.cast(pa.string()))
            continue
        except pa.ArrowInvalid:  # rare: find the bad cells in Python
            pass
        values = []
        for row, cell in enumerate(column.to_pylist()):
            try:
                values.append(None if cell is None else cell.decode("utf-8"))
            except UnicodeDecodeError as error:
                bad_rows.setdefault(
                    row,
                    f"row {row}: column {name!r} is not valid UTF-8 "
                    f"({error.reason} at byte {error.start})",
                )
                values.append(cell.decode("utf-8", errors="replace"))
        columns.append(pa.array(values, pa.string()))
    return pa.table(columns, names=raw.column_names), bad_rows


def _delimiter(path: Path, separator: str | None) -> str:
    if separator:
        return {"tab": "\t", "\\t": "\t", "comma": ","}.get(separator, separator)
    with open(path, encoding="utf-8", errors="replace") as handle:
        header = handle.readline()
    suffix = path.suffix.lower()
    if suffix == ".tsv":
        return "\t"
    if suffix == ".csv" and ("," in header or "\t" not in header):
        return ","
    return "\t" if header.count("\t") > header.count(",") else ","


class TableSource(MapSource):
    name = "table"

    def __init__(self, location: str | Path, options: SourceOptions | None = None):
        options = options or SourceOptions()
        self.path = Path(location).expanduser()
        self.working_dir = Path.cwd()  # read now: loader workers resolve paths the same way
        self.folder = self.working_dir / self.path.parent
        table, self.bad_rows = read_table(self.path, options.separator)
        if table.num_rows == 0:
            raise ValueError(f"{self.path}: the table has no rows")
        present = table.column_names
        image_name = self._column(options.image_column, "image_column", present)
        caption_name = self._column(options.caption_column, "caption_column", present)
        for name in options.extra_caption_columns:
            self._column(name, "extra_caption_columns", present)
        image_column = table.column(image_name)
        if pa.types.is_string(image_column.type) or pa.types.is_large_string(image_column.type):
            first = next((v for v in image_column.slice(0, 100).to_pylist() if v), "")
            if "://" in first:
                raise ValueError(
                    f"{self.path}: column {image_name!r} holds URLs ({first}); "
                    f"download the images first (e.g. img2dataset) and point at the result"
                )
        self.image = ArrowColumn(image_column)
        self.caption_columns = [caption_name, *options.extra_caption_columns]
        self.captions_by_column = [ArrowColumn(table.column(c)) for c in self.caption_columns]
        key_column = next((c for c in KEY_COLUMNS if c in present), None)
        self.keys = ArrowColumn(table.column(key_column)) if key_column else None
        skip = {image_name, caption_name, key_column}
        self.metadata_columns = {
            name: ArrowColumn(table.column(name)) for name in present if name not in skip
        }
        self.rows = table.num_rows

    def _column(self, given: str | None, option: str, present: list[str]) -> str:
        """The column ``option`` names: ``given``, else the first default the table has."""
        candidates = (given,) if given else DEFAULT_COLUMNS[option]
        found = next((name for name in candidates if name in present), None)
        if found is None:
            flag = {"image_column": " / --csv-img-key", "caption_column": " / --csv-caption-key"}
            wanted = " or ".join(repr(name) for name in candidates)
            raise ValueError(
                f"{self.path}: no column {wanted} (the {option}{flag.get(option, '')}); "
                f"its columns are {present}"
            )
        return found

    def __len__(self) -> int:
        return self.rows

    def __getitem__(self, index: int) -> RawRecord:
        if not 0 <= index < self.rows:
            raise IndexError(f"row {index} out of range for {self.path} ({self.rows} rows)")
        key = self.keys[index] if self.keys is not None else None
        key = str(index) if key is None else str(key)
        captions: list[str] = []
        for column in self.captions_by_column:
            captions.extend(_as_captions(column[index]))
        metadata = {name: column[index] for name, column in self.metadata_columns.items()}
        image, missing = self._image_ref(self.image[index])
        if index in self.bad_rows or missing:
            metadata[RECORD_ERROR] = self.bad_rows.get(index, missing)
        return RawRecord(key, image, tuple(captions), metadata)

    def _image_ref(self, value: Any) -> tuple[bytes | Path, str | None]:
        """The image bytes or path, and why the record is bad when its file is nowhere."""
        if isinstance(value, dict):  # Hugging Face Image: {bytes, path}
            value = value.get("bytes") or value.get("path")
        if value is None:
            return b"", None  # decode_image reports the record bad
        if isinstance(value, (bytes, bytearray)):
            return bytes(value), None
        path = Path(str(value)).expanduser()
        if path.is_absolute():
            return path, None  # open_image names it when missing
        tried = {self.folder / path: "the table's folder"}
        tried.setdefault(self.working_dir / path, "the working directory")
        found = next((place for place in tried if place.is_file()), None)
        if found is not None:
            return found, None
        places = " and ".join(f"{place} ({where})" for place, where in tried.items())
        return self.folder / path, f"image file not found: {str(value)!r}; tried {places}"

    def captions(self) -> Iterator[str]:
        for column in self.captions_by_column:
            for value in column:
                yield from _as_captions(value)


def _as_captions(value: Any) -> tuple[str, ...]:
    """A caption cell → its captions: a string is one, a list is several, null is none."""
    if value is None:
        return ()
    if isinstance(value, (list, tuple)):
        return tuple(str(v) for v in value if v is not None)
    return (str(value),)
