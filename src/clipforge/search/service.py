"""The search service behind ``clipforge serve``: one index, one entry point for every query.

:class:`SearchService` holds what a running server needs — the opened :class:`.searcher.Searcher`
(its micro-batcher and worker threads turned on), the files it may serve (:mod:`.images`), the
upload slots (:mod:`.uploads`) and the metrics (:mod:`.metrics`) — and knows nothing of HTTP:
:mod:`.server` maps routes onto its methods.

Every kind of query — text, uploaded image, item id ("more like this"), image or item + text
(composed); dense, sparse or hybrid — goes through :meth:`SearchService.search`, which awaits
:meth:`.searcher.Searcher.submit`: plain text searches join the shared text batch, the others run
on the searcher's worker threads, and the event loop never runs a model or decodes an image.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from PIL import Image

from .deps import require
from .images import BY_ROW, ImageFiles
from .metrics import Metrics
from .query import Query
from .searcher import Hit, Searcher
from .uploads import (
    UploadRejected,
    UploadSlots,
    decode_capped,
    decode_processes,
    start_decoders,
    warm_up,
)


@dataclass
class ServerConfig:
    """Everything ``clipforge serve`` can set; the CLI's flags default to these."""

    model: str | None = None  # override the model named in index_info.json
    host: str = "127.0.0.1"  # loopback only; anything else warns (no TLS, no auth)
    port: int = 8000
    max_upload_bytes: int = 10 * 1024 * 1024
    max_image_pixels: int = 50_000_000  # checked from the image header, before decoding
    uploads_in_flight: int = 2  # uploads decoded and searched at once
    uploads_waiting: int = 16  # more wait; beyond that 429 + Retry-After
    request_timeout: float = 30.0  # seconds a client has to send a whole request
    api_key: str | None = None  # required on every route but /healthz when set
    allowed_hosts: list[str] | None = None  # Host header allow-list (DNS rebinding); None: any
    torch_threads: int | None = None  # torch.set_num_threads at startup (None: leave)
    batch_text_queries: bool = True  # concurrent text queries share forwards
    search_workers: int = 4  # threads for image, item, sparse and hybrid queries
    faiss_threads: int = 1  # OpenMP threads per FAISS search (see SearchService)
    image_url_folders: tuple = ()  # folders /knn-service may read file:// image_url from
    cors_origins: list[str] | None = None  # web pages (origins) that may call the API; None: none

    def __post_init__(self):
        if not 1 <= self.port <= 65535:
            raise ValueError(f"port must be 1–65535, got {self.port}")
        for name in (
            "max_upload_bytes",
            "max_image_pixels",
            "uploads_in_flight",
            "search_workers",
            "faiss_threads",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not self.request_timeout > 0:
            raise ValueError(f"request_timeout must be positive, got {self.request_timeout}")


class QueryError(Exception):
    """A query that cannot run: HTTP ``status`` (400, 404, 422) and a message."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


class SearchService:
    """One opened index, served (module doc)."""

    def __init__(self, searcher: Searcher, config: ServerConfig):
        self.searcher, self.config = searcher, config
        if config.torch_threads:
            import torch

            torch.set_num_threads(config.torch_threads)
        # One query per search call gains nothing from an OpenMP team, and every handler thread
        # that calls FAISS would get its own spinning team: measured 2.5× slower per request.
        require("faiss").omp_set_num_threads(config.faiss_threads)
        searcher.enable_batching(32 if config.batch_text_queries else 1, config.search_workers)
        info = searcher.info
        root = Path(info["image_root"]) if info.get("image_root") else None
        rel = searcher.column("image_rel")
        by_row = info.get("image_files") == BY_ROW
        self.images = ImageFiles(
            rel, searcher.column("image_path") if by_row else None, root, by_row
        )
        self.uploads = UploadSlots(config.uploads_in_flight, config.uploads_waiting)
        self._decoders: ProcessPoolExecutor | None = None  # started by start_uploads()
        self._decoders_starting = threading.Lock()
        warm_up()
        if searcher.encoder is not None:  # the first image forward's lazy set-up, now
            searcher.encoder.image(Image.new("RGB", (8, 8)))
        self.metrics = Metrics(
            {
                "clipforge_index_items": (lambda: searcher.count, "Vectors in the index."),
                "clipforge_index_bytes": (
                    lambda: info.get("index_bytes", 0),
                    "Size of the index file.",
                ),
                "clipforge_index_dim": (lambda: searcher.dim, "Vector dimension."),
            }
        )

    @classmethod
    def open(cls, index_dir: str | Path, config: ServerConfig | None = None) -> SearchService:
        config = config or ServerConfig()
        return cls(Searcher.open(index_dir, model=config.model), config)

    # -- queries ----------------------------------------------------------------------------

    async def search(
        self,
        text: str | None = None,
        item_id: int | None = None,
        image: Image.Image | None = None,
        k: int = 10,
        mode: str = "dense",
        hybrid_weight: float = 0.5,
        text_weight: float = 1.0,
        text_delta: bool = False,
    ) -> dict:
        """THE entry point of every query → the response body (``results``, ``mode``,
        ``took_ms``); QueryError for a query that cannot run."""
        if text is None and item_id is None and image is None:
            raise QueryError(422, "give text, an image or an item id")
        started = time.perf_counter()
        try:
            query = Query(text, image, item_id, text_weight, text_delta)
            hits = await asyncio.wrap_future(self.searcher.submit(query, k, mode, hybrid_weight))
        except KeyError as error:
            raise QueryError(404, str(error.args[0])) from None
        except ValueError as error:
            raise QueryError(400, str(error)) from None
        return self.response(hits, mode, started)

    def start_uploads(self) -> ProcessPoolExecutor:
        """The upload decode processes, started and warmed (blocking: ``clipforge serve`` calls
        it at start-up through :meth:`lifespan`; otherwise the first upload does, off the loop)."""
        with self._decoders_starting:
            if self._decoders is None:
                pool = decode_processes(self.config.uploads_in_flight)
                start_decoders(pool, self.config.uploads_in_flight)
                self._decoders = pool
            return self._decoders

    def close(self) -> None:
        """Stop the decode processes (the app's shutdown)."""
        if self._decoders is not None:
            self._decoders.shutdown(wait=False, cancel_futures=True)
            self._decoders = None

    @contextlib.asynccontextmanager
    async def lifespan(self, app):
        """FastAPI lifespan: decode processes up before the first request, down at exit."""
        await asyncio.get_running_loop().run_in_executor(None, self.start_uploads)
        try:
            yield
        finally:
            self.close()

    async def search_upload(self, data: bytes, **query) -> dict:
        """:meth:`search` with an uploaded image: waits for an upload slot (429 when too many
        wait), decodes on a low-priority thread with the pixel cap, then searches."""
        try:
            async with self.uploads.slot():
                image = await self.decode_upload(data)
                return await self.search(image=image, **query)
        except UploadRejected as error:
            if error.status == 429:
                self.metrics.uploads_rejected.inc()
            raise

    async def decode_upload(self, data: bytes) -> Image.Image:
        """The upload decoded in a decode process: pixel cap from the header, then shrunk to
        ≤ 1024 px (UploadRejected(400) if too large or not an image)."""
        loop = asyncio.get_running_loop()
        decoders = self._decoders or await loop.run_in_executor(None, self.start_uploads)
        return await loop.run_in_executor(
            decoders, decode_capped, data, self.config.max_image_pixels
        )

    def response(self, hits: list[Hit], mode: str, started: float) -> dict:
        return {
            "results": [
                {
                    "id": h.id,
                    "score": h.score,
                    "caption": h.caption,
                    "image_url": self.image_url(h.image_rel),
                    "key": h.key,
                }
                for h in hits
            ],
            "mode": mode,
            "took_ms": round((time.perf_counter() - started) * 1e3, 3),
        }

    # -- items, images, health ---------------------------------------------------------------

    def image_url(self, image_rel: str) -> str | None:
        return f"/images/{quote(image_rel)}" if image_rel and self.images.available else None

    def item(self, item_id: int) -> dict:
        """One item's metadata (KeyError when there is no such item)."""
        row = self.searcher.item(item_id)
        return {**row, "image_url": self.image_url(row.pop("image_rel"))}

    def image_file(self, relative: str) -> Path | None:
        """The file behind ``/images/{relative}``, only if a row lists it (:mod:`.images`)."""
        return self.images.file(relative)

    def health(self) -> dict:
        searcher, info = self.searcher, self.searcher.info
        return {
            "status": "ok",
            "items": searcher.count,
            "dim": searcher.dim,
            "index_type": info.get("index_type"),
            "modes": searcher.modes(),
            "model_loaded": searcher.encoder is not None,
            "images": self.images.available,
        }
