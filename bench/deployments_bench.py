"""Deployments on the local backend: how long from `deploy` to the first answer, how long
a rollout of 3 replicas takes, and what the gateway costs next to calling a replica
directly (the shared wrk harness, Seldon v1 payload, at 1/16/64 connections).

    .venv/bin/python bench/deployments_bench.py [--rounds 7]

Needs wrk (`apt-get install -y wrk`). Starts its own labdeck server on a fresh data
folder and trains the iris models with ../shared/bench/serving/train.py. Writes
bench/results/deployments.json and prints a summary.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
HARNESS = Path(os.environ.get("SERVING_HARNESS", ROOT.parent / "shared" / "bench" / "serving"))
ROW = {"data": {"ndarray": [[5.1, 3.5, 1.4, 0.2]]}}


def deployment(name: str, model: Path, replicas: int = 1) -> dict:
    return {
        "apiVersion": "labdeck.dev/v1",
        "kind": "ModelDeployment",
        "metadata": {"name": name},
        "spec": {"predictors": [{"name": "main", "model": str(model), "replicas": replicas}]},
    }


def wait_for(check, timeout: float = 120.0, every: float = 0.02) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if check():
            return time.perf_counter() - started
        time.sleep(every)
    raise TimeoutError("gave up waiting")


def answers(http: httpx.Client, name: str) -> bool:
    try:
        return http.post(f"/seldon/default/{name}/api/v1.0/predictions", json=ROW).status_code == 200
    except httpx.HTTPError:
        return False


def gone(http: httpx.Client, name: str) -> bool:
    return http.get(f"/api/v1/deployments/{name}").status_code == 404


def time_to_first_answer(http: httpx.Client, model: Path, rounds: int) -> list[float]:
    seconds = []
    for i in range(rounds):
        name = f"first-{i}"
        started = time.perf_counter()
        assert http.post("/api/v1/deployments", json=deployment(name, model)).status_code == 201
        wait_for(lambda: answers(http, name))
        seconds.append(time.perf_counter() - started)
        http.delete(f"/api/v1/deployments/{name}")
        wait_for(lambda: gone(http, name), every=0.1)
    return seconds


def rollout_of_three(http: httpx.Client, before: Path, after: Path) -> float:
    assert http.post("/api/v1/deployments", json=deployment("rolling", before, 3)).status_code == 201
    wait_for(lambda: http.get("/api/v1/deployments/rolling").json()["state"] == "AVAILABLE", every=0.1)
    started = time.perf_counter()
    assert http.put("/api/v1/deployments/rolling", json=deployment("rolling", after, 3)).status_code == 200

    def rolled() -> bool:
        d = http.get("/api/v1/deployments/rolling").json()
        p = d["predictors"][0]
        return d["state"] == "AVAILABLE" and p["target"] is None and (p["serving"] or {}).get("location") == str(after)

    wait_for(rolled, every=0.05)
    took = time.perf_counter() - started
    http.delete("/api/v1/deployments/rolling")
    wait_for(lambda: gone(http, "rolling"), every=0.1)
    return took


def sweep(url: str, label: str, v1_path: str, server_pid: int) -> str:
    env = {**os.environ, "V1_PATH": v1_path, "LABEL": label, "SERVER_PID": str(server_pid), "RAW_DIR": str(ROOT / "bench/results/raw")}
    done = subprocess.run(
        [str(HARNESS / "serve_bench.sh"), url, "iris", "v1_single.lua"], env=env, capture_output=True, text=True, check=True
    )
    return done.stdout


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="labdeck-deploy-bench-"))
    subprocess.run([sys.executable, str(HARNESS / "train.py"), str(work / "models")], check=True, capture_output=True)
    lr, rf = work / "models/seldon/iris-lr", work / "models/seldon/iris-rf"
    server = subprocess.Popen(
        [sys.executable, "-m", "labdeck", "server", "--port", "18600", "--data-dir", str(work / "data")],
        stdout=subprocess.DEVNULL, stderr=open(work / "server.log", "wb"),
    )
    results: dict = {}
    try:
        with httpx.Client(base_url="http://127.0.0.1:18600", timeout=30) as http:
            wait_for(lambda: _healthy(http))
            first = time_to_first_answer(http, lr, args.rounds)
            results["deploy_to_first_answer_s"] = {"p50": statistics.median(first), "all": first}
            rollout = [rollout_of_three(http, lr, rf), rollout_of_three(http, rf, lr)]
            results["rollout_3_replicas_s"] = {"p50": statistics.median(rollout), "all": rollout}

            assert http.post("/api/v1/deployments", json=deployment("iris", lr)).status_code == 201
            wait_for(lambda: answers(http, "iris"))
            replica = http.get("/api/v1/deployments/iris").json()["predictors"][0]["replicas"][0]
            direct = sweep(f"http://{replica['http']}", "direct", "/api/v1.0/predictions", replica["pid"])
            gateway = sweep("http://127.0.0.1:18600", "gateway", "/seldon/default/iris/api/v1.0/predictions", server.pid)
            results["direct"] = direct
            results["gateway"] = gateway
            http.delete("/api/v1/deployments/iris")
            wait_for(lambda: gone(http, "iris"), every=0.1)
    finally:
        server.terminate()
        server.wait(30)
    out = ROOT / "bench/results/deployments.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"deploy -> first answer: p50 {results['deploy_to_first_answer_s']['p50']:.2f} s over {args.rounds} rounds "
          f"({', '.join(f'{s:.2f}' for s in first)})")
    print(f"rollout of 3 replicas: p50 {results['rollout_3_replicas_s']['p50']:.2f} s ({', '.join(f'{s:.2f}' for s in rollout)})")
    print(direct)
    print(gateway)
    print(_overhead(direct, gateway))


def _healthy(http: httpx.Client) -> bool:
    try:
        return http.get("/health").status_code == 200
    except httpx.HTTPError:
        return False


def _overhead(direct: str, gateway: str) -> str:
    def rates(text: str) -> dict[str, float]:
        found = {}
        for line in text.splitlines():
            parts = line.split()
            if len(parts) > 3 and parts[1].isdigit():
                found[parts[1]] = float(parts[2])
        return found

    d, g = rates(direct), rates(gateway)
    return "gateway / direct requests/s: " + ", ".join(f"{c} conns {g[c] / d[c]:.2f}" for c in d if c in g)


if __name__ == "__main__":
    main()
