"""The gateway's per-second request counts (``TrafficStats``), on a clock the test moves."""

from __future__ import annotations

from labdeck.deployments.traffic import TrafficStats


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_counts_failures_and_mean_latency_per_second() -> None:
    clock = Clock(1000.2)
    stats = TrafficStats(window_s=10, clock=clock)
    stats.record("iris", 200, 0.010)
    stats.record("iris", 200, 0.030)
    stats.record("iris", 503, 0.002)
    clock.now = 1002.5
    stats.record("iris", 200, 0.004)
    stats.record("other", 200, 9.0)
    clock.now = 1003.0
    series = stats.series("iris", 4)
    assert (series["start"], series["end"]) == (999, 1002)
    assert series["requests"] == [0, 3, 0, 1]
    assert series["errors"] == [0, 1, 0, 0]
    assert series["latency_ms"] == [None, 14.0, None, 4.0]
    assert series["total_requests"] == 4 and series["total_errors"] == 1
    assert series["mean_latency_ms"] == 11.5


def test_the_current_second_is_left_out_until_it_is_complete() -> None:
    clock = Clock(50.0)
    stats = TrafficStats(window_s=5, clock=clock)
    stats.record("iris", 200, 0.001)
    assert stats.series("iris")["total_requests"] == 0
    clock.now = 51.0
    assert stats.series("iris")["requests"] == [0, 0, 0, 0, 1]


def test_a_slot_is_reused_when_its_second_comes_round_again() -> None:
    clock = Clock(100.0)
    stats = TrafficStats(window_s=3, clock=clock)
    for _ in range(5):
        stats.record("iris", 200, 0.001)
    clock.now = 103.0  # the same slot, three seconds later: the old count must not leak in
    stats.record("iris", 200, 0.002)
    clock.now = 104.0
    series = stats.series("iris")
    assert series["requests"] == [0, 0, 1] and series["latency_ms"] == [None, None, 2.0]


def test_unknown_and_forgotten_deployments_have_empty_series() -> None:
    clock = Clock(10.0)
    stats = TrafficStats(window_s=4, clock=clock)
    stats.record("iris", 200, 0.1)
    stats.forget("iris")
    clock.now = 11.0
    for name in ("iris", "never-seen"):
        series = stats.series(name)
        assert series["requests"] == [0, 0, 0, 0] and series["mean_latency_ms"] is None
    assert len(stats.series("iris", 999)["requests"]) == 4
