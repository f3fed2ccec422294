"""``clipforge serve``: a FastAPI app over one index directory (OpenAPI docs at ``/docs``).

Routes::

    GET  /                 the search page (static/index.html, no external resources)
    POST /search           JSON {"text", "id", "k", "mode", …} or a multipart form with an
                           ``image`` file and optional ``text``, ``k``, ``mode`` fields
                           → {"results": [{"id", "score", "caption", "image_url", "key"}], …}
    GET  /items/{id}       one item's metadata
    GET  /images/{path}    an image file that a row of the index lists, nothing else
    GET  /healthz          liveness + what the index holds (never needs the API key)
    GET  /metrics          Prometheus text: request counts, latency histogram and p50/p90/p99
    POST /knn-service, GET /indices-list, POST /metadata
                           clip-retrieval's API over one or several named indexes
                           (:mod:`.knn_routes`)

Limits (:class:`.service.ServerConfig`; docs/deploy.md): text ≤ 1000 characters and
1 ≤ k ≤ 100 (422), uploads ≤ 10 MB (413; the body is read with a cap, so a missing or false
Content-Length doesn't help), images over 50 megapixels by their header or that don't decode →
400, more than 2 uploads decoding + 16 waiting → 429, JSON that is not strict JSON (``NaN``,
lone surrogates, deep nesting) → 400 (:mod:`.request`), unknown item ids → 404, unlisted image
paths → a plain 404 that never says why (:mod:`.images`). Optional: an API key
(``X-API-Key`` or ``Authorization: Bearer``) on every route but ``/healthz``, and a Host-header
allow-list against DNS rebinding.

:class:`SearchRoutes` maps each route onto one :class:`.service.SearchService` method; the model
loads once, when the service opens the index.
"""

# no `from __future__ import annotations`: FastAPI reads the handlers' annotations at runtime

from collections.abc import Mapping, Sequence
from pathlib import Path

from .deps import require

require("fastapi")
require("python_multipart")  # FastAPI parses forms with it

from fastapi import HTTPException, Request  # noqa: E402 - after the install hint above
from fastapi.responses import FileResponse, JSONResponse, Response  # noqa: E402
from starlette.requests import ClientDisconnect  # noqa: E402

from .file_urls import FileUrls, allowed_folders  # noqa: E402
from .indices import IndexSet, default_name  # noqa: E402
from .knn import KnnService  # noqa: E402
from .knn_routes import KnnRoutes  # noqa: E402
from .middleware import ApiKeyMiddleware, MetricsMiddleware  # noqa: E402
from .request import (  # noqa: E402
    BadRequest,
    SearchRequest,
    SearchResponse,
    check_strings,
    clean_errors,
    parse_json_body,
    validate,
)
from .searcher import Searcher  # noqa: E402
from .service import QueryError, SearchService, ServerConfig  # noqa: E402
from .uploads import UploadRejected  # noqa: E402

STATIC_DIR = Path(__file__).with_name("static")
FORM_ALLOWANCE = 64 * 1024  # multipart framing and fields beside the image

__all__ = ["SearchRoutes", "ServerConfig", "SearchService", "create_app"]


def _body_docs() -> dict:
    request_schema = SearchRequest.model_json_schema()
    form_schema = {
        "type": "object",
        "properties": {
            "image": {"type": "string", "format": "binary"},
            **{k: v for k, v in request_schema["properties"].items() if k != "id"},
        },
    }
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": request_schema},
                "multipart/form-data": {"schema": form_schema},
            },
        }
    }


