"""Uploaded query images: a pixel cap read from the header, decoding off the event loop, and a
bound on how many are in memory at once.

A 10 MB PNG can hold a 49-megapixel image (147 MB decoded, ~0.3 s of one core). So:

- :func:`decode_capped` reads the header first (``Image.open`` is lazy) and refuses more than
  ``max_pixels`` before a single row is decoded (Pillow's own bomb check, 2 × 89 MP, stays as
  it is: the runtime never changes Pillow globals);
- :class:`UploadSlots` lets ``max_in_flight`` uploads decode and search at once, ``max_waiting``
  more wait their turn, and anything beyond is told to come back (429 + ``Retry-After``), so
  neither memory nor the queue grows with the number of clients;
- the decode runs in :func:`decode_processes`, at a lower CPU priority (nice +10), and a big
  image is shrunk there too, so only a ≤ 1024-px image comes back. Processes, not threads:
  with decoding on threads of the server process, /healthz stalled 150–330 ms while 16 ×
  49-MP uploads decoded (measured; not the GIL, not priority — the 147 MB buffers' memory
  traffic in the server's own address space); in processes its max is 21–38 ms.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor

from PIL import Image, UnidentifiedImageError

DECODE_ERRORS = (
    UnidentifiedImageError,
    OSError,
    SyntaxError,
    ValueError,
    Image.DecompressionBombError,
)


class UploadRejected(Exception):
    """An upload refused with an HTTP ``status`` (400, 429) and a ``message``."""

    def __init__(self, status: int, message: str):
        super().__init__(status, message)  # both in args: it crosses a process boundary
        self.status, self.message = status, message

    def __str__(self) -> str:
        return self.message


# Uploads whose long side exceeds this are shrunk (aspect kept) right after decoding, on the
# low-priority decode thread. Every model's input is far smaller (≤ 336 px), so results do not
# change in any way that matters, but the search thread, at normal priority, no longer resizes a
# 49-megapixel image: two such resizes took both cores and stalled /healthz by ~300 ms.
WORKING_SIDE = 1024


def decode_capped(data: bytes, max_pixels: int) -> Image.Image:
    """The decoded image (at most ``WORKING_SIDE`` on its long side), or UploadRejected(400) —
    over ``max_pixels`` by its header, or not decodable. Called in a worker thread."""
    try:
        picture = Image.open(io.BytesIO(data))  # header only
        width, height = picture.size
        if width * height > max_pixels:
            raise UploadRejected(
                400, f"image too large: {width}×{height} pixels (limit {max_pixels})"
            )
        picture.load()
        if max(width, height) > WORKING_SIDE:  # the costly resize, here at low priority
            picture.thumbnail((WORKING_SIDE, WORKING_SIDE), Image.Resampling.BICUBIC)
    except DECODE_ERRORS as error:
        raise UploadRejected(
            400, f"cannot decode the uploaded image: {type(error).__name__}"
        ) from None
    return picture


def warm_up() -> None:
    """Import Pillow's format plugins and decode a tiny PNG now: done lazily by the first
    upload, the imports held the GIL for ~0.5 s while that upload was being handled."""
    Image.init()
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, format="PNG")
    decode_capped(buffer.getvalue(), 64)


def _lower_priority() -> None:
    """Nice this decode process (+10), where the OS has nice."""
    if hasattr(os, "nice"):
        with contextlib.suppress(OSError):
            os.nice(10)


def decode_processes(count: int) -> ProcessPoolExecutor:
    """``count`` processes to decode uploads in (:func:`start_decoders` starts them). On Linux
    they fork from a forkserver that has imported this module (and Pillow) once; elsewhere they
    are spawned."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        forkserver = multiprocessing.get_context("forkserver")
        forkserver.set_forkserver_preload([__name__])
        return ProcessPoolExecutor(count, mp_context=forkserver, initializer=_lower_priority)
    spawn = multiprocessing.get_context("spawn")
    return ProcessPoolExecutor(count, mp_context=spawn, initializer=_lower_priority)


def start_decoders(pool: ProcessPoolExecutor, count: int) -> None:
    """Start every decode process and load Pillow's plugins in each, now rather than during
    the first uploads (blocking: call it off the event loop)."""
    list(pool.map(_warmed, range(2 * count)))


def _warmed(_: int) -> None:
    warm_up()


class UploadSlots:
    """``max_in_flight`` uploads at a time, ``max_waiting`` queued, the rest rejected (429)."""

    def __init__(self, max_in_flight: int, max_waiting: int):
        if max_in_flight < 1 or max_waiting < 0:
            raise ValueError(
                f"upload slots: max_in_flight ≥ 1 and max_waiting ≥ 0, got "
                f"{max_in_flight} and {max_waiting}"
            )
        self.max_in_flight, self.max_waiting = max_in_flight, max_waiting
        self._semaphore: asyncio.Semaphore | None = None
        self.in_flight = self.waiting = 0

    @contextlib.asynccontextmanager
    async def slot(self):
        if self._semaphore is None:  # made on the server's own event loop
            self._semaphore = asyncio.Semaphore(self.max_in_flight)
        if self.in_flight >= self.max_in_flight and self.waiting >= self.max_waiting:
            raise UploadRejected(
                429,
                f"busy: {self.in_flight} image uploads in progress and "
                f"{self.waiting} waiting; retry shortly",
            )
        self.waiting += 1
        try:
            await self._semaphore.acquire()
        finally:
            self.waiting -= 1
        self.in_flight += 1
        try:
            yield
        finally:
            self.in_flight -= 1
            self._semaphore.release()
