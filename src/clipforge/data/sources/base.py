"""What every data source is, and how a spec string names one.

A spec is ``KIND:LOCATION`` with optional ``?key=value&…`` options, e.g.::

    builtin:emoji                      builtin:emoji?split=val
    folder:/data/pairs                 csv:pairs.csv?image_column=path&caption_column=text
    parquet:laion.parquet              wds:shards/{00000..00099}.tar?shuffle_buffer=2000

A bare path is read by its look: a directory → ``folder`` (``clip_benchmark`` when it is in
CLIP_benchmark's ``wds_*`` layout), ``.csv``/``.tsv``/``.parquet`` → table, ``.tar`` or a brace
pattern → ``wds``. The valid ``KIND`` prefixes are the names in the source
registry (:data:`clipforge.data.sources.DATA_SOURCES`), passed to :meth:`SourceSpec.parse`, so
a new source is one file plus one registry line.
"""

from __future__ import annotations

import dataclasses
import itertools
from abc import ABC, abstractmethod
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl

from ..record import RawRecord


@dataclass
class SourceOptions:
    """Options shared by sources; each source reads the ones that apply to it."""

    split: str | None = None  # None: the source's default (built-in: train; clip_benchmark: test)
    image_column: str = "image"  # tables: path (relative to the table's folder) or bytes
    caption_column: str = "caption"
    extra_caption_columns: tuple[str, ...] = ()  # e.g. a synthetic-caption column (ALIP)
    separator: str | None = None  # tables: override the delimiter guessed from the suffix
    shuffle_buffer: int = 1000  # wds: samples held for shuffling (0 = off)
    resampled: bool = False  # wds: draw shards with replacement, endless
    seed: int = 0

    @classmethod
    def from_query(cls, query: dict[str, str], **overrides) -> SourceOptions:
        fields = {f.name: f for f in dataclasses.fields(cls)}
        values: dict = {}
        for key, raw in {**query, **overrides}.items():
            if key not in fields:
                raise ValueError(f"unknown data option {key!r}; known: {sorted(fields)}")
            default = fields[key].default
            if isinstance(raw, str) and isinstance(default, bool):
                values[key] = raw.lower() in ("1", "true", "yes")
            elif isinstance(raw, str) and isinstance(default, int):
                values[key] = int(raw)
            elif isinstance(raw, str) and isinstance(default, tuple):
                values[key] = tuple(part for part in raw.split(",") if part)
            else:
                values[key] = raw
        return cls(**values)


@dataclass(frozen=True)
class SourceSpec:
    kind: str
    location: str
    query: dict

    @classmethod
    def parse(cls, spec: str, kinds: Collection[str]) -> SourceSpec:
        """Split ``KIND:LOCATION?query``; ``kinds`` are the registered source names (a prefix
        that is not one, like ``C:`` on Windows, is part of the location)."""
        if not spec:
            raise ValueError("empty data spec")
        body, _, query_text = spec.partition("?")
        query = dict(parse_qsl(query_text, keep_blank_values=True))
        kind, sep, location = body.partition(":")
        if sep and kind in kinds:
            return cls(kind, location, query)
        return cls(_guess_kind(body, kinds), body, query)


def _guess_kind(location: str, kinds: Collection[str]) -> str:
    lowered = location.lower()
    if lowered.endswith((".csv", ".tsv", ".parquet")):
        return "table"
    if lowered.endswith(".tar") or "{" in location or lowered.endswith(".txt"):
        return "wds"
    if Path(location).is_dir():
        from .clip_benchmark import looks_like_clip_benchmark

        return "clip_benchmark" if looks_like_clip_benchmark(location) else "folder"
    raise ValueError(
        f"cannot tell what kind of data {location!r} is; write it as KIND:LOCATION with KIND in "
        f"{', '.join(sorted(kinds))}"
    )


class MapSource(ABC):
    """A source with random access: listing is cheap, decoding is left to the loader."""

    name: str = "source"

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def __getitem__(self, index: int) -> RawRecord: ...

    def captions(self) -> Iterator[str]:
        """All captions, for training a tokenizer. Sources override it when it can skip images."""
        for index in range(len(self)):
            yield from self[index].captions

    def class_names(self) -> list[str] | None:
        """Class names when records carry ``metadata['label']`` (zero-shot tasks), else None."""
        return None

    def templates(self) -> tuple[str, ...] | None:
        """The data set's own zero-shot prompt templates (``{c}``: class name), else None."""
        return None


class StreamSource(ABC):
    """A source read in order, e.g. WebDataset shards; split across ranks and workers."""

    name: str = "stream"

    @abstractmethod
    def __iter__(self) -> Iterator[RawRecord]: ...

    def captions(self, limit: int) -> Iterator[str]:
        """The first ``limit`` captions of the stream in its listed order, for training a
        tokenizer. It must be the same on every rank and worker (so must the tokenizer): a
        source that splits itself across ranks overrides this, as WebDataset does."""
        return first_captions(self, limit)

    def set_epoch(self, epoch: int) -> None:  # noqa: B027 - a no-op default, not abstract
        """Reseed the shard/sample shuffle for a new epoch. Deliberately a no-op by default: a
        stream read in a fixed order has nothing to reseed, so it need not override this."""


def first_captions(records: Iterable[RawRecord], limit: int) -> Iterator[str]:
    """The first ``limit`` captions of ``records``, read no further than needed."""
    return itertools.islice((c for record in records for c in record.captions), limit)
