"""The model server's Prometheus metrics, on a registry of its own (never the global one,
so two servers in one process do not collide): requests by protocol, model and status,
latency and batch-size histograms, requests in flight, model load time, feedback.

With several workers, each writes to a shared folder (Prometheus multiprocess mode) and
``/metrics`` on any of them reports all of them.
"""

from __future__ import annotations

import os
import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import multiprocess

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class ServingMetrics:
    def __init__(self, model: str):
        self.model = model
        self.registry = CollectorRegistry()
        shared = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        self.multiprocess = bool(shared)
        r = self.registry
        self.requests = Counter("labdeck_serving_requests", "Inference requests", ["protocol", "model", "code"], registry=r)
        self.latency = Histogram(
            "labdeck_serving_request_seconds", "Time to answer an inference request", ["protocol", "model"],
            buckets=LATENCY_BUCKETS, registry=r,
        )
        self.batch = Histogram("labdeck_serving_batch_rows", "Rows per prediction call", ["model"], buckets=BATCH_BUCKETS, registry=r)
        self.in_flight = Gauge(
            "labdeck_serving_in_flight", "Requests being answered", ["model"], registry=r, multiprocess_mode="livesum"
        )
        self.load_seconds = Gauge(
            "labdeck_serving_model_load_seconds", "Time the model took to load and warm up", ["model"], registry=r,
            multiprocess_mode="max",
        )
        self.feedback = Counter("labdeck_serving_feedback", "Seldon feedback messages received", ["model"], registry=r)
        self.compiled = Gauge(
            "labdeck_serving_compiled", "1 when the compiled form (--compile) answers, 0 when the original runtime does",
            ["model", "target"], registry=r, multiprocess_mode="min",
        )
        self._latency: dict[str, Any] = {}
        self._requests: dict[tuple[str, int], Any] = {}
        self._batch = self.batch.labels(model)
        self._in_flight = self.in_flight.labels(model)

    def observe(self, protocol: str, code: int, started: float) -> None:
        """One answered request (bound label children are cached: this is per request)."""
        latency = self._latency.get(protocol)
        if latency is None:
            latency = self._latency[protocol] = self.latency.labels(protocol, self.model)
        latency.observe(time.perf_counter() - started)
        counter = self._requests.get((protocol, code))
        if counter is None:
            counter = self._requests[(protocol, code)] = self.requests.labels(protocol, self.model, str(code))
        counter.inc()

    def observe_batch(self, rows: int) -> None:
        self._batch.observe(rows)

    def render(self) -> bytes:
        if self.multiprocess:
            collected = CollectorRegistry()
            multiprocess.MultiProcessCollector(collected)
            return generate_latest(collected)
        return generate_latest(self.registry)
