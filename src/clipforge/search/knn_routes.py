"""clip-retrieval's HTTP routes, beside clipforge's own (:mod:`.server`)::

    POST /knn-service    {"text" | "image" | "image_url" | "embedding_input", "modality",
                          "num_images", "num_result_ids", "indice_name", "deduplicate", …}
                         → [{"id", "similarity", "caption", "image_path", "url", …}, …]
    GET  /indices-list   → ["name", …], the default index first
    POST /metadata       {"ids": [...], "indice_name"} → [{"id", "metadata": {…}}, …]

Same keys and shapes as clip-retrieval's ``clip_back.py`` (:mod:`.knn_request` lists what is
accepted, :mod:`.knn` what is answered), so ``ClipClient`` works against ``clipforge serve``, and
so does clip-retrieval's web front once ``serve --cors-origin`` names the page's origin. Bodies
are parsed as strictly as ``/search``'s (:mod:`.request`); errors are ``{"detail": …}`` with a
4xx, never a 500.
"""

# no `from __future__ import annotations`: FastAPI reads the handlers' annotations at runtime

import json

from fastapi import HTTPException, Request
from fastapi.responses import Response

from .knn import KnnService
from .knn_request import KnnRequest, MetadataRequest
from .request import BadRequest, parse_json_body, validate

JSON_ALLOWANCE = 64 * 1024  # the keys beside a base64 image


def checked(model, body: bytes):
    """``model`` validated from a strict JSON body: 400 unreadable, 422 invalid."""
    try:
        raw = parse_json_body(body)
    except BadRequest as error:
        raise HTTPException(400, str(error)) from None
    except TypeError as error:
        raise HTTPException(422, str(error)) from None
    return validate(raw, model)


class KnnRoutes:
    """The HTTP face of a :class:`.knn.KnnService`; ``read_body(request, limit)`` is the
    server's capped body reader (413 past ``limit``)."""

    def __init__(self, knn: KnnService, read_body, max_upload_bytes: int):
        self.knn, self.read_body = knn, read_body
        self.body_limit = (max_upload_bytes + 2) // 3 * 4 + JSON_ALLOWANCE  # base64 inflates

    def install(self, app) -> None:
        app.add_api_route(
            "/knn-service",
            self.knn_service,
            methods=["POST"],
            openapi_extra=_docs(KnnRequest),
            summary="clip-retrieval knn-service",
        )
        app.add_api_route(
            "/indices-list", self.indices_list, methods=["GET"], summary="clip-retrieval indices"
        )
        app.add_api_route(
            "/metadata",
            self.metadata,
            methods=["POST"],
            openapi_extra=_docs(MetadataRequest),
            summary="clip-retrieval metadata",
        )

    async def knn_service(self, request: Request) -> Response:
        """Nearest neighbours of a text, an image (base64 or file:// URL) or an embedding."""
        body = await self.read_body(request, self.body_limit)
        return _json(await self.knn.knn(checked(KnnRequest, body)))

    def indices_list(self) -> list:
        """The names ``indice_name`` may take, the default first."""
        return self.knn.indices()

    async def metadata(self, request: Request) -> Response:
        """Metadata rows of ids returned by /knn-service."""
        body = await self.read_body(request, JSON_ALLOWANCE)
        params = checked(MetadataRequest, body)
        return _json(await self.knn.metadata(params.ids, params.indice_name))


def _json(body) -> Response:
    return Response(json.dumps(body), media_type="application/json")


def _docs(model) -> dict:
    schema = model.model_json_schema()
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}
