"""clip-retrieval's query API over clipforge indexes (what ``/knn-service`` and ``/metadata`` do).

``/knn-service`` answers as clip-retrieval's back does: a JSON **list**, best first, of
``num_result_ids`` entries (default ``num_images``) — ``{"id", "similarity"}`` for every one, and
for the first ``num_images`` also the metadata row's columns (``caption``, ``image_path``,
``url``, ``key`` and whatever else the metadata Parquet holds; ``image``, base64, when the index
serves the row's image), so a client can fetch the rest later from ``/metadata``. ``id`` is the
index row, the same id clipforge's ``/search`` and ``/items/{id}`` use; ``similarity`` the cosine
similarity (vectors are L2-normalised).

The query vector: ``text`` through the index's model (joining the server's shared text batch),
``image`` (base64 bytes) or ``image_url`` (:mod:`.file_urls`) decoded under the upload limits and
through the image tower, or ``embedding_input`` as given (L2-normalised; its length must be the
index's dimension). ``modality`` picks the name's image or text index (:mod:`.indices`; default:
the first one given for that name). ``deduplicate`` drops
near-duplicates (:mod:`.dedup`) among the ``num_result_ids`` nearest, as clip-retrieval does, so
fewer may come back.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import math
from typing import Any

import numpy as np

from .dedup import kept_positions
from .file_urls import FileUrls
from .indices import IndexSet
from .query import Query
from .searcher import Hit, Searcher
from .service import QueryError, SearchService
from .uploads import UploadRejected

HIDDEN_COLUMNS = ("image_rel", "thumbnail")  # clipforge's serving details, not the data's


def json_value(value: Any) -> Any:
    """A metadata value JSON can carry (bytes decoded as clip-retrieval does; NaN → None)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (list, tuple)):
        return [json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    return str(value)  # timestamps, decimals


def metadata_row(service: SearchService, item_id: int) -> dict:
    """Row ``item_id``'s metadata columns, JSON-ready (KeyError when there is no such row), plus
    ``image``: the row's image file, base64, when the index serves it (clip-retrieval's back adds
    the same key for local images; its web front shows it). Only files the index lists are read
    (:mod:`.images`), and sent as stored, not re-encoded."""
    row = service.searcher.item(item_id)
    found = service.image_file(row["image_rel"]) if row["image_rel"] else None
    answer = {k: json_value(v) for k, v in row.items() if k not in HIDDEN_COLUMNS and k != "id"}
    if found is not None:
        answer["image"] = base64.b64encode(found.read_bytes()).decode("ascii")
    return answer


class KnnService:
    """The clip-retrieval routes' logic over an :class:`.indices.IndexSet` (module doc)."""

    def __init__(self, indexes: IndexSet, file_urls: FileUrls):
        self.indexes, self.file_urls = indexes, file_urls

    def indices(self) -> list[str]:
        return self.indexes.names

    async def knn(self, request) -> list[dict]:
        """A checked :class:`.knn_request.KnnRequest` → the result list (QueryError if it
        cannot run)."""
        service = self.indexes.get(request.indice_name, request.modality)
        searcher = service.searcher
        count = min(request.result_ids, searcher.count)
        try:
            hits = await self._hits(service, request, count)
        except KeyError as error:
            raise QueryError(404, str(error.args[0])) from None
        except ValueError as error:
            raise QueryError(400, str(error)) from None
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, self._results, service, hits, request)

    async def metadata(self, ids: list[int], indice_name: str | None) -> list[dict]:
        """``[{"id", "metadata"}]`` for ``ids`` of one index (QueryError 404 for an unknown id)."""
        service = self.indexes.get(indice_name)

        def rows():
            try:
                return [{"id": i, "metadata": metadata_row(service, i)} for i in ids]
            except KeyError as error:
                raise QueryError(404, str(error.args[0])) from None

        return await asyncio.get_running_loop().run_in_executor(None, rows)

    # -- the query vector -------------------------------------------------------------------

    async def _hits(self, service: SearchService, request, count: int) -> list[Hit]:
        searcher = service.searcher
        if request.given("text"):
            return await asyncio.wrap_future(searcher.submit(Query(text=request.text), count))
        if request.given("embedding_input"):
            vector = self._embedding(searcher, request.embedding_input)
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(None, searcher.search_vector, vector, count)
        if searcher.encoder is None:  # refused before anything is read or decoded
            raise QueryError(400, "no model loaded to embed the image (start serve with --model)")
        if request.given("image"):
            data = self._base64(request.image)
        else:
            loop = asyncio.get_running_loop()
            data = await loop.run_in_executor(None, self.file_urls.read, request.image_url)
        return await self._image_hits(searcher, data, count)

    def _embedding(self, searcher: Searcher, values: list[float]) -> np.ndarray:
        vector = np.asarray(values, np.float32)
        if vector.shape != (searcher.dim,):
            raise QueryError(
                400,
                f"embedding_input has {vector.size} values; the index holds "
                f"{searcher.dim}-dimensional vectors",
            )
        if not np.any(vector):
            raise QueryError(400, "embedding_input is all zeros")
        return vector

    def _base64(self, text: str) -> bytes:
        """The image's bytes (a browser's ``data:image/…;base64,`` prefix is skipped)."""
        limit = self.indexes.default.config.max_upload_bytes
        if text.startswith("data:") and "," in text:
            text = text.split(",", 1)[1]
        if len(text) > (limit + 2) // 3 * 4 + 4:
            raise QueryError(413, f"image over the limit of {limit} bytes")
        try:
            data = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise QueryError(400, "image is not base64 (send the file's bytes, base64)") from None
        if len(data) > limit:
            raise QueryError(413, f"image over the limit of {limit} bytes")
        return data

    async def _image_hits(self, searcher: Searcher, data: bytes, count: int) -> list[Hit]:
        """Decode under the server's upload slots and pixel cap (the default service's decode
        processes), then search ``searcher``."""
        default = self.indexes.default
        try:
            async with default.uploads.slot():
                image = await default.decode_upload(data)
                return await asyncio.wrap_future(searcher.submit(Query(image=image), count))
        except UploadRejected as error:
            if error.status == 429:
                default.metrics.uploads_rejected.inc()
            raise

    # -- the answer -------------------------------------------------------------------------

    @staticmethod
    def _results(service: SearchService, hits: list[Hit], request) -> list[dict]:
        if request.deduplicate and len(hits) > 1:
            vectors = np.stack([service.searcher.vector(hit.id) for hit in hits])
            hits = [hits[position] for position in kept_positions(vectors)]
        results = []
        for rank, hit in enumerate(hits):
            row = metadata_row(service, hit.id) if rank < request.num_images else {}
            results.append({**row, "id": hit.id, "similarity": hit.score})
        return results
