"""The gateway's Prometheus metrics (``GET /metrics``), in a registry of each app's own.

- ``zooter_requests_total{endpoint, status}``: answered requests by endpoint and HTTP status;
- ``zooter_completions_total{candidate, how}``: chat completions by the candidate that answered and how
  it was picked (``routed``, ``direct`` by name, ``fallback`` after the routed choice failed);
- ``zooter_upstream_attempts_total{candidate, outcome}``: every call to an upstream (``ok``, ``4xx``,
  ``5xx``, ``timeout``, ``connection``); errors per candidate are the outcomes other than ``ok``;
- ``zooter_fallbacks_total{from_candidate, to_candidate}``: a request moved on after an upstream failed;
- ``zooter_routing_seconds``: a routing request's wait in the batcher plus the model call;
- ``zooter_routing_batch_queries`` and ``zooter_router_seconds``: queries per model call, and its time;
- ``zooter_upstream_seconds{candidate}``: one upstream call, to the response headers when streaming,
  else to the whole body;
- ``zooter_router_ready``: 1 once the router is loaded.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

FAST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
UPSTREAM_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class Metrics:
    """The gateway's counters and histograms (see the module docstring)."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("zooter_requests", "Answered requests", ["endpoint", "status"], registry=r)
        self.completions = Counter(
            "zooter_completions", "Chat completions by answering candidate", ["candidate", "how"], registry=r
        )
        self.attempts = Counter(
            "zooter_upstream_attempts", "Upstream calls by outcome", ["candidate", "outcome"], registry=r
        )
        self.fallbacks = Counter(
            "zooter_fallbacks", "Moves to the next candidate", ["from_candidate", "to_candidate"], registry=r
        )
        self.routing_seconds = Histogram(
            "zooter_routing_seconds", "Batcher wait plus model call", buckets=FAST_BUCKETS, registry=r
        )
        self.batch_queries = Histogram(
            "zooter_routing_batch_queries", "Queries per model call", buckets=BATCH_BUCKETS, registry=r
        )
        self.router_seconds = Histogram("zooter_router_seconds", "One model call", buckets=FAST_BUCKETS, registry=r)
        self.upstream_seconds = Histogram(
            "zooter_upstream_seconds", "One upstream call", ["candidate"], buckets=UPSTREAM_BUCKETS, registry=r
        )
        self.ready = Gauge("zooter_router_ready", "1 once the router is loaded", registry=r)

    def batch(self, queries: int, seconds: float) -> None:
        self.batch_queries.observe(queries)
        self.router_seconds.observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
