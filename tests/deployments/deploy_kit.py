"""Real parts for the deployment scenarios: trained models, a labdeck server with its
deployments API, load loops through the gateway, and the ``labdeck serve`` processes a
server started (found in /proc by the cache folder on their command line).

``train`` fits the iris models every scenario serves, saved as a user hands them over:

- ``iris``: a LogisticRegression, alone in a folder as ``model.joblib`` (Seldon's layout);
- ``shifted``: the same kind of model fitted on labels moved by one (setosa -> 1), so that
  every answer says which of the two models gave it;
- ``broken``: a folder whose ``model.joblib`` is not a pickle (its load fails);
- ``slow``: an MLflow pyfunc model (models from code) that sleeps ``SLOW_S`` per call and
  answers ``SHADOW_ANSWER``: what a heavy shadow looks like.

``Lab`` is a running labdeck server seen through its API: create, change, read, wait for
and delete deployments. ``Load`` runs a few threads that each send requests one after
another through the gateway until stopped, and keeps every answer and every failure.
"""

from __future__ import annotations

import threading
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import yaml

from tests.conftest import RunningServer
from tests.processes import kill_all, live_processes
from tests.waiting import wait_until

SETOSA = [5.1, 3.5, 1.4, 0.2]
ROWS = [SETOSA, [6.2, 2.9, 4.3, 1.3], [7.7, 3.0, 6.1, 2.3]]  # one of each species
SLOW_S = 0.25
SHADOW_ANSWER = 7.0
WAIT_S = 90.0  # how long a scenario waits for a state before it says what it saw instead
PIP = ["scikit-learn"]  # given, so that logging does not spend seconds inferring them

SLOW_MODEL_CODE = f"""
import time

import numpy as np
from mlflow.models import set_model
from mlflow.pyfunc import PythonModel


class Slow(PythonModel):
    def predict(self, context, model_input, params=None):
        time.sleep({SLOW_S})
        return np.full(len(model_input), {SHADOW_ANSWER})


set_model(Slow())
"""


def note(message: str, *args: Any) -> None:
    """What a scenario observed (counts, latencies, durations), in the test's output."""
    print(message % args if args else message)


# ------------------------------------------------------------------ models


@dataclass
class Models:
    X: np.ndarray
    iris: Any
    shifted: Any
    folders: dict[str, Path] = field(default_factory=dict)

    def __getitem__(self, key: str) -> Path:
        return self.folders[key]


def train(root: Path) -> Models:
    import joblib
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    X, y = load_iris(return_X_y=True)
    models = Models(X, LogisticRegression(max_iter=1000).fit(X, y), LogisticRegression(max_iter=1000).fit(X, (y + 1) % 3))
    for key, model in (("iris", models.iris), ("shifted", models.shifted)):
        (root / key).mkdir()
        joblib.dump(model, root / key / "model.joblib")
        models.folders[key] = root / key
    (root / "broken").mkdir()
    (root / "broken" / "model.joblib").write_bytes(b"this is not a pickle, and loading it fails\n")
    models.folders["broken"] = root / "broken"
    code = root / "slow_model.py"
    code.write_text(SLOW_MODEL_CODE)
    # mlflow suggests type hints (this model takes any input), through a filter of its own
    # that shows it once whatever the caller's filters say: recorded here, and dropped
    with warnings.catch_warnings(record=True):
        import mlflow.pyfunc

        mlflow.pyfunc.save_model(str(root / "slow"), python_model=str(code), pip_requirements=["mlflow"])
    models.folders["slow"] = root / "slow"
    return models


def register_iris(client: Any, models: Models, name: str = "iris", *, broken: bool = True) -> str | None:
    """Versions of registered model ``name``, logged with the real ``mlflow`` client (pointed
    at the server already): 1 is ``iris``, 2 is ``shifted``, and 3 (with ``broken``) the
    broken folder, logged as a run's artifacts. Returns the broken version's run id."""
    import mlflow
    import mlflow.sklearn

    for model in (models.iris, models.shifted):
        mlflow.sklearn.log_model(model, name="model", registered_model_name=name, pip_requirements=PIP)
    if not broken:
        return None
    with mlflow.start_run() as run:
        mlflow.log_artifacts(str(models["broken"]), "model")
    version = client.create_model_version(name, f"{run.info.artifact_uri}/model", run_id=run.info.run_id)
    assert version.version == "3", version
    return run.info.run_id


