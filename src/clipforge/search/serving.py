"""Run the app with uvicorn, with a deadline on reading each request.

uvicorn closes idle keep-alive connections (``timeout_keep_alive``) but waits forever for a
request that is sent slowly or never finished: a client that sends half its headers, or a
``Content-Length`` it never delivers, holds a connection and a buffer indefinitely (slowloris).
:func:`deadline_protocol` wraps uvicorn's HTTP protocol (httptools or h11, whichever uvicorn
picked): from the moment a connection opens, and again after each response, the client has
``request_timeout`` seconds to deliver a complete request (headers and body). If it has not, the
server answers ``408 Request Timeout`` and closes the connection. Time the app spends answering
does not count: a slow search is never cut off.

Only public asyncio protocol methods and the request cycle's state flags (``response_started``,
``response_complete``, ``more_body``, shared by both of uvicorn's protocols) are used; the
live-server test in tests/test_search_api.py holds this against uvicorn upgrades.
"""

from __future__ import annotations

import asyncio

TIMEOUT_RESPONSE = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: 16\r\nconnection: close\r\n\r\nrequest timeout\n"
)


def deadline_protocol(base: type, request_timeout: float) -> type:
    """``base`` (a uvicorn HTTP protocol class) that times out slow requests (module doc)."""

    class DeadlineProtocol(base):
        _deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            self._arm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm()

        def connection_lost(self, exc) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            self._disarm()
            self._deadline = self.loop.call_later(request_timeout, self._expired)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _expired(self) -> None:
            self._deadline = None
            if self.transport.is_closing():
                return
            cycle = self.cycle
            answering = (
                cycle is not None
                and not cycle.response_complete
                and (cycle.response_started or not cycle.more_body)
            )
            if answering:  # the request is in; the app is working on it
                self._arm()
                return
            if cycle is None or cycle.response_complete or not cycle.response_started:
                self.transport.write(TIMEOUT_RESPONSE)
            self.transport.close()

    DeadlineProtocol.__name__ = f"Deadline{base.__name__}"
    return DeadlineProtocol


def uvicorn_config(
    app,
    host: str,
    port: int,
    request_timeout: float,
    keep_alive_timeout: float = 5.0,
    log_level: str = "warning",
):
    """A ``uvicorn.Config`` for ``app`` with the request deadline (module doc)."""
    from uvicorn import Config
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    return Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        http=deadline_protocol(AutoHTTPProtocol, request_timeout),
        timeout_keep_alive=int(max(1, keep_alive_timeout)),
        h11_max_incomplete_event_size=64 * 1024,
    )  # request line + headers


def run_server(app, config) -> None:
    """Serve ``app`` until interrupted, on ``config.host``:``config.port`` (a ServerConfig)."""
    from uvicorn import Server

    try:
        Server(uvicorn_config(app, config.host, config.port, config.request_timeout)).run()
    except KeyboardInterrupt:  # Ctrl-C is how a foreground server is stopped
        pass
