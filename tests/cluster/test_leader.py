"""The Lease elector against the fake API server (``tests/compute/k8s_kit.py``, which
guards Lease writes by ``resourceVersion`` as the API server does): exactly one of several
candidates wins, even when they try at the same moment; the leader renews; a dead leader's
Lease is taken over once it expires; a clean shutdown releases it so a successor leads at
once; a leader that cannot renew, or whose Lease another took, stops leading."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from labdeck.cluster.leader import LeaseElector
from labdeck.config import LeaderElectionSettings
from tests.compute.k8s_kit import FakeKube

FAST = LeaderElectionSettings(
    enabled=True, namespace="labdeck", lease_duration_s=2, renew_deadline_s=1.5, retry_period_s=0.2
)


@pytest.fixture
def kube() -> Iterator[FakeKube]:
    fake = FakeKube()
    yield fake
    fake.stop()


class Candidate:
    """An elector whose callbacks write down what leading did."""

    def __init__(self, kube: FakeKube, folder: Path, identity: str, settings: LeaderElectionSettings = FAST):
        self.calls: list[str] = []

        async def started() -> None:
            self.calls.append("started")

        async def stopped() -> None:
            self.calls.append("stopped")

        self.elector = LeaseElector(
            settings,
            kubeconfig=str(kube.kubeconfig(folder)),
            identity=identity,
            on_started_leading=started,
            on_stopped_leading=stopped,
        )

    def try_once(self) -> bool:
        return asyncio.run(self.elector.try_once())


def lease(kube: FakeKube) -> dict[str, Any]:
    found = kube.get("leases", "labdeck", "labdeck-leader")
    assert found is not None
    return found


def eventually(check: Callable[[], bool], what: str, deadline_s: float = 30) -> None:
    deadline = time.monotonic() + deadline_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.05)


def test_the_first_candidate_creates_the_lease_and_the_next_waits(kube: FakeKube, tmp_path: Path) -> None:
    a, b = Candidate(kube, tmp_path, "a"), Candidate(kube, tmp_path, "b")
    assert a.try_once() is True
    assert a.calls == ["started"]
    created = lease(kube)
    assert created["spec"]["holderIdentity"] == "a"
    assert created["spec"]["leaseDurationSeconds"] == 2
    assert created["spec"]["leaseTransitions"] == 0

    assert b.try_once() is False
    assert b.calls == [] and b.elector.holder == "a"
    assert lease(kube)["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]


def test_the_leader_renews_keeping_its_acquire_time(kube: FakeKube, tmp_path: Path) -> None:
    a = Candidate(kube, tmp_path, "a")
    assert a.try_once()
    first = lease(kube)
    time.sleep(0.01)  # a later renewTime (microseconds) than the first write
    assert a.try_once()
    renewed = lease(kube)
    assert renewed["spec"]["holderIdentity"] == "a"
    assert renewed["spec"]["renewTime"] > first["spec"]["renewTime"]
    assert renewed["spec"]["acquireTime"] == first["spec"]["acquireTime"]
    assert renewed["metadata"]["resourceVersion"] != first["metadata"]["resourceVersion"]
    assert a.calls == ["started"]  # leading started once, not at every renewal


def _race(kube: FakeKube, tmp_path: Path, count: int) -> list[bool]:
    candidates = [Candidate(kube, tmp_path, f"c{i}") for i in range(count)]
    barrier = threading.Barrier(count)
    results: list[bool] = [False] * count

    def attempt(i: int) -> None:
        barrier.wait()
        results[i] = candidates[i].elector._try()

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [c.elector.identity for c, won in zip(candidates, results) if won]
    assert len(winners) == 1, winners
    assert lease(kube)["spec"]["holderIdentity"] == winners[0]
    return results


def test_candidates_creating_the_lease_at_once_make_one_leader(kube: FakeKube, tmp_path: Path) -> None:
    results = _race(kube, tmp_path, 8)
    # those that read before the Lease existed each tried to create it; one was accepted
    assert 1 <= len(kube.made("POST")) <= 8 and results.count(True) == 1


def test_candidates_taking_a_free_lease_at_once_make_one_leader(kube: FakeKube, tmp_path: Path) -> None:
    first = Candidate(kube, tmp_path, "first")
    assert first.try_once()
    asyncio.run(first.elector.stop())  # released: nobody holds it
    assert "holderIdentity" not in lease(kube)["spec"]
    results = _race(kube, tmp_path, 8)
    assert results.count(True) == 1


def test_a_dead_leaders_lease_is_taken_over_once_it_expires(kube: FakeKube, tmp_path: Path) -> None:
    a, b = Candidate(kube, tmp_path, "a"), Candidate(kube, tmp_path, "b")
    assert a.try_once()
    assert b.try_once() is False
    # a dies (it never renews again): b takes over once the lease duration has passed
    eventually(b.try_once, "b takes over")
    taken = lease(kube)
    assert taken["spec"]["holderIdentity"] == "b"
    assert taken["spec"]["leaseTransitions"] == 1
    assert b.calls == ["started"]
    # the old leader, back, finds b's name and does not lead
    assert a.try_once() is False
    assert a.calls == ["started", "stopped"]


def test_a_clean_shutdown_releases_the_lease_so_a_successor_leads_at_once(kube: FakeKube, tmp_path: Path) -> None:
    slow = LeaderElectionSettings(
        enabled=True, namespace="labdeck", lease_duration_s=600, renew_deadline_s=300, retry_period_s=0.2
    )
    a, b = Candidate(kube, tmp_path, "a", slow), Candidate(kube, tmp_path, "b", slow)

    async def scenario() -> None:
        await a.elector.start()  # the loop, as a server runs it
        while not a.elector.leading:
            await asyncio.sleep(0.05)
        assert await b.elector.try_once() is False
        await a.elector.stop()
        # without the release b would wait ten minutes; released, its next try wins
        assert await b.elector.try_once() is True

    asyncio.run(scenario())
    assert a.calls == ["started", "stopped"]
    assert lease(kube)["spec"]["holderIdentity"] == "b"


def test_a_leader_that_cannot_renew_stops_leading(kube: FakeKube, tmp_path: Path) -> None:
    a = Candidate(kube, tmp_path, "a")
    assert a.try_once()
    kube.down = True  # every request answers 503
    eventually(lambda: not a.try_once(), "a stops leading after its renew deadline")
    assert a.calls == ["started", "stopped"]
    kube.down = False
    assert a.try_once()  # its own lease, back: it leads again
    assert a.calls == ["started", "stopped", "started"]


def test_a_leader_whose_lease_was_taken_steps_down_at_once(kube: FakeKube, tmp_path: Path) -> None:
    a = Candidate(kube, tmp_path, "a")
    assert a.try_once()
    taken = lease(kube)
    taken["spec"]["holderIdentity"] = "intruder"
    kube.put("leases", taken)
    assert a.try_once() is False
    assert a.calls == ["started", "stopped"]
    assert a.elector.holder == "intruder"


def test_inconsistent_timings_are_refused_naming_them() -> None:
    with pytest.raises(ValueError, match="retry_period_s < renew_deadline_s < lease_duration_s"):
        LeaderElectionSettings(lease_duration_s=10, renew_deadline_s=10)