# ------------------------------------------------------------------ request bodies and answers


def v2_body(name: str, rows: list[list[float]]) -> dict[str, Any]:
    return {"inputs": [{"name": "x", "shape": [len(rows), 4], "datatype": "FP64", "data": [v for r in rows for v in r]}]}


def seldon_body(rows: list[list[float]]) -> dict[str, Any]:
    return {"data": {"ndarray": rows}}


def v2_answer(response: httpx.Response) -> str:
    """What answered a V2 request: "<predictor>:<version>:<first value>"."""
    body = response.json()
    return f"{response.headers['x-labdeck-predictor']}:{body.get('model_version')}:{body['outputs'][0]['data'][0]:g}"


# ------------------------------------------------------------------ the server's API


class Lab:
    """A labdeck server and its deployments API."""

    def __init__(self, server: RunningServer):
        self.server = server
        self.url = server.url
        self.http = httpx.Client(base_url=server.url, timeout=60, trust_env=False)

    @property
    def cache_dir(self) -> Path:
        return self.server.settings.data_dir / "cache" / "models"

    def create(self, document: dict[str, Any] | str) -> dict[str, Any]:
        return _ok(self.http.post("/api/v1/deployments", **_body(document)), 201)

    def replace(self, name: str, document: dict[str, Any] | str) -> dict[str, Any]:
        return _ok(self.http.put(f"/api/v1/deployments/{name}", **_body(document)))

    def get(self, name: str) -> dict[str, Any]:
        return _ok(self.http.get(f"/api/v1/deployments/{name}"))

    def events(self, name: str) -> list[dict[str, Any]]:
        return _ok(self.http.get(f"/api/v1/deployments/{name}/events", params={"limit": 200}))["events"]

    def kinds(self, name: str) -> list[str]:
        return [e["kind"] for e in self.events(name)]

    def wait(self, name: str, check: Callable[[dict[str, Any]], bool], what: str, timeout: float = WAIT_S) -> dict[str, Any]:
        """Poll the deployment until ``check`` holds; else fail with what it was."""
        deadline = time.monotonic() + timeout
        while True:
            d = self.get(name)
            if check(d):
                return d
            if time.monotonic() > deadline:
                raise AssertionError(f"deployment {name} never got {what}: {d}\nevents: {self.events(name)}")
            time.sleep(0.1)

    def wait_available(self, name: str, timeout: float = WAIT_S) -> dict[str, Any]:
        return self.wait(name, settled, "AVAILABLE with every replica ready", timeout)

    def deploy(self, document: dict[str, Any] | str) -> dict[str, Any]:
        name = self.create(document)["name"]
        return self.wait_available(name)

    def delete(self, name: str, timeout: float = WAIT_S) -> None:
        answer = self.http.delete(f"/api/v1/deployments/{name}")
        assert answer.status_code in (200, 404), answer.text
        wait_until(lambda: self.http.get(f"/api/v1/deployments/{name}").status_code == 404, f"{name} deleted", timeout)

    def delete_everything(self) -> None:
        for d in _ok(self.http.get("/api/v1/deployments"))["deployments"]:
            self.delete(d["name"])

    def replicas(self, name: str, predictor: str | None = None) -> list[dict[str, Any]]:
        d = self.get(name)
        return [r for p in d["predictors"] if predictor in (None, p["name"]) for r in p["replicas"]]

    def close(self) -> None:
        self.http.close()


def settled(d: dict[str, Any]) -> bool:
    return d["state"] == "AVAILABLE" and all(
        p["target"] is None and p["ready_replicas"] == p["desired_replicas"] == len(p["replicas"]) for p in d["predictors"]
    )


def _body(document: dict[str, Any] | str) -> dict[str, Any]:
    if isinstance(document, str):
        return {"content": document.encode(), "headers": {"content-type": "application/yaml"}}
    return {"json": document}


def _ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, f"{response.request.method} {response.request.url}: {response.status_code} {response.text}"
    return response.json()


def model_deployment(name: str, *predictors: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "labdeck.dev/v1", "kind": "ModelDeployment", "metadata": {"name": name}, "spec": {"predictors": list(predictors)}}


def as_yaml(document: dict[str, Any]) -> str:
    return yaml.safe_dump(document, sort_keys=False)


