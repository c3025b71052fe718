"""Two real ``labdeck server`` processes on one PostgreSQL database, with leader election on
and a kubeconfig naming the fake API server (``tests/compute/k8s_kit.py``, which keeps the
Lease as the API server would): the schema is upgraded first by ``labdeck db upgrade`` (as
the migration Job does) and both start with ``--no-migrate``; exactly one leads (the
Lease's holder, and the only one running the controllers); both serve the API; killed with
SIGKILL, the leader is replaced by the other once the Lease expires."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.compute.k8s_kit import FakeKube
from tests.waiting import wait_until


@dataclass
class Replica:
    identity: str
    process: subprocess.Popen[bytes]
    log: Path
    url: str = ""

    def detail(self) -> dict[str, Any] | None:
        try:
            answer = httpx.get(self.url + "/health", params={"detail": ""}, timeout=5, trust_env=False)
        except httpx.TransportError:
            return None
        return answer.json() if answer.status_code == 200 else None


@pytest.fixture
def kube() -> Iterator[FakeKube]:
    fake = FakeKube()
    yield fake
    fake.stop()


def _env(kube: FakeKube, folder: Path, identity: str) -> dict[str, str]:
    return {
        **os.environ,
        "HOME": str(folder),
        "LABDECK_CLUSTER__LEADER_ELECTION__ENABLED": "true",
        "LABDECK_CLUSTER__LEADER_ELECTION__NAMESPACE": "labdeck",
        "LABDECK_CLUSTER__LEADER_ELECTION__IDENTITY": identity,
        "LABDECK_CLUSTER__LEADER_ELECTION__LEASE_DURATION_S": "4",
        "LABDECK_CLUSTER__LEADER_ELECTION__RENEW_DEADLINE_S": "3",
        "LABDECK_CLUSTER__LEADER_ELECTION__RETRY_PERIOD_S": "0.5",
        "LABDECK_DEPLOYMENTS__KUBERNETES__KUBECONFIG": str(kube.kubeconfig(folder)),
    }


def _labdeck(*args: str) -> list[str]:
    return [sys.executable, "-m", "labdeck", *args]


@pytest.fixture
def replicas(kube: FakeKube, fresh_postgres_url: str, tmp_path: Path) -> Iterator[list[Replica]]:
    upgraded = subprocess.run(
        _labdeck("db", "upgrade", "--database-url", fresh_postgres_url, "--data-dir", str(tmp_path / "job")),
        capture_output=True,
        text=True,
        env=_env(kube, tmp_path, "job"),
        timeout=120,
    )
    assert upgraded.returncode == 0, upgraded.stderr
    assert "upgraded the database from (empty) to" in upgraded.stdout
    started = []
    try:
        for identity in ("server-a", "server-b"):
            folder = tmp_path / identity
            folder.mkdir()
            log = folder / "stderr.log"
            with log.open("wb") as out:
                process = subprocess.Popen(
                    _labdeck(
                        "server", "--port", "0", "--no-migrate", "--data-dir", str(folder / "data"),
                        "--database-url", fresh_postgres_url,
                    ),
                    stdout=subprocess.DEVNULL,
                    stderr=out,
                    env=_env(kube, folder, identity),
                )
            started.append(Replica(identity, process, log))
        for replica in started:

            def address(r: Replica = replica) -> str | None:
                assert r.process.poll() is None, r.log.read_text()
                found = re.search(r"listening at (http://\S+)", r.log.read_text())
                return found.group(1) if found else None

            replica.url = wait_until(address, f"{replica.identity} listens")
        yield started
    finally:
        for replica in started:
            if replica.process.poll() is None:
                replica.process.send_signal(signal.SIGKILL)
            replica.process.wait(timeout=30)


def test_one_replica_leads_both_serve_and_the_other_takes_over_when_it_dies(
    kube: FakeKube, replicas: list[Replica]
) -> None:
    by_name = {r.identity: r for r in replicas}

    def one_leader() -> tuple[Replica, Replica] | None:
        details = {r.identity: r.detail() for r in replicas}
        if any(d is None for d in details.values()):
            return None
        # a replica says "leader" as soon as it holds the Lease; its controllers start just after
        leaders = [name for name, d in details.items() if d["role"] == "leader" and d["controllers"]]  # type: ignore[index]
        lease = kube.get("leases", "labdeck", "labdeck-leader")
        if len(leaders) != 1 or lease is None or lease["spec"].get("holderIdentity") != leaders[0]:
            return None
        (follower,) = set(by_name) - set(leaders)
        if details[follower]["holder"] != leaders[0]:  # type: ignore[index]  # it reads the Lease at its next try
            return None
        return by_name[leaders[0]], by_name[follower]

    leader, follower = wait_until(one_leader, "exactly one replica leads, the Lease's holder")
    leading, following = leader.detail(), follower.detail()
    assert leading is not None and following is not None
    assert leading["controllers"] is True and leading["holder"] == leader.identity
    assert following["controllers"] is False and following["holder"] == leader.identity
    assert following["lease"] == "labdeck/labdeck-leader"
    assert "leading: this replica runs the controllers" in leader.log.read_text()
    assert "leading: this replica runs the controllers" not in follower.log.read_text()

    # both serve the API, over the one database
    created = httpx.post(follower.url + "/api/2.0/mlflow/experiments/create", json={"name": "ha"}, trust_env=False)
    assert created.status_code == 200, created.text
    experiment = created.json()["experiment_id"]
    got = httpx.get(leader.url + "/api/2.0/mlflow/experiments/get", params={"experiment_id": experiment}, trust_env=False)
    assert got.status_code == 200 and got.json()["experiment"]["name"] == "ha"

    leader.process.send_signal(signal.SIGKILL)  # no release: the Lease must expire
    leader.process.wait(timeout=30)

    def took_over() -> dict[str, Any] | None:
        detail = follower.detail()
        return detail if detail is not None and detail["role"] == "leader" and detail["controllers"] else None

    now = wait_until(took_over, f"{follower.identity} takes over")
    assert now["controllers"] is True and now["holder"] == follower.identity
    lease = kube.get("leases", "labdeck", "labdeck-leader")
    assert lease is not None and lease["spec"]["holderIdentity"] == follower.identity
    assert lease["spec"]["leaseTransitions"] >= 1
    # and it served all along: the experiment is still there, through it
    again = httpx.get(follower.url + "/api/2.0/mlflow/experiments/get", params={"experiment_id": experiment}, trust_env=False)
    assert again.status_code == 200 and again.json()["experiment"]["name"] == "ha"
