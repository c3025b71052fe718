"""Requests through the gateway, per deployment and per second, over the last few minutes:
what the UI's live request-rate and latency charts draw.

Each deployment has a ring of ``window_s`` one-second slots (requests, failed requests, the
sum of their latencies); a slot is reused when its second comes round again, so memory is
fixed per deployment and nothing needs sweeping. Counts are this server process's own: with
several labdeck replicas behind a Service, each shows the requests it forwarded (Prometheus'
``/metrics`` is where totals across replicas belong). Nothing here is persisted: a restart
starts the charts afresh, which is what a live view needs.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Any

WINDOW_S = 300


class _Ring:
    __slots__ = ("errors", "latency", "requests", "seconds")

    def __init__(self, size: int) -> None:
        self.seconds = [-1] * size
        self.requests = [0] * size
        self.errors = [0] * size
        self.latency = [0.0] * size


class TrafficStats:
    """Per-second request counts, failures and latency sums of every deployment."""

    def __init__(self, window_s: int = WINDOW_S, clock: Callable[[], float] = time.time) -> None:
        self.window_s = window_s
        self._clock = clock
        self._rings: dict[str, _Ring] = {}
        # the gateway records from the event loop; a read may come from a worker thread
        self._lock = threading.Lock()

    def record(self, deployment: str, status: int, seconds: float) -> None:
        """One request answered with ``status`` after ``seconds``; 5xx and 429 count as failed."""
        now = int(self._clock())
        slot = now % self.window_s
        with self._lock:
            ring = self._rings.get(deployment)
            if ring is None:
                ring = self._rings[deployment] = _Ring(self.window_s)
            if ring.seconds[slot] != now:
                ring.seconds[slot] = now
                ring.requests[slot] = ring.errors[slot] = 0
                ring.latency[slot] = 0.0
            ring.requests[slot] += 1
            ring.errors[slot] += status >= 500 or status == 429
            ring.latency[slot] += seconds

    def forget(self, deployment: str) -> None:
        with self._lock:
            self._rings.pop(deployment, None)

    def series(self, deployment: str, last_s: int | None = None) -> dict[str, Any]:
        """The last ``last_s`` whole seconds (all of the window by default), oldest first:
        ``requests`` and ``errors`` per second, and ``latency_ms``, the mean latency of the
        second's requests (None for a second without any)."""
        span = self.window_s if last_s is None else max(1, min(last_s, self.window_s))
        # the current second is still filling: the series ends with the last complete one
        end = int(self._clock()) - 1
        start = end - span + 1
        requests, errors, latency = [0] * span, [0] * span, [None] * span
        with self._lock:
            ring = self._rings.get(deployment)
            if ring is not None:
                for i, second in enumerate(range(start, end + 1)):
                    slot = second % self.window_s
                    if ring.seconds[slot] == second and ring.requests[slot]:
                        requests[i] = ring.requests[slot]
                        errors[i] = ring.errors[slot]
                        latency[i] = round(ring.latency[slot] / ring.requests[slot] * 1000, 3)
        total = sum(requests)
        spent = [value * count for value, count in zip(latency, requests, strict=True) if value is not None]
        return {
            "deployment": deployment,
            "interval_s": 1,
            "start": start,
            "end": end,
            "requests": requests,
            "errors": errors,
            "latency_ms": latency,
            "total_requests": total,
            "total_errors": sum(errors),
            "mean_latency_ms": round(math.fsum(spent) / total, 3) if total else None,
        }
