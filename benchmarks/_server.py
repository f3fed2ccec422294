"""A ``clipforge serve`` subprocess for the HTTP benchmarks (search.py, upload_pressure.py):
started on a free loopback port, ready once ``/healthz`` answers, and stopped with Ctrl-C (then
killed) however the benchmark ends."""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def serving(
    index_dir: Path, serve_args: list[str], cwd: Path, start_timeout: float = 300
) -> Iterator[tuple[subprocess.Popen, int]]:
    """``(server process, port)`` of ``clipforge serve --index index_dir *serve_args``."""
    import httpx

    port = free_port()
    command = [sys.executable, "-m", "clipforge", "serve", "--index", str(index_dir)]
    server = subprocess.Popen(
        [*command, "--port", str(port), *serve_args], cwd=cwd, stdout=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + start_timeout
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.5)
        yield server, port
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
