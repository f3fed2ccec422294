"""Several named indexes in one server (``clipforge serve --index NAME=DIR`` repeated).

clip-retrieval's back serves the indices of an ``indices_paths.json`` by name, each with an image
and a text index, and every ``/knn-service`` request picks one with ``indice_name`` and
``modality``. Here a name holds one clipforge index per modality: ``--index laion=idx_img
--index laion=idx_txt`` (``clipforge index --modality text`` builds the second from the same
embeddings, so both share the metadata rows and ids). :class:`IndexSet` holds one
:class:`.service.SearchService` per (name, modality), in the order given; the first is the
default: it answers clipforge's own routes (``/search``, ``/items``, ``/images``, ``/healthz``,
``/metrics``) exactly as a single-index server does, and clip-retrieval requests that name no
index. Uploaded and ``image_url`` images are decoded by the default service's decode processes
and upload slots, whichever index they query, so the limits hold for the server as a whole.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterable
from pathlib import Path

from .build import INDEX_INFO
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


def modality_of(index_dir: str | Path) -> str | None:
    """The modality ``index_info.json`` records (None when unreadable: opening it will say why)."""
    try:
        return json.loads((Path(index_dir) / INDEX_INFO).read_text()).get("modality", "image")
    except (OSError, ValueError):
        return None


class IndexSet:
    """(name, modality) → served index, the first one the default (module doc)."""

    def __init__(self, services: Iterable[tuple[str, SearchService]]):
        self.by_name: dict[str, dict[str, SearchService]] = {}
        for name, service in services:
            modality = service.searcher.info.get("modality", "image")
            held = self.by_name.setdefault(index_name(name), {})
            if modality in held:
                raise ValueError(f"index name {name!r} is given two {modality} indexes")
            held[modality] = service
        if not self.by_name:
            raise ValueError("serve needs at least one index")
        self.default = next(iter(next(iter(self.by_name.values())).values()))

    @classmethod
    def open(
        cls,
        indexes: Iterable[tuple[str, str | Path | None]],
        config: ServerConfig,
        searcher: Searcher | None = None,
    ) -> IndexSet:
        """Open every index (``searcher``, when given, is the first one, already opened);
        a name given twice for one modality is refused before any model loads."""
        indexes = list(indexes)
        seen: dict[tuple[str, str], str | Path | None] = {}
        for position, (name, index_dir) in enumerate(indexes):
            index_name(name)
            if position == 0 and searcher is not None:
                modality: str | None = searcher.info.get("modality", "image")
            elif index_dir is None:
                raise ValueError(f"index {name!r}: no directory given")
            else:
                modality = modality_of(index_dir)  # None: opening it will say what is wrong
            if modality is not None and (name, modality) in seen:
                article = "an" if modality == "image" else "a"
                raise ValueError(
                    f"--index {index_dir}: {name!r} already has {article} {modality} index "
                    f"({seen[name, modality]}); write NAME=DIR to tell them apart"
                )
            if modality is not None:
                seen[name, modality] = index_dir
        services = []
        for position, (name, index_dir) in enumerate(indexes):
            if position == 0 and searcher is not None:
                services.append((name, SearchService(searcher, config)))
            else:
                assert index_dir is not None  # checked above
                services.append((name, SearchService.open(index_dir, config)))
        return cls(services)

    @property
    def names(self) -> list[str]:
        return list(self.by_name)

    @property
    def services(self) -> list[SearchService]:
        return [service for held in self.by_name.values() for service in held.values()]

    def get(self, name: str | None = None, modality: str | None = None) -> SearchService:
        """The index called ``name`` (None: the default's) holding ``modality`` (None: the first
        it was given); 404 listing the names, or 400 listing the modalities it holds."""
        name = name or self.names[0]
        if name not in self.by_name:
            raise QueryError(
                404, f"unknown indice_name {name!r}; this server has: {', '.join(self.names)}"
            )
        held = self.by_name[name]
        if modality is None:
            return next(iter(held.values()))
        if modality not in held:
            raise QueryError(
                400,
                f"modality {modality!r}: index {name!r} holds {' and '.join(held)} vectors "
                f"(serve a {modality} index under the same name: --index {name}=DIR)",
            )
        return held[modality]

    @contextlib.asynccontextmanager
    async def lifespan(self, app):
        """The default's decode processes up before the first request; every service closed."""
        async with self.default.lifespan(app):
            try:
                yield
            finally:
                for service in self.services:
                    service.close()
