"""Embed a data set, index it, search it, serve it (the clip-retrieval part of clipforge).

::

    from clipforge.search import EmbedConfig, embed, BuildConfig, build_index_dir, open_index, Query

    embed(EmbedConfig(model="runs/demo", data="builtin:emoji?split=all", out="emb"))
    build_index_dir(BuildConfig(embeddings="emb", out="idx"))
    searcher = open_index("idx")
    searcher.search(Query(text="a red apple"), k=10)                   # → [Hit(id, score, …)]
    searcher.search(Query(image=picture, text="but blue"), k=10)       # composed query

The pieces: :mod:`.embed` (reader → mapper → writer, resumable shards), :mod:`.index` (which
FAISS index for N and a memory budget, tuned for recall), :mod:`.sparse` / :mod:`.hybrid`
(lexical search and score fusion), :mod:`.query` (text / image / composed query vectors),
:mod:`.searcher` (an opened index, one entry point for every query), :mod:`.service` (that index
served: uploads, image files, metrics), :mod:`.server` (its HTTP routes and the web page).
FAISS, SciPy and FastAPI are imported only when used (``pip install 'clipforge[search]'``).
"""

from __future__ import annotations

from pathlib import Path

from .build import BuildConfig, build_index_dir
from .embed import EmbedConfig, EmbedResult, embed
from .index import IndexConfig
from .query import Query, compose
from .searcher import Hit, Searcher


def open_index(
    index_dir: str | Path, model: str | None = None, load_model: bool = True
) -> Searcher:
    """Open an index directory (and the model that made it, unless ``load_model=False``)."""
    return Searcher.open(index_dir, model=model, load_model=load_model)


__all__ = [
    "BuildConfig",
    "EmbedConfig",
    "EmbedResult",
    "Hit",
    "IndexConfig",
    "Query",
    "Searcher",
    "build_index_dir",
    "compose",
    "embed",
    "open_index",
]
