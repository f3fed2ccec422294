"""``clipforge serve``: a FastAPI app over one index directory (OpenAPI docs at ``/docs``).

Routes::

    GET  /                 the search page (static/index.html, no external resources)
    POST /search           JSON {"text", "id", "k", "mode", …} or a multipart form with an
                           ``image`` file and optional ``text``, ``k``, ``mode`` fields
                           → {"results": [{"id", "score", "caption", "image_url", "key"}], …}
    GET  /items/{id}       one item's metadata
    GET  /images/{path}    a file under the index's image root, nothing else (see below)
    GET  /healthz          liveness + what the index holds
    GET  /metrics          Prometheus text: request counts, latency histogram and p50/p90/p99

Every input is checked: text ≤ 1000 characters and 1 ≤ k ≤ 100 (422 otherwise), uploads ≤ 10 MB
(413; the body is read with a cap, so a missing or false Content-Length doesn't help), images that
don't decode or exceed 50 megapixels → 400, unknown item ids → 404. Image paths are served only if
relative, free of ``..``, resolving (symlinks followed) inside the image root, with an image
suffix — anything else is a plain 404 that never says why.

The model loads once, in :func:`create_app`. Plain text searches (the common case) are awaited
on the event loop: concurrent ones are embedded in one forward and searched in one FAISS call by a
worker thread (:mod:`.batching`), which is what keeps latency flat under load. Image, composed,
item and sparse/hybrid searches run in Starlette's thread pool; the model forward holds a lock
and runs under ``torch.no_grad``.
"""

# no `from __future__ import annotations`: FastAPI reads the handlers' annotations at runtime

import asyncio
import io
import json
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal
from urllib.parse import quote

from PIL import Image, UnidentifiedImageError

from .deps import require
from .metrics import Metrics
from .query import Query
from .searcher import Searcher

MAX_TEXT_CHARS, MAX_K = 1000, 100
MAX_IMAGE_PIXELS = 50_000_000
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp"}
STATIC_DIR = Path(__file__).with_name("static")


@dataclass
class ServerConfig:
    model: str | None = None                    # override the model named in index_info.json
    max_upload_bytes: int = 10 * 1024 * 1024
    torch_threads: int | None = None            # torch.set_num_threads at startup (None: leave)
    batch_text_queries: bool = True             # concurrent text queries share forwards
    faiss_threads: int = 1                      # OpenMP threads per FAISS search (see below)


def safe_image_path(root: Path | None, relative: str) -> Path | None:
    """``root/relative`` if it is an image file inside ``root`` (symlinks resolved), else None."""
    if root is None or not relative or "\x00" in relative or "\\" in relative:
        return None
    pure = PurePosixPath(relative)
    if pure.is_absolute() or ".." in pure.parts:
        return None
    root = root.resolve()
    candidate = (root / pure).resolve()
    if not candidate.is_relative_to(root) or candidate.suffix.lower() not in IMAGE_SUFFIXES:
        return None
    return candidate if candidate.is_file() else None


