"""What every data source is, and how a spec string names one.

A spec is ``KIND:LOCATION`` with optional ``?key=value&…`` options, e.g.::

    builtin:emoji                      builtin:emoji?split=val
    folder:/data/pairs                 csv:pairs.csv?image_column=path&caption_column=text
    parquet:laion.parquet              wds:shards/{00000..00099}.tar?shuffle_buffer=2000
    csv:train.csv?csv_img_key=filepath&csv_caption_key=title&csv_separator=tab   (OpenCLIP's names)
    wds:shards/{00000..00099}.tar?caption_key=json:captions

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
from urllib.parse import parse_qsl, urlencode

from ..record import RawRecord

# the names of ``clipforge train``'s data flags and YAML data keys for these options (the csv_
# ones are open_clip_train's flags --csv-img-key …, underscored), also accepted in a spec query
FLAG_OPTION_NAMES = {
    "csv_img_key": "image_column",
    "csv_caption_key": "caption_column",
    "csv_separator": "separator",
    "wds_caption_key": "caption_key",
    "wds_caption_lines": "caption_lines",
}


@dataclass
class SourceOptions:
    """Options shared by sources; each source reads the ones that apply to it.

    Table columns default to clipforge's ``image``/``caption``, else OpenCLIP's ``filepath``/
    ``title`` when the table has those instead (see :mod:`.table`)."""

    split: str | None = None  # None: the source's default (built-in: train; clip_benchmark: test)
    image_column: str | None = None  # tables: path or bytes; None: image, else filepath
    caption_column: str | None = None  # tables; None: caption, else title
    extra_caption_columns: tuple[str, ...] = ()  # e.g. a synthetic-caption column (ALIP)
    separator: str | None = None  # tables: override the delimiter guessed from the suffix
    caption_key: str | None = None  # wds: member (txt) or json:FIELD holding the caption(s)
    caption_lines: bool = False  # wds: every line of the caption text is a caption
    shuffle_buffer: int = 1000  # wds: samples held for shuffling (0 = off)
    resampled: bool = False  # wds: draw shards with replacement, endless
    seed: int = 0
    image_root: str | None = None  # coco, karpathy, classcsv: the image folder (see each)
    label_column: str | None = None  # classcsv: the label column; None: label
    classnames: str | None = None  # classcsv: class names file (.txt lines or .json list)

    @classmethod
    def from_query(cls, query: dict[str, str], **overrides) -> SourceOptions:
        """Options from a spec's query, then ``overrides`` (which win); the flag names
        (:data:`FLAG_OPTION_NAMES`) are accepted, one option named twice in a layer refused."""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        values: dict = {}
        for layer in (query, overrides):
            named: dict[str, str] = {}
            for given, raw in layer.items():
                key = FLAG_OPTION_NAMES.get(given, given)
                if key not in fields:
                    known = sorted([*fields, *FLAG_OPTION_NAMES])
                    raise ValueError(f"unknown data option {given!r}; known: {known}")
                if key in named:
                    raise ValueError(f"data option {key!r} given twice: {named[key]}, {given}")
                named[key] = given
                values[key] = _convert(raw, fields[key].default)
        return cls(**values)


def _convert(raw, default):
    """A query string value → the option's type (read from its default)."""
    if not isinstance(raw, str):
        return raw
    if isinstance(default, bool):
        return raw.lower() in ("1", "true", "yes")
    if isinstance(default, int):
        return int(raw)
    if isinstance(default, tuple):
        return tuple(part for part in raw.split(",") if part)
    return raw


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


def spec_with_options(spec: str, options: dict) -> str:
    """``spec`` with ``options`` (by option or flag name) written into its query, replacing the
    same options there: one string that reopens the source as a run with those flags read it
    (e.g. in a suggested ``clipforge embed`` command)."""
    if not options:
        return spec
    body, _, query_text = spec.partition("?")
    canonical = {FLAG_OPTION_NAMES.get(k, k) for k in options}
    query = {
        k: v
        for k, v in parse_qsl(query_text, keep_blank_values=True)
        if FLAG_OPTION_NAMES.get(k, k) not in canonical
    }
    for key, value in options.items():
        text = str(value).lower() if isinstance(value, bool) else str(value)
        query[key] = "tab" if text == "\t" else text
    return f"{body}?{urlencode(query, safe=':;,/{}.')}"


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