# ------------------------------------------------------------------ replicas, seen from outside


def requests_served(endpoint: str) -> float:
    """Predictions a replica answered, from its own /metrics (every protocol and code)."""
    text = httpx.get(f"http://{endpoint}/metrics", timeout=10, trust_env=False).text
    return sum(
        float(line.rpartition(" ")[2])
        for line in text.splitlines()
        if line.startswith("labdeck_serving_requests_total{")
    )


def serve_processes(cache_dir: Path) -> dict[int, list[str]]:
    """Every live ``labdeck serve`` process of the server whose model cache is ``cache_dir``
    (the controller gives each replica ``--cache-dir``), by pid."""
    return live_processes(lambda argv: "serve" in argv and "labdeck" in argv and str(cache_dir) in argv)


def kill_leftovers(cache_dir: Path) -> dict[int, list[str]]:
    """The last resort of a test's teardown: SIGKILL whatever replica is left."""
    return kill_all(serve_processes(cache_dir))


# ------------------------------------------------------------------ load


@dataclass
class Load:
    """``threads`` clients, each sending ``body`` to ``path`` one request after another
    until stopped (``pause`` apart). ``answers[i]`` is thread i's answers in order (``key`` of each 200) and
    ``sent[i]`` when each was asked for (``time.monotonic()``); ``failures`` is every
    non-200 or transport error, ``latencies`` seconds per request."""

    url: str
    path: str
    body: dict[str, Any]
    key: Callable[[httpx.Response], str]
    threads: int = 4
    pause: float = 0.01  # between a thread's requests: load, without starving the replicas' start-up
    answers: list[list[str]] = field(default_factory=list)
    sent: list[list[float]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _running: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> Load:
        self.answers = [[] for _ in range(self.threads)]
        self.sent = [[] for _ in range(self.threads)]
        for i in range(self.threads):
            thread = threading.Thread(target=self._run, args=(i,), daemon=True)
            thread.start()
            self._running.append(thread)
        return self

    def stop(self) -> Load:
        self._stop.set()
        for thread in self._running:
            thread.join(60)
        return self

    def wait_for(self, count: int, timeout: float = WAIT_S) -> None:
        """Until at least ``count`` more answers have arrived (the load is really running)."""
        target = self.total + count
        wait_until(lambda: self.total >= target or bool(self.failures), f"{count} more answers", timeout)

    @property
    def total(self) -> int:
        return sum(len(a) for a in self.answers)

    def counts(self) -> Counter[str]:
        return Counter(a for answers in self.answers for a in answers)

    def asked(self, after: float | None = None, before: float | None = None) -> Counter[str]:
        """The answers to requests sent in a window of time (``time.monotonic()``)."""
        return Counter(
            a
            for answers, sent in zip(self.answers, self.sent, strict=True)
            for a, t in zip(answers, sent, strict=True)
            if (after is None or t >= after) and (before is None or t < before)
        )

    def describe(self) -> str:
        lat = sorted(self.latencies) or [0.0]
        return (
            f"{self.total} answers, {len(self.failures)} failures, latency median {lat[len(lat) // 2] * 1000:.1f} ms, "
            f"max {lat[-1] * 1000:.1f} ms, answers {dict(self.counts())}"
        )

    def _run(self, i: int) -> None:
        with httpx.Client(base_url=self.url, timeout=60, trust_env=False) as client:
            while not self._stop.is_set():
                sent, started = time.monotonic(), time.perf_counter()
                try:
                    response = client.post(self.path, json=self.body)
                    ok = response.status_code == 200
                    outcome = self.key(response) if ok else f"{response.status_code} {response.text}"
                except Exception as exc:  # every failure is counted, none ends the loop
                    ok, outcome = False, repr(exc)
                with self._lock:
                    self.latencies.append(time.perf_counter() - started)
                    if ok:
                        self.answers[i].append(outcome)
                        self.sent[i].append(sent)
                    else:
                        self.failures.append(outcome)
                self._stop.wait(self.pause)


@contextmanager
def load(lab: Lab, path: str, body: dict[str, Any], key: Callable[[httpx.Response], str], threads: int = 4) -> Iterator[Load]:
    running_load = Load(lab.url, path, body, key, threads).start()
    try:
        running_load.wait_for(threads * 5)
        yield running_load
    finally:
        running_load.stop()
        note("load on %s: %s", path, running_load.describe())