class MetricsMiddleware:
    """Pure ASGI middleware: time every HTTP request, label it by its route template."""

    def __init__(self, app, metrics: Metrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), 500

        async def send_and_note(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            route = getattr(scope.get("route"), "path", None) or (
                "/static" if scope["path"].startswith("/static/") else "unmatched")
            self.metrics.observe(route, scope["method"], status, time.perf_counter() - started)


def _request_models():
    from pydantic import BaseModel, ConfigDict, Field

    class SearchRequest(BaseModel):
        """A search: ``text``, ``id`` (more like this) or both (composed); forms add ``image``."""

        model_config = ConfigDict(extra="forbid")
        text: str | None = Field(None, max_length=MAX_TEXT_CHARS)
        id: int | None = Field(None, ge=0, description="search by an indexed item's vector")
        k: int = Field(10, ge=1, le=MAX_K)
        mode: Literal["dense", "sparse", "hybrid"] = "dense"
        hybrid_weight: float = Field(0.5, ge=0.0, le=1.0, description="dense share in hybrid")
        text_weight: float = Field(1.0, ge=0.0, le=10.0, description="λ of composed queries")
        text_delta: bool = False

    class SearchResult(BaseModel):
        id: int
        score: float
        caption: str
        image_url: str | None
        key: str

    class SearchResponse(BaseModel):
        results: list[SearchResult]
        mode: str
        took_ms: float

    return SearchRequest, SearchResponse


def create_app(index_dir: str | Path, config: ServerConfig | None = None,
               searcher: Searcher | None = None):
    """The app for ``index_dir`` (or an already opened ``searcher``)."""
    fastapi = require("fastapi")
    require("python_multipart")          # FastAPI parses forms with it
    from fastapi import HTTPException, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import FileResponse, PlainTextResponse, Response
    from fastapi.staticfiles import StaticFiles
    from pydantic import ValidationError
    from starlette.concurrency import run_in_threadpool

    config = config or ServerConfig()
    if config.torch_threads:
        import torch
        torch.set_num_threads(config.torch_threads)
    # One query per search call gains nothing from an OpenMP team, and every handler thread
    # that calls FAISS would get its own spinning team: measured 2.5× slower per request.
    require("faiss").omp_set_num_threads(config.faiss_threads)
    searcher = searcher or Searcher.open(index_dir, model=config.model)
    batched = searcher.encoder is not None and config.batch_text_queries
    if batched:
        searcher.enable_batching()
    image_root = Path(searcher.info["image_root"]) if searcher.info.get("image_root") else None
    metrics = Metrics()
    SearchRequest, SearchResponse = _request_models()
    app = fastapi.FastAPI(title="clipforge search", version="1",
                          description="Text, image and composed search over one index.")
    app.state.searcher, app.state.metrics = searcher, metrics
    app.add_middleware(MetricsMiddleware, metrics=metrics)

    def image_url(image_rel: str) -> str | None:
        return f"/images/{quote(image_rel)}" if image_rel and image_root is not None else None

    def run_search(params, image: Image.Image | None) -> Response:
        if params.text is None and params.id is None and image is None:
            raise HTTPException(422, "give text, an image or an item id")
        started = time.perf_counter()
        try:
            query = Query(params.text, image, params.id, params.text_weight, params.text_delta)
            hits = searcher.search(query, params.k, params.mode, params.hybrid_weight)
        except KeyError as error:
            raise HTTPException(404, str(error.args[0])) from None
        except ValueError as error:
            raise HTTPException(400, str(error)) from None
        return respond(hits, params.mode, started)

    def respond(hits, mode: str, started: float) -> Response:
        body = {"results": [{"id": h.id, "score": h.score, "caption": h.caption,
                             "image_url": image_url(h.image_rel), "key": h.key} for h in hits],
                "mode": mode, "took_ms": round((time.perf_counter() - started) * 1e3, 3)}
        # serialised by hand: FastAPI's generic encoder walks every value, json.dumps doesn't
        return Response(json.dumps(body), media_type="application/json")

    def validate(raw: dict):
        try:
            return SearchRequest.model_validate(raw)
        except ValidationError as error:
            raise RequestValidationError(error.errors(include_url=False,
                                                      include_context=False)) from None

    too_large = f"upload over the limit of {config.max_upload_bytes} bytes"

    async def read_capped(request: Request, limit: int) -> bytes:
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise HTTPException(413, too_large)
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise HTTPException(413, too_large)
            chunks.append(chunk)
        return b"".join(chunks)

    def decode_upload(data: bytes) -> Image.Image:
        try:
            picture = Image.open(io.BytesIO(data))
            if picture.width * picture.height > MAX_IMAGE_PIXELS:
                raise HTTPException(400, f"image too large: {picture.width}×{picture.height} "
                                         f"pixels (limit {MAX_IMAGE_PIXELS})")
            picture.load()
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError,
                Image.DecompressionBombError) as error:
            raise HTTPException(400, f"cannot decode the uploaded image: {error}") from None
        return picture

    request_schema = SearchRequest.model_json_schema()
    form_schema = {"type": "object", "properties": {
        "image": {"type": "string", "format": "binary"},
        **{k: v for k, v in request_schema["properties"].items() if k != "id"}}}

    body_docs = {"requestBody": {"required": True, "content": {
        "application/json": {"schema": request_schema},
        "multipart/form-data": {"schema": form_schema}}}}

    @app.post("/search", responses={200: {"model": SearchResponse}}, openapi_extra=body_docs)
    async def search(request: Request) -> Response:
        """Search by text, uploaded image, item id, or image/item + text (composed)."""
        # multipart framing adds a little; the image itself is checked against the limit below
        body = await read_capped(request, config.max_upload_bytes + 64 * 1024)
        content_type = request.headers.get("content-type", "")
        if content_type.startswith("multipart/form-data"):
            request._body = body             # Starlette re-reads the capped body from here
            form = await request.form(max_files=1, max_fields=16)
            upload = form.get("image")
            fields = {k: v for k, v in form.items() if k != "image" and v != ""}
            params = validate(fields)
            image = None
            if upload is not None and not isinstance(upload, str):
                data = await upload.read(config.max_upload_bytes + 1)
                if len(data) > config.max_upload_bytes:
                    raise HTTPException(413, too_large)
                image = decode_upload(data)
            return await run_in_threadpool(run_search, params, image)
        try:
            raw = json.loads(body or b"{}")
        except ValueError:
            raise HTTPException(400, "body is neither JSON nor a multipart form") from None
        if not isinstance(raw, dict):
            raise HTTPException(422, "the JSON body must be an object")
        params = validate(raw)
        if batched and params.mode == "dense" and params.id is None and params.text \
                and params.text.strip():
            # the common case, text → images: awaited on the loop, no thread-pool hop
            started = time.perf_counter()
            future = searcher.submit_text_search(params.text, params.k)
            try:
                hits = await asyncio.wrap_future(future)
            except ValueError as error:
                raise HTTPException(400, str(error)) from None
            return respond(hits, params.mode, started)
        return await run_in_threadpool(run_search, params, None)

    @app.get("/items/{item_id}")
    def item(item_id: int) -> dict:
        """One item's metadata."""
        try:
            row = searcher.item(item_id)
        except KeyError as error:
            raise HTTPException(404, str(error.args[0])) from None
        return {**row, "image_url": image_url(row.pop("image_rel"))}

    @app.get("/images/{path:path}")
    def images(path: str):
        """An image under the index's image root."""
        found = safe_image_path(image_root, path)
        if found is None:
            raise HTTPException(404, "not found")
        return FileResponse(found, headers={"Cache-Control": "public, max-age=3600"})

    @app.get("/healthz")
    def healthz() -> dict:
        info = searcher.info
        return {"status": "ok", "items": searcher.count, "dim": searcher.dim,
                "index_type": info.get("index_type"), "modes": searcher.modes(),
                "model_loaded": searcher.encoder is not None, "images": image_root is not None}

    @app.get("/metrics", response_class=PlainTextResponse)
    def prometheus() -> str:
        info = searcher.info
        return metrics.render({
            "clipforge_index_items": (searcher.count, "Vectors in the index."),
            "clipforge_index_bytes": (info.get("index_bytes", 0), "Size of the index file."),
            "clipforge_index_dim": (searcher.dim, "Vector dimension."),
        })

    @app.get("/", include_in_schema=False)
    def page():
        return FileResponse(STATIC_DIR / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
