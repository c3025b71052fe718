"""How long the platform runs without a leader when the leading replica goes away.

Two real ``labdeck server`` processes on one PostgreSQL database (127.0.0.1:5432, trust),
leader election on with its default timings (Lease 15 s, renew deadline 10 s, retry 2 s),
against the tests' fake Kubernetes API server (tests/compute/k8s_kit.py; there is no real
cluster here). The leader is stopped, cleanly (SIGTERM: it hands the Lease back) or not
(SIGKILL: the Lease has to expire), and the time until the other replica says it leads is
measured. Run from the repository's root: ``.venv/bin/python bench/leader_takeover.py``.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.compute.k8s_kit import FakeKube  # noqa: E402

POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432"


def admin(sql: str) -> None:
    with psycopg.connect(host="127.0.0.1", port=5432, user="postgres", dbname="postgres", autocommit=True) as conn:
        conn.execute(sql)


def role(url: str) -> str | None:
    try:
        return httpx.get(url + "/health", params={"detail": ""}, timeout=2, trust_env=False).json()["role"]
    except (httpx.HTTPError, ValueError, KeyError):
        return None


def poll(check, timeout: float = 120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.05)
    raise SystemExit("timed out waiting")


def one_takeover(kube: FakeKube, folder: Path, how: signal.Signals) -> float:
    database = f"labdeck_bench_{uuid.uuid4().hex[:8]}"
    admin(f'CREATE DATABASE "{database}"')
    url = f"{POSTGRES}/{database}"
    processes: dict[str, tuple[subprocess.Popen[bytes], Path]] = {}
    try:
        subprocess.run([sys.executable, "-m", "labdeck", "db", "upgrade", "--database-url", url, "--data-dir", str(folder / "job")],
                       check=True, capture_output=True)
        for name in ("a", "b"):
            log = folder / f"{name}-{database}.log"
            env = {**os.environ, "LABDECK_CLUSTER__LEADER_ELECTION__ENABLED": "true",
                   "LABDECK_CLUSTER__LEADER_ELECTION__NAMESPACE": "labdeck",
                   "LABDECK_CLUSTER__LEADER_ELECTION__IDENTITY": f"server-{name}",
                   "LABDECK_DEPLOYMENTS__KUBERNETES__KUBECONFIG": str(kube.kubeconfig(folder))}
            with log.open("wb") as out:
                process = subprocess.Popen([sys.executable, "-m", "labdeck", "server", "--port", "0", "--no-migrate",
                                            "--database-url", url, "--data-dir", str(folder / name / database)],
                                           stdout=subprocess.DEVNULL, stderr=out, env=env)
            processes[name] = (process, log)
        urls = {name: poll(lambda log=log: (m := re.search(r"listening at (http://\S+)", log.read_text())) and m.group(1))
                for name, (_, log) in processes.items()}
        leader = poll(lambda: next((n for n, u in urls.items() if role(u) == "leader"), None))
        follower = next(n for n in urls if n != leader)
        poll(lambda: role(urls[follower]) == "follower")
        started = time.monotonic()
        processes[leader][0].send_signal(how)
        poll(lambda: role(urls[follower]) == "leader")
        return time.monotonic() - started
    finally:
        for process, _ in processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
        admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    rounds = parser.parse_args().rounds
    kube = FakeKube()
    try:
        with tempfile.TemporaryDirectory() as scratch:
            for how in (signal.SIGTERM, signal.SIGKILL):
                times = [one_takeover(kube, Path(scratch), how) for _ in range(rounds)]
                print(f"{how.name}: leader gone to a new leader, median {statistics.median(times):.2f} s "
                      f"(each: {', '.join(f'{t:.2f}' for t in times)})")
    finally:
        kube.stop()


if __name__ == "__main__":
    main()
