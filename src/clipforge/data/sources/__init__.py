"""Data sources, chosen by spec string (see :mod:`.base` for the grammar)."""

from __future__ import annotations

from ...registry import Registry
from .base import MapSource, SourceOptions, SourceSpec, StreamSource
from .builtin import open_builtin
from .class_table import ClassTableSource
from .classfolder import ClassFolderSource
from .clip_benchmark import CLIPBenchmarkSource
from .coco_captions import COCOCaptionsSource
from .folder import FolderSource
from .karpathy import KarpathySplitSource
from .table import TableSource
from .webdataset import WebDatasetSource

DATA_SOURCES: Registry = Registry(
    "data source",
    {
        "builtin": open_builtin,
        "folder": FolderSource,
        "classfolder": ClassFolderSource,
        "table": TableSource,
        "csv": TableSource,
        "tsv": TableSource,
        "parquet": TableSource,
        "wds": WebDatasetSource,
        "clip_benchmark": CLIPBenchmarkSource,
        "coco": COCOCaptionsSource,
        "karpathy": KarpathySplitSource,
        "classcsv": ClassTableSource,
    },
)


def open_source(spec: str, **options) -> MapSource | StreamSource:
    """Open the data source a spec string names; ``options`` override the spec's query."""
    parsed = SourceSpec.parse(spec, DATA_SOURCES.names())
    factory = DATA_SOURCES.get(parsed.kind)
    return factory(parsed.location, SourceOptions.from_query(parsed.query, **options))


__all__ = [
    "DATA_SOURCES",
    "MapSource",
    "SourceOptions",
    "SourceSpec",
    "StreamSource",
    "open_source",
]
