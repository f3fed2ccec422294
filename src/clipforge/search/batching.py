"""Dynamic micro-batching: concurrent requests share one forward pass and one FAISS search.

A single short query leaves the CPU waiting on memory and Python: the text tower's weights are
read once per forward whatever the batch, and one FAISS call over 8 queries costs little more than
one over a single query. Callers hand their item to :meth:`MicroBatcher.submit` and get a future;
one worker thread takes everything queued (up to ``max_batch``), processes it in one call and
resolves each caller's future with its own result. Nothing waits for a batch to fill: items that
arrive while a batch runs form the next one, so a lone request is served at once and a burst is
served in a few calls.

The server awaits these futures on its event loop (``asyncio.wrap_future``), so a text search
never occupies a thread-pool thread while it waits.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class MicroBatcher(Generic[Item, Result]):
    """Run ``process(items) -> results`` (one result per item, in order) over queued items."""

    def __init__(
        self,
        process: Callable[[list[Item]], Sequence[Result]],
        max_batch: int = 32,
        name: str = "micro-batcher",
    ):
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        self.process, self.max_batch = process, max_batch
        self._queue: queue.Queue = queue.Queue()
        self._worker = threading.Thread(target=self._run, name=name, daemon=True)
        self._worker.start()

    def submit(self, item: Item) -> Future:
        """A future of ``item``'s result."""
        future: Future = Future()
        self._queue.put((item, future))
        return future

    def __call__(self, item: Item) -> Result:
        """``item``'s result (blocks until its batch is done)."""
        return self.submit(item).result()

    def close(self) -> None:
        """Stop the worker after the items already queued."""
        self._queue.put(None)

    def _take_batch(self, first) -> list:
        batch = [first]
        while len(batch) < self.max_batch:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:  # close(): finish this batch, then stop
                self._queue.put(None)
                break
            batch.append(item)
        return batch

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = self._take_batch(first)
            items, futures = [item for item, _ in batch], [future for _, future in batch]
            try:
                results = self.process(items)
                if len(results) != len(items):
                    raise RuntimeError(f"a batch of {len(items)} gave {len(results)} results")
            except Exception as error:  # noqa: BLE001 - handed to every waiting caller
                for future in futures:
                    future.set_exception(error)
                continue
            for future, result in zip(futures, results):
                future.set_result(result)


def started_pool(workers: int, name: str) -> ThreadPoolExecutor:
    """A thread pool whose ``workers`` threads are already running. ``ThreadPoolExecutor``
    starts them one per ``submit``, and starting a thread waits until the OS schedules it:
    on a loaded machine that was 0.2 s of a server's event loop, at the first busy moment."""
    pool = ThreadPoolExecutor(workers, thread_name_prefix=name)
    ready = threading.Barrier(workers + 1)
    for _ in range(workers):
        pool.submit(ready.wait, 60)
    ready.wait(60)
    return pool
