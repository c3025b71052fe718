"""The UI's speed in Chromium: time to the first rendered runs table of an experiment with
10,000 runs x 50 metrics (+ 10 params), and to the first drawn chart of a run page whose one
metric has a 100,000-point history; labdeck's pages against MLflow's own UI on the same data.

    .venv/bin/python bench/ui_bench.py [--data-dir DIR] [--runs 10000] [--metrics 50]
        [--params 10] [--points 100000] [--repeat 7] [--no-mlflow]

Each server is filled once through its REST API (log-batch, 8 threads) and the data folder
kept: run again with the same --data-dir to skip the filling (a few minutes for labdeck,
longer for MLflow). Servers run on SQLite with their default settings (labdeck: sign-in off;
MLflow: ``--workers 1``, its job runner off). Each figure is measured from the navigation
start (``performance.now()`` in the page, read when the element shows) to the moment the
first row / the chart's line is in the DOM: the first load with an empty cache ("cold"),
then the median of --repeat reloads ("warm"). Writes bench/results/ui.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
LABDECK_PORT, MLFLOW_PORT = 18801, 18802
BATCH = 1000
THREADS = 8

# Where each UI shows what we wait for. MLflow 3's runs table is an ag-grid; its run page's
# model-metrics tab draws plotly charts; ours are labdeck's own SVG line chart.
LABDECK_TABLE = "table#runs tbody tr"
LABDECK_CHART = '[data-metric="long"] path.lc-line'
MLFLOW_TABLE = ".ag-center-cols-container .ag-row"
MLFLOW_CHART = ".js-plotly-plot .scatterlayer path.js-line"


def wait_healthy(url: str, process: subprocess.Popen[bytes], path: str) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server at {url} exited with {process.returncode}")
        try:
            if httpx.get(url + path, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} never answered")


def populate(url: str, runs: int, metrics: int, params: int, points: int) -> dict[str, str]:
    """An experiment "ui-bench" of ``runs`` runs, and a run "long" with one long history."""
    api = url + "/api/2.0/mlflow"
    with httpx.Client(timeout=120) as http:
        experiment = http.post(f"{api}/experiments/create", json={"name": "ui-bench"}).raise_for_status().json()["experiment_id"]

    def one(i: int, http: httpx.Client) -> None:
        made = http.post(f"{api}/runs/create", json={"experiment_id": experiment, "run_name": f"run-{i:05d}", "start_time": 1_700_000_000_000 + i})
        run_id = made.raise_for_status().json()["run"]["info"]["run_id"]
        batch = {
            "run_id": run_id,
            "params": [{"key": f"param_{p:02d}", "value": str((i * (p + 3)) % 17)} for p in range(params)],
            "metrics": [
                {"key": f"metric_{m:02d}", "value": math.sin(i * 0.001 + m), "timestamp": 1_700_000_000_000 + i, "step": 0}
                for m in range(metrics)
            ],
        }
        http.post(f"{api}/runs/log-batch", json=batch).raise_for_status()
        http.post(f"{api}/runs/update", json={"run_id": run_id, "status": "FINISHED", "end_time": 1_700_000_060_000 + i}).raise_for_status()

    def worker(start: int) -> None:
        with httpx.Client(timeout=120) as http:
            for i in range(start, runs, THREADS):
                one(i, http)

    began = time.monotonic()
    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(worker, range(THREADS)))
    with httpx.Client(timeout=120) as http:
        long_run = http.post(f"{api}/runs/create", json={"experiment_id": "0", "run_name": "long"}).raise_for_status().json()["run"]["info"]["run_id"]
        for start in range(0, points, BATCH):
            batch = [
                {"key": "long", "value": math.sin(s / 500) + (5.0 if s == points // 3 else 0.0), "timestamp": 1_700_000_000_000 + s, "step": s}
                for s in range(start, min(points, start + BATCH))
            ]
            http.post(f"{api}/runs/log-batch", json={"run_id": long_run, "metrics": batch}).raise_for_status()
    print(f"  filled {url} in {time.monotonic() - began:.0f} s", flush=True)
    return {"experiment_id": experiment, "long_run": long_run}


def time_to(browser: Any, url: str, selector: str, repeat: int) -> dict[str, float]:
    """ms from navigation start to ``selector`` in the DOM: cold (empty cache), then warm reloads."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    figures = []
    for _ in range(repeat + 1):
        page.goto(url, wait_until="commit")
        page.wait_for_selector(selector, state="attached", timeout=120_000)
        figures.append(page.evaluate("() => performance.now()"))
        page.goto("about:blank")
    context.close()
    return {"cold_ms": round(figures[0], 1), "warm_median_ms": round(statistics.median(figures[1:]), 1), "warm_all_ms": [round(f, 1) for f in figures[1:]]}


