"""Workspaces on the local backend: spawn-to-ready (from the start request until JupyterLab
answers through the proxy) for one server at a time and for 8 started at once, and what the
notebook proxy costs: kernel message round trips (execute ``pass``, one after another,
p50/p99) and a 100 MB file download, each straight to JupyterLab and through labdeck's
``/user/<name>/``, one after the other in one sitting.

    .venv/bin/python bench/workspaces_bench.py [--spawns 7] [--round-trips 200] [--downloads 5] [--size-mb 100]

Starts its own labdeck server (sign-in on, admin ``root`` with a token, as a team install
runs) on a fresh data folder, with the test suite's cut-down ``base`` environment in the
shared test cache (~/.cache/labdeck-tests/envs: built there on first use), and starts
root's workspace through the API. "Direct" talks to that JupyterLab's loopback port with
the headers the proxy sends (port and secret read from /proc, as only root can), so both
sides see the same JupyterLab. Writes bench/results/workspaces-proxy.json.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from websockets.sync.client import connect

ROOT = Path(__file__).resolve().parent.parent
TEST_CACHE = Path.home() / ".cache" / "labdeck-tests"
PORT = 18700
USER, PASSWORD = "root", "bench-password-123"
CONFIG = """
[workspaces]
envs_dir = "{envs}"
uv_cache_dir = "{uv}"
start_timeout_s = 300
max_servers_per_user = 10

[[workspaces.environments]]
name = "base"
description = "Python data science (cut down for the tests)"
packages = ["mlflow-skinny", "pandas<3"]
"""
MB = 1024 * 1024


def wait_for(check: Any, timeout: float = 300.0, every: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(every)
    raise TimeoutError("gave up waiting")


def answers(http: httpx.Client, path: str) -> bool:
    try:
        return http.get(path).status_code == 200
    except httpx.HTTPError:
        return False


def jupyter_behind(user: str) -> tuple[str, str]:
    """(endpoint, secret) of the user's default JupyterLab, from its command line and environment."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            if f"--ServerApp.base_url=/user/{user}/".encode() not in argv:
                continue
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        port = next(a for a in argv if a.startswith(b"--ServerApp.port=")).split(b"=", 1)[1].decode()
        secret = next(e for e in environ if e.startswith(b"LABDECK_WORKSPACE_SECRET=")).split(b"=", 1)[1].decode()
        return f"127.0.0.1:{port}", secret
    raise RuntimeError(f"no JupyterLab of {user} found in /proc")


def execute(code: str, session: str) -> tuple[str, str]:
    msg_id = uuid.uuid4().hex
    message = {
        "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": USER, "session": session, "date": "", "version": "5.3"},
        "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
        "content": {"code": code, "silent": False, "store_history": False, "user_expressions": {}, "allow_stdin": False, "stop_on_error": True},
    }
    return msg_id, json.dumps(message)


def round_trips(base: str, headers: dict[str, str], count: int) -> list[float]:
    """Seconds from sending ``execute_request`` of ``pass`` to its ``execute_reply``, one at a time."""
    with httpx.Client(base_url=base, headers=headers, timeout=60) as http:
        kernel = http.post("api/kernels", json={"name": "python3"}).json()["id"]
        session = uuid.uuid4().hex
        url = base.replace("http", "ws", 1) + f"api/kernels/{kernel}/channels?session_id={session}"
        seconds = []
        try:
            with connect(url, additional_headers=headers, open_timeout=60, compression=None) as ws:
                for i in range(count + 20):  # the first 20 warm up
                    msg_id, message = execute("pass", session)
                    started = time.perf_counter()
                    ws.send(message)
                    while True:
                        reply = json.loads(ws.recv(timeout=60))
                        if reply["msg_type"] == "execute_reply" and reply["parent_header"].get("msg_id") == msg_id:
                            break
                    if i >= 20:
                        seconds.append(time.perf_counter() - started)
        finally:
            http.delete(f"api/kernels/{kernel}")
    return seconds


def downloads(base: str, headers: dict[str, str], name: str, count: int) -> list[float]:
    seconds = []
    with httpx.Client(base_url=base, headers=headers, timeout=300) as http:
        for _ in range(count):
            size, started = 0, time.perf_counter()
            with http.stream("GET", f"files/{name}") as response:
                assert response.status_code == 200, response.status_code
                for chunk in response.iter_raw():
                    size += len(chunk)
            seconds.append(time.perf_counter() - started)
    return seconds


def spawn(http: httpx.Client, server: str) -> float:
    """Seconds from the start request until the server's JupyterLab answers through the proxy;
    the environment is built already."""
    path = f"/user/{USER}/{server}/" if server else f"/user/{USER}/"
    started = time.perf_counter()
    answer = http.post(f"/api/v1/workspaces/{USER}/{server}".rstrip("/"), json={"environment": "base"})
    assert answer.status_code in (200, 202), answer.text
    wait_for(lambda: answers(http, path + "api/status"), every=0.02)
    return time.perf_counter() - started


def stop(http: httpx.Client, server: str) -> None:
    where = f"/api/v1/workspaces/{USER}/{server}".rstrip("/")
    http.delete(where)
    wait_for(lambda: http.get(where).json()["state"] == "STOPPED", every=0.2)