class SearchRoutes:
    """The HTTP face of a :class:`.service.SearchService`: parse, call one method, answer."""

    def __init__(self, service: SearchService):
        self.service, self.config = service, service.config
        self.too_large = f"upload over the limit of {self.config.max_upload_bytes} bytes"

    def install(self, app) -> None:
        from fastapi.exceptions import RequestValidationError
        from fastapi.responses import PlainTextResponse
        from fastapi.staticfiles import StaticFiles

        app.add_api_route(
            "/search",
            self.search,
            methods=["POST"],
            responses={200: {"model": SearchResponse}},
            openapi_extra=_body_docs(),
            summary="Search",
        )
        app.add_api_route("/items/{item_id}", self.item, methods=["GET"], summary="Item")
        app.add_api_route("/images/{path:path}", self.image, methods=["GET"], summary="Image")
        app.add_api_route("/healthz", self.healthz, methods=["GET"], summary="Healthz")
        app.add_api_route(
            "/metrics",
            self.prometheus,
            methods=["GET"],
            response_class=PlainTextResponse,
            summary="Prometheus",
        )
        app.add_api_route("/", self.page, methods=["GET"], include_in_schema=False)
        app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
        app.add_exception_handler(RequestValidationError, self.invalid)
        app.add_exception_handler(QueryError, self.failed)
        app.add_exception_handler(UploadRejected, self.failed)

    # -- handlers ---------------------------------------------------------------------------

    async def search(self, request: Request) -> Response:
        """Search by text, uploaded image, item id, or image/item + text (composed)."""
        body = await self.read_capped(request, self.config.max_upload_bytes + FORM_ALLOWANCE)
        if request.headers.get("content-type", "").startswith("multipart/form-data"):
            return self._json(await self._search_form(request, body))
        try:
            params = validate(parse_json_body(body))
        except BadRequest as error:
            raise HTTPException(400, str(error)) from None
        except TypeError as error:
            raise HTTPException(422, str(error)) from None
        return self._json(await self.service.search(**self._query(params)))

    def item(self, item_id: int) -> dict:
        """One item's metadata."""
        try:
            return self.service.item(item_id)
        except KeyError as error:
            raise HTTPException(404, str(error.args[0])) from None

    def image(self, path: str):
        """An image file listed by a row of the index."""
        found = self.service.image_file(path)
        if found is None:
            raise HTTPException(404, "not found")
        return FileResponse(found, headers={"Cache-Control": "public, max-age=3600"})

    async def healthz(self) -> dict:
        return self.service.health()

    def prometheus(self):
        from prometheus_client import CONTENT_TYPE_LATEST

        return Response(self.service.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    def page(self):
        return FileResponse(STATIC_DIR / "index.html")

    # -- helpers ----------------------------------------------------------------------------

    async def invalid(self, request, error):
        return JSONResponse({"detail": clean_errors(error.errors())}, status_code=422)

    async def failed(self, request, error):
        headers = {"Retry-After": "1"} if error.status == 429 else None
        return JSONResponse({"detail": error.message}, status_code=error.status, headers=headers)

    @staticmethod
    def _query(params) -> dict:
        return {
            "text": params.text,
            "item_id": params.id,
            "k": params.k,
            "mode": params.mode,
            "hybrid_weight": params.hybrid_weight,
            "text_weight": params.text_weight,
            "text_delta": params.text_delta,
        }

    @staticmethod
    def _json(body: dict):
        import json

        # serialised by hand: FastAPI's generic encoder walks every value, json.dumps doesn't
        return Response(json.dumps(body), media_type="application/json")

    async def _search_form(self, request, body: bytes) -> dict:

        async def replay():  # the capped body, read once, parsed from memory
            return {"type": "http.request", "body": body, "more_body": False}

        form = await Request(request.scope, replay).form(max_files=1, max_fields=16)
        upload = form.get("image")
        fields = {k: v for k, v in form.items() if k != "image" and v != ""}
        try:
            check_strings(fields)
        except BadRequest as error:
            raise HTTPException(400, str(error)) from None
        params = validate(fields)
        if upload is None or isinstance(upload, str):
            return await self.service.search(**self._query(params))
        data = await upload.read(self.config.max_upload_bytes + 1)
        if len(data) > self.config.max_upload_bytes:
            raise HTTPException(413, self.too_large)
        return await self.service.search_upload(data, **self._query(params))

    async def read_capped(self, request, limit: int) -> bytes:
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise HTTPException(413, self.too_large)
        chunks, size = [], 0
        try:
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise HTTPException(413, self.too_large)
                chunks.append(chunk)
        except ClientDisconnect:  # gone, or cut off by the request deadline (.serving)
            raise HTTPException(400, "the client went away mid-request") from None
        return b"".join(chunks)


def create_app(
    index_dir: str | Path | Mapping[str, str | Path] | Sequence[tuple[str, str | Path]] | None,
    config: ServerConfig | None = None,
    searcher: Searcher | None = None,
):
    """The app for ``index_dir`` — one directory, or ``{name: directory}`` / ``[(name,
    directory)]`` for several (a name may hold an image and a text index), the first answering
    clipforge's own routes (:mod:`.indices`) — or an already opened ``searcher``;
    ``app.state.service``, ``app.state.searcher`` and ``app.state.indexes`` give the objects."""
    from fastapi import FastAPI

    config = config or ServerConfig()
    file_urls = FileUrls(allowed_folders(config.image_url_folders), config.max_upload_bytes)
    named: list[tuple[str, str | Path | None]]
    if index_dir is None or isinstance(index_dir, (str, Path)):
        named = [(default_name(index_dir) if index_dir is not None else "index", index_dir)]
    elif isinstance(index_dir, Mapping):
        named = list(index_dir.items())
    else:
        named = list(index_dir)
    indexes = IndexSet.open(named, config, searcher)
    service = indexes.default
    app = FastAPI(
        lifespan=indexes.lifespan,
        title="clipforge search",
        version="1",
        description="Text, image and composed search over one or more indexes.",
    )
    app.state.service, app.state.searcher = service, service.searcher
    app.state.indexes = indexes
    routes = SearchRoutes(service)
    routes.install(app)
    knn = KnnService(indexes, file_urls)
    KnnRoutes(knn, routes.read_capped, config.max_upload_bytes).install(app)
    # added last = outermost: the Host check runs first, then the key, then timing
    app.add_middleware(MetricsMiddleware, metrics=service.metrics)
    if config.api_key:
        app.add_middleware(ApiKeyMiddleware, api_key=config.api_key)
    if config.allowed_hosts:
        from starlette.middleware.trustedhost import TrustedHostMiddleware

        app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(config.allowed_hosts))
    if config.cors_origins:  # outermost: a browser's preflight carries no API key
        from starlette.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(config.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["content-type", "x-api-key", "authorization"],
        )
    return app