def start(command: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(command, stdout=log.open("ab"), stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()


def side(name: str, folder: Path, args: argparse.Namespace, browser: Any) -> dict[str, Any]:
    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / "filled.json"
    if name == "labdeck":
        url = f"http://127.0.0.1:{LABDECK_PORT}"
        command = [str(ROOT / ".venv/bin/labdeck"), "server", "--port", str(LABDECK_PORT), "--data-dir", str(folder / "data")]
        process = start(command, folder / "server.log")
        health = "/health"
    else:
        url = f"http://127.0.0.1:{MLFLOW_PORT}"
        command = [
            str(ROOT / ".venv/bin/mlflow"), "server", "--host", "127.0.0.1", "--port", str(MLFLOW_PORT), "--workers", "1",
            "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}", "--artifacts-destination", str(folder / "artifacts"),
        ]
        process = start(command, folder / "server.log", {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})
        health = "/health"
    try:
        wait_healthy(url, process, health)
        shape = {"runs": args.runs, "metrics": args.metrics, "params": args.params, "points": args.points}
        filled = json.loads(marker.read_text()) if marker.exists() else None
        if filled is None or filled.get("shape") != shape:
            print(f"{name}: filling {args.runs} runs x {args.metrics} metrics + {args.points:,}-point history", flush=True)
            filled = {"shape": shape, **populate(url, args.runs, args.metrics, args.params, args.points)}
            marker.write_text(json.dumps(filled))
        if name == "labdeck":
            table_url = f"{url}/ui/experiments/{filled['experiment_id']}"
            chart_url = f"{url}/ui/runs/{filled['long_run']}"
            selectors = (LABDECK_TABLE, LABDECK_CHART)
        else:
            table_url = f"{url}/#/experiments/{filled['experiment_id']}/runs"
            chart_url = f"{url}/#/experiments/0/runs/{filled['long_run']}/model-metrics"
            selectors = (MLFLOW_TABLE, MLFLOW_CHART)
        # other work on the machine shows in these figures: keep the load next to them
        out: dict[str, Any] = {"url": url, "load_average_before": os.getloadavg()[0]}
        for figure, target, selector in (("runs_table", table_url, selectors[0]), ("run_chart", chart_url, selectors[1])):
            try:
                out[figure] = time_to(browser, target, selector, args.repeat)
            except Exception as error:  # a peer's UI that changed its markup: report, keep going
                out[figure] = {"error": str(error).splitlines()[0]}
            print(f"  {name} {figure}: {out[figure]}", flush=True)
        out["load_average_after"] = os.getloadavg()[0]
        return out
    finally:
        stop(process)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, help="keep the filled servers' data here between runs")
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--metrics", type=int, default=50)
    parser.add_argument("--params", type=int, default=10)
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--no-mlflow", action="store_true", help="measure labdeck only")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/ui.json")
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    temporary = None
    if args.data_dir is None:
        temporary = Path(tempfile.mkdtemp(prefix="ui-bench-"))
    base = args.data_dir or temporary
    assert base is not None
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        sys.exit("Chromium is needed: apt-get install chromium")
    results: dict[str, Any] = {"date": time.strftime("%Y-%m-%d"), "cores": os.cpu_count(), "shape": vars(args) | {"data_dir": str(base), "out": str(args.out)}}
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=chromium, headless=True, args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
            )
            results["labdeck"] = side("labdeck", base / "labdeck", args, browser)
            if not args.no_mlflow:
                results["mlflow"] = side("mlflow", base / "mlflow", args, browser)
            browser.close()
    finally:
        if temporary is not None:
            shutil.rmtree(temporary, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(json.dumps({k: v for k, v in results.items() if k in ("labdeck", "mlflow")}, indent=2))


if __name__ == "__main__":
    main()