def spawns(http: httpx.Client, rounds: int) -> dict[str, Any]:
    alone = []
    for _ in range(rounds):
        alone.append(spawn(http, ""))
        stop(http, "")
    names = [f"s{i}" for i in range(1, 9)]
    with ThreadPoolExecutor(len(names)) as pool:
        together = list(pool.map(lambda name: spawn(http, name), names))
    for name in names:
        stop(http, name)
    return {
        "one_at_a_time_s": {"p50": statistics.median(alone), "all": alone},
        "eight_at_once_s": {"p50": statistics.median(together), "max": max(together), "all": together},
    }


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--spawns", type=int, default=7)
    parser.add_argument("--round-trips", type=int, default=200)
    parser.add_argument("--downloads", type=int, default=5)
    parser.add_argument("--size-mb", type=int, default=100)
    parser.add_argument("--port", type=int, default=PORT)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="labdeck-workspaces-bench-"))
    data = work / "data"
    config = work / "labdeck.toml"
    config.write_text(CONFIG.format(envs=TEST_CACHE / "envs", uv=TEST_CACHE / "uv"))
    labdeck = [sys.executable, "-m", "labdeck"]
    subprocess.run(
        [*labdeck, "users", "create", USER, "--admin", "--password-stdin", "--direct", "--data-dir", str(data)],
        input=PASSWORD + "\n", text=True, check=True, capture_output=True,
    )
    with (work / "server.log").open("wb") as log:
        server = subprocess.Popen(
            [*labdeck, "server", "--port", str(args.port), "--data-dir", str(data), "--config", str(config), "--auth", "password"],
            stdout=subprocess.DEVNULL, stderr=log,
        )
    url = f"http://127.0.0.1:{args.port}"
    results: dict[str, Any] = {"round_trips": args.round_trips, "downloads": args.downloads, "size_mb": args.size_mb}
    try:
        basic = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        with httpx.Client(base_url=url, timeout=60) as http:
            wait_for(lambda: answers(http, "/health"), timeout=60)
            token = http.post("/api/v1/tokens", json={"name": "bench"}, headers={"Authorization": basic}).json()["token"]
            http.headers["Authorization"] = f"Bearer {token}"
            results["spawn"] = spawns(http, args.spawns)
            started = http.post(f"/api/v1/workspaces/{USER}", json={"environment": "base"})
            assert started.status_code in (200, 202), started.text
            wait_for(lambda: http.get(f"/api/v1/workspaces/{USER}").json()["state"] == "RUNNING", every=0.2)
        endpoint, secret = jupyter_behind(USER)
        through = (f"{url}/user/{USER}/", {"Authorization": f"Bearer {token}"})
        direct = (
            f"http://{endpoint}/user/{USER}/",
            {"X-Labdeck-Workspace-Secret": secret, "X-Labdeck-User": USER, "X-Labdeck-Auth": "token"},
        )
        name = "bench.bin"
        with (data / "homes" / USER / name).open("wb") as f:
            for _ in range(args.size_mb):
                f.write(os.urandom(MB))
        for label, (base, headers) in (("direct", direct), ("proxy", through)):
            trips = round_trips(base, headers, args.round_trips)
            took = downloads(base, headers, name, args.downloads)
            results[label] = {
                "round_trip_ms": {"p50": statistics.median(trips) * 1e3, "p99": percentile(trips, 0.99) * 1e3},
                "download_s": {"p50": statistics.median(took), "all": took},
                "download_mb_per_s": args.size_mb / statistics.median(took),
            }
        with httpx.Client(base_url=url, timeout=60, headers={"Authorization": f"Bearer {token}"}) as http:
            http.delete(f"/api/v1/workspaces/{USER}")
            wait_for(lambda: http.get(f"/api/v1/workspaces/{USER}").json()["state"] == "STOPPED", every=0.2)
    finally:
        server.terminate()
        server.wait(30)
    d, p = results["direct"], results["proxy"]
    results["overhead"] = {
        "round_trip_p50_ms": p["round_trip_ms"]["p50"] - d["round_trip_ms"]["p50"],
        "round_trip_p99_ms": p["round_trip_ms"]["p99"] - d["round_trip_ms"]["p99"],
        "download_p50_s": p["download_s"]["p50"] - d["download_s"]["p50"],
    }
    out = ROOT / "bench/results/workspaces-proxy.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    sp = results["spawn"]
    print(
        f"spawn to ready: one at a time p50 {sp['one_at_a_time_s']['p50']:.2f} s ({args.spawns} rounds); "
        f"8 at once p50 {sp['eight_at_once_s']['p50']:.2f} s, slowest {sp['eight_at_once_s']['max']:.2f} s"
    )
    for label in ("direct", "proxy"):
        r = results[label]
        print(
            f"{label:>6}: kernel round trip p50 {r['round_trip_ms']['p50']:.2f} ms, p99 {r['round_trip_ms']['p99']:.2f} ms "
            f"({args.round_trips}); {args.size_mb} MB download p50 {r['download_s']['p50']:.2f} s "
            f"({r['download_mb_per_s']:.0f} MB/s, {args.downloads} rounds)"
        )
    o = results["overhead"]
    print(
        f"proxy overhead: round trip p50 +{o['round_trip_p50_ms']:.2f} ms, p99 +{o['round_trip_p99_ms']:.2f} ms; "
        f"download p50 +{o['download_p50_s']:.2f} s"
    )


if __name__ == "__main__":
    main()
