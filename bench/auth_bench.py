#!/usr/bin/env python3
"""What sign-in costs the hot path: sequential log-metric calls (the tracking benchmark's
scenario a) against a labdeck started without sign-in, then against one started with
``--auth password`` and called by an ordinary (non-admin) user, who owns the experiment,
with a Bearer token, and with Basic credentials whose password is a token (how
``MLFLOW_TRACKING_USERNAME``/``PASSWORD`` reach it): every call's permission is checked.

usage: bench/auth_bench.py [--calls 10000]     (starts and stops its own servers)
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LABDECK = str(ROOT / ".venv" / "bin" / "labdeck")


def call(conn: http.client.HTTPConnection, method: str, path: str, body: dict, headers: dict) -> dict:
    conn.request(method, path, body=json.dumps(body).encode(), headers={"Content-Type": "application/json", **headers})
    response = conn.getresponse()
    data = response.read()
    if response.status not in (200, 201):
        raise RuntimeError(f"{method} {path} -> {response.status}: {data[:200]!r}")
    return json.loads(data) if data else {}


def start(port: int, data: str, *extra: str) -> subprocess.Popen:
    proc = subprocess.Popen([LABDECK, "server", "--port", str(port), "--data-dir", data, *extra], stderr=subprocess.DEVNULL)
    for _ in range(300):
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/health")
            if conn.getresponse().status == 200:
                return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("server did not start")


def prepare(port: int, headers: dict) -> tuple[http.client.HTTPConnection, str]:
    """A connection and a run of the caller's own experiment, warmed up."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    name = f"bench-{time.monotonic_ns()}"
    experiment_id = call(conn, "POST", "/api/2.0/mlflow/experiments/create", {"name": name}, headers)["experiment_id"]
    run_id = call(conn, "POST", "/api/2.0/mlflow/runs/create", {"experiment_id": experiment_id}, headers)["run"]["info"]["run_id"]
    for i in range(500):
        call(conn, "POST", "/api/2.0/mlflow/runs/log-metric", {"run_id": run_id, "key": "warm", "value": i, "timestamp": i}, headers)
    return conn, run_id


def round_rate(conn: http.client.HTTPConnection, run_id: str, headers: dict, calls: int, offset: int) -> float:
    path = "/api/2.0/mlflow/runs/log-metric"
    started = time.perf_counter()
    for i in range(offset, offset + calls):
        call(conn, "POST", path, {"run_id": run_id, "key": "loss", "value": i * 0.1, "timestamp": 1000 + i, "step": i}, headers)
    return calls / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=20_000, help="calls per configuration, spread over --rounds")
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    per_round = args.calls // args.rounds
    with tempfile.TemporaryDirectory() as work:
        subprocess.run(
            [LABDECK, "users", "create", "admin", "--admin", "--password-stdin", "--direct", "--data-dir", f"{work}/auth"],
            input="admin-password\n", text=True, check=True, capture_output=True,
        )
        servers = [start(5631, f"{work}/open"), start(5632, f"{work}/auth", "--auth", "password")]
        try:
            setup = http.client.HTTPConnection("127.0.0.1", 5632, timeout=30)
            admin = {"Authorization": "Basic " + base64.b64encode(b"admin:admin-password").decode()}
            call(setup, "POST", "/api/v1/users", {"username": "bench", "password": "bench-password"}, admin)
            basic = {"Authorization": "Basic " + base64.b64encode(b"bench:bench-password").decode()}
            token = call(setup, "POST", "/api/v1/tokens", {"name": "bench"}, basic)["token"]
            configs = {
                "no sign-in": (5631, {}),
                "Bearer token": (5632, {"Authorization": f"Bearer {token}"}),
                "Basic, token as password": (5632, {"Authorization": "Basic " + base64.b64encode(f"bench:{token}".encode()).decode()}),
            }
            prepared = {label: prepare(port, headers) for label, (port, headers) in configs.items()}
            rates: dict[str, list[float]] = {label: [] for label in configs}
            # Rounds alternate between the configurations so the machine's drift hits all alike.
            for r in range(args.rounds):
                for label, (_port, headers) in configs.items():
                    conn, run_id = prepared[label]
                    rates[label].append(round_rate(conn, run_id, headers, per_round, r * per_round))
        finally:
            for proc in servers:
                proc.terminate()
                proc.wait()
    median = {label: statistics.median(values) for label, values in rates.items()}
    base = median["no sign-in"]
    print(f"| log-metric, sequential ({args.rounds} alternating rounds, median) | calls/s | ratio to no sign-in |")
    print("|---|---:|---:|")
    for label, rate in median.items():
        print(f"| {label} | {rate:,.0f} | {rate / base:.2f} |")
    out = ROOT / "bench" / "results" / "auth.json"
    out.write_text(json.dumps({"calls": args.calls, "rounds": args.rounds, "median_calls_per_s": median, "cpus": os.cpu_count()}, indent=1))


if __name__ == "__main__":
    sys.exit(main())
