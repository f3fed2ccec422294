"""Request metrics for ``serve`` with ``prometheus_client`` (``GET /metrics``, text format 0.0.4).

Per route template (``/items/{item_id}``, not each id) and status:

- ``clipforge_requests_total{route, method, status}``      counter
- ``clipforge_request_duration_seconds{route}``              histogram (scrape-friendly buckets)
- ``clipforge_request_latency_seconds{route, quantile}``     p50/p90/p99 over the last ``window``
  requests of the route (readable by eye and by ``curl``; ``prometheus_client``'s own Summary has
  no quantiles, so a small collector computes them)
- ``clipforge_uploads_rejected_total``                        uploads refused as busy (429)
- gauges that describe the index (items, bytes, dimension).

Each app has its own :class:`~prometheus_client.CollectorRegistry`, so several apps in one process
(tests, several indexes) never clash in the library's global registry.
"""

from __future__ import annotations

import threading
from collections import defaultdict, deque
from collections.abc import Callable

import numpy as np

from .deps import require

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
QUANTILES = (0.5, 0.9, 0.99)


class _RecentLatency:
    """Collector of the recent-window quantiles (a Prometheus ``summary`` with quantile labels)."""

    def __init__(self, window: int):
        self._lock = threading.Lock()
        self._recent: dict[str, deque] = defaultdict(lambda: deque(maxlen=window))
        self._sums: dict[str, float] = defaultdict(float)
        self._counts: dict[str, int] = defaultdict(int)

    def observe(self, route: str, seconds: float) -> None:
        with self._lock:
            self._recent[route].append(seconds)
            self._sums[route] += seconds
            self._counts[route] += 1

    def quantiles(self, route: str) -> dict[float, float]:
        with self._lock:
            recent = np.asarray(self._recent.get(route, ()), dtype=np.float64)
        if recent.size == 0:
            return {}
        return {q: float(np.quantile(recent, q)) for q in QUANTILES}

    def collect(self):
        from prometheus_client.core import Metric

        metric = Metric(
            "clipforge_request_latency_seconds",
            "Latency quantiles over recent requests.",
            "summary",
        )
        with self._lock:
            routes = sorted(self._counts)
            sums, counts = dict(self._sums), dict(self._counts)
        for route in routes:
            for quantile, value in self.quantiles(route).items():
                metric.add_sample(
                    "clipforge_request_latency_seconds",
                    {"route": route, "quantile": str(quantile)},
                    value,
                )
            metric.add_sample(
                "clipforge_request_latency_seconds_sum", {"route": route}, sums[route]
            )
            metric.add_sample(
                "clipforge_request_latency_seconds_count", {"route": route}, counts[route]
            )
        yield metric


class Metrics:
    """The server's registry; ``gauges`` maps a name to (function giving the value, help)."""

    def __init__(
        self, gauges: dict[str, tuple[Callable[[], float], str]] | None = None, window: int = 10_000
    ):
        require("prometheus_client")
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry(auto_describe=True)
        self._requests = Counter(
            "clipforge_requests",
            "HTTP requests by route, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self._duration = Histogram(
            "clipforge_request_duration_seconds",
            "Request latency.",
            ["route"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        self.uploads_rejected = Counter(
            "clipforge_uploads_rejected",
            "Image uploads refused with 429 (all decode slots busy).",
            registry=self.registry,
        )
        self._recent = _RecentLatency(window)
        self.registry.register(self._recent)
        for name, (value, help_text) in (gauges or {}).items():
            Gauge(name, help_text, registry=self.registry).set_function(value)

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        self._requests.labels(route, method, str(status)).inc()
        self._duration.labels(route).observe(seconds)
        self._recent.observe(route, seconds)

    def quantiles(self, route: str) -> dict[float, float]:
        return self._recent.quantiles(route)

    def render(self) -> bytes:
        from prometheus_client import generate_latest

        return generate_latest(self.registry)
