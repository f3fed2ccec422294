"""Several named indexes in one server (``clipforge serve --index NAME=DIR`` repeated).

clip-retrieval's back serves the indexes of an ``indices_paths.json`` by name, and every
``/knn-service`` and ``/metadata`` request picks one with ``indice_name``. :class:`IndexSet`
holds one :class:`.service.SearchService` per name, in the order given; the first is the
default: it answers clipforge's own routes (``/search``, ``/items``, ``/images``, ``/healthz``,
``/metrics``) exactly as a single-index server does, and clip-retrieval requests that name no
index. Uploaded and ``image_url`` images are decoded by the default service's decode processes
and upload slots, whichever index they query, so the limits hold for the server as a whole.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping
from pathlib import Path

from .searcher import Searcher
from .service import QueryError, SearchService, ServerConfig

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")


def index_name(text: str) -> str:
    """``text`` if it is a usable index name (letters, digits, ``_ . -``), else ValueError."""
    if not NAME.fullmatch(text):
        raise ValueError(f"index name {text!r}: use letters, digits, '_', '.' or '-' (at most 100)")
    return text


def default_name(index_dir: str | Path) -> str:
    """The name of an index given without one: its folder's name (``idx`` for ``runs/idx``)."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", Path(index_dir).resolve().name).lstrip("_.-")
    return name[:100] or "index"


class IndexSet:
    """name → served index, the first one the default (module doc)."""

    def __init__(self, services: Mapping[str, SearchService]):
        if not services:
            raise ValueError("serve needs at least one index")
        self.services = dict(services)
        self.default = next(iter(self.services.values()))

    @classmethod
    def open(
        cls,
        indexes: Mapping[str, str | Path],
        config: ServerConfig,
        searcher: Searcher | None = None,
    ) -> IndexSet:
        """Open every index (``searcher``, when given, is the first one, already opened)."""
        services = {}
        for position, (name, index_dir) in enumerate(indexes.items()):
            index_name(name)
            if position == 0 and searcher is not None:
                services[name] = SearchService(searcher, config)
            else:
                services[name] = SearchService.open(index_dir, config)
        return cls(services)

    @property
    def names(self) -> list[str]:
        return list(self.services)

    def get(self, name: str | None) -> SearchService:
        """The index called ``name`` (None: the default); 404 listing the names otherwise."""
        if name is None or name == "":
            return self.default
        if name not in self.services:
            raise QueryError(
                404, f"unknown indice_name {name!r}; this server has: {', '.join(self.names)}"
            )
        return self.services[name]

    @contextlib.asynccontextmanager
    async def lifespan(self, app):
        """The default's decode processes up before the first request; every service closed."""
        async with self.default.lifespan(app):
            try:
                yield
            finally:
                for service in self.services.values():
                    service.close()
