#!/usr/bin/env python3
"""Model-registry benchmark, speaking only MLflow's REST API (stdlib http.client, one
keep-alive connection per thread), so the same script measures labdeck and MLflow.

Scenarios:
  populate  --models registered models (each with 2 tags) x --versions versions (each with
            a tag), created by --threads threads
  search    GET registered-models/search filtered by a tag (tags.team = 'team-N'),
            max_results 100: p50/p99 over --reps; and by name prefix (name LIKE 'm-00%')
  versions  GET model-versions/search filtered by name and version_number
  resolve   what `mlflow.pyfunc.load_model("models:/<name>@champion")` asks the server:
            GET registered-models/alias then GET model-versions/get-download-uri

usage: registry_bench.py --url http://127.0.0.1:5500 --label mlflow --out results/registry-mlflow.json
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import random
import sys
import threading
import time
import urllib.parse

API = "/api/2.0/mlflow"


class Client:
    """One persistent HTTP/1.1 connection; one per thread."""

    def __init__(self, url: str):
        parts = urllib.parse.urlsplit(url)
        self.host, self.port = parts.hostname, parts.port or 80
        self.conn: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, body: dict | None = None) -> tuple[int, bytes]:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if data is not None else {}
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=120)
            try:
                self.conn.request(method, API + path, body=data, headers=headers)
                response = self.conn.getresponse()
                return response.status, response.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.conn.close()
                self.conn = None
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def ok(self, method: str, path: str, body: dict | None = None) -> dict:
        status, data = self.request(method, path, body)
        if status != 200:
            raise RuntimeError(f"{method} {path} -> {status}: {data[:300]!r}")
        return json.loads(data) if data else {}

    def get(self, path: str, params: dict) -> tuple[int, bytes]:
        return self.request("GET", path + "?" + urllib.parse.urlencode(params, doseq=True))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1))]


def timed(fn, reps: int) -> dict:
    latencies, errors = [], 0
    for _ in range(reps):
        start = time.perf_counter()
        status, _ = fn()
        latencies.append(time.perf_counter() - start)
        errors += status != 200
    return {
        "reps": reps,
        "errors": errors,
        "p50_ms": round(percentile(latencies, 0.5) * 1e3, 3),
        "p99_ms": round(percentile(latencies, 0.99) * 1e3, 3),
    }


def populate(url: str, models: int, versions: int, threads: int, tag: str) -> dict:
    errors: list[str] = []

    def worker(offset: int) -> None:
        client = Client(url)
        for i in range(offset, models, threads):
            name = f"{tag}-{i:04d}"
            try:
                client.ok(
                    "POST",
                    "/registered-models/create",
                    {"name": name, "tags": [{"key": "team", "value": f"team-{i % 50}"}, {"key": "tier", "value": "gold" if i % 7 == 0 else "std"}]},
                )
                for v in range(versions):
                    client.ok(
                        "POST",
                        "/model-versions/create",
                        {"name": name, "source": f"s3://models/{name}/{v}", "tags": [{"key": "stage", "value": f"s{v}"}]},
                    )
                client.ok("POST", "/registered-models/alias", {"name": name, "alias": "champion", "version": str(min(3, versions))})
            except Exception as exc:  # noqa: BLE001 - counted and reported
                errors.append(repr(exc)[:300])

    start = time.perf_counter()
    workers = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - start
    return {
        "models": models,
        "versions_per_model": versions,
        "threads": threads,
        "seconds": round(elapsed, 2),
        "models_per_s": round(models / elapsed, 1),
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True)
    parser.add_argument("--label", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--models", type=int, default=1000)
    parser.add_argument("--versions", type=int, default=5)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--reps", type=int, default=50)
    args = parser.parse_args()

    tag = f"m{random.randrange(10**6):06d}"
    client = Client(args.url)
    results: dict = {"populate": populate(args.url, args.models, args.versions, args.threads, tag)}

    expected = len([i for i in range(args.models) if i % 50 == 7])
    status, body = client.get("/registered-models/search", {"filter": f"tags.team = 'team-7' AND name LIKE '{tag}-%'", "max_results": 100})
    found = len(json.loads(body).get("registered_models", [])) if status == 200 else -1
    results["search_by_tag"] = {
        **timed(lambda: client.get("/registered-models/search", {"filter": f"tags.team = 'team-7' AND name LIKE '{tag}-%'", "max_results": 100}), args.reps),
        "returned": found,
        "expected": min(expected, 100),
    }
    results["search_by_name_prefix"] = timed(
        lambda: client.get("/registered-models/search", {"filter": f"name LIKE '{tag}-00%'", "max_results": 100}), args.reps
    )
    rng = random.Random(1)
    results["versions_search"] = timed(
        lambda: client.get(
            "/model-versions/search",
            {"filter": f"name = '{tag}-{rng.randrange(args.models):04d}' AND version_number >= 2", "max_results": 100},
        ),
        args.reps,
    )

    def resolve() -> tuple[int, bytes]:
        name = f"{tag}-{rng.randrange(args.models):04d}"
        status, data = client.get("/registered-models/alias", {"name": name, "alias": "champion"})
        if status != 200:
            return status, data
        version = json.loads(data)["model_version"]["version"]
        return client.get("/model-versions/get-download-uri", {"name": name, "version": version})

    results["resolve_alias"] = timed(resolve, args.reps * 4)

    out = {"label": args.label, "url": args.url, "started": time.strftime("%Y-%m-%dT%H:%M:%S"), "results": results}
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    sys.exit(main())
