"""Pure ASGI middleware of the server: request metrics and the optional API key.

Host-header checking (against DNS rebinding) is Starlette's own ``TrustedHostMiddleware``.
"""

from __future__ import annotations

import hmac
import json
import time

from .metrics import Metrics

OPEN_PATHS = frozenset({"/healthz"})  # answered without the API key (load balancers)


class MetricsMiddleware:
    """Time every HTTP request, label it by its route template."""

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
                "/static" if scope["path"].startswith("/static/") else "unmatched"
            )
            self.metrics.observe(route, scope["method"], status, time.perf_counter() - started)


def presented_key(headers: list[tuple[bytes, bytes]]) -> bytes | None:
    """The key of an ``X-API-Key: KEY`` or ``Authorization: Bearer KEY`` header."""
    for name, value in headers:
        if name == b"x-api-key":
            return value.strip()
        if name == b"authorization" and value[:7].lower() == b"bearer ":
            return value[7:].strip()
    return None


class ApiKeyMiddleware:
    """401 for every request but :data:`OPEN_PATHS` unless it carries ``api_key`` (compared in
    constant time)."""

    def __init__(self, app, api_key: str):
        if not api_key:
            raise ValueError("the API key must not be empty")
        self.app, self.api_key = app, api_key.encode()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        key = presented_key(scope.get("headers", []))
        if key is not None and hmac.compare_digest(key, self.api_key):
            await self.app(scope, receive, send)
            return
        body = json.dumps(
            {
                "detail": "missing or wrong API key (send X-API-Key: KEY or "
                "Authorization: Bearer KEY)"
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"www-authenticate", b'Bearer realm="clipforge"'),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
