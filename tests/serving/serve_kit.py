"""Helpers for the model-server suites that run ``labdeck serve`` as a real process
(test_sources, test_pyfunc, test_lifecycle).

``start_serve`` runs ``python -m labdeck serve URI --port 0 ...``, reads the HTTP port the
server prints, and (unless told not to) waits for ``/v2/health/ready``; ``Served.stop``
sends SIGTERM and returns the exit code. ``run_serve`` runs a server that is expected to
exit on its own (a model that cannot be fetched or loaded).

The test models are MLflow "models from code": a small Python file saved with the model,
so that loading them needs nothing from this test package. ``COLUMNS_MODEL`` and
``TENSOR_MODEL``/``NAMED_TENSORS_MODEL`` have column- and tensor-based signatures;
``GATED_MODEL`` does not finish loading until a file appears (one per loading process);
``BROKEN_MODEL`` cannot load;
``HOLD_MODEL`` reveals the pid of the worker that answered, records each load, and holds a
prediction until the test releases it (see ``Hold``).
"""

from __future__ import annotations

import contextlib
import gc
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd

from tests.conftest import free_port

START_TIMEOUT_S = 120
STOP_TIMEOUT_S = 60
# credentials and targets of the test process that a server must only get when a test says so
_PRIVATE_ENV = (
    "MLFLOW_TRACKING_URI",
    "MLFLOW_TRACKING_TOKEN",
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_S3_ENDPOINT_URL",
    "AWS_ENDPOINT_URL",
    "PROMETHEUS_MULTIPROC_DIR",
)


@contextlib.contextmanager
def triton_http(url: str) -> Iterator[Any]:
    """A ``tritonclient.http`` client, closed and collected on this thread: its destructor
    closes it again, and when the garbage collector runs that in another thread (a server's),
    gevent raises there."""
    import tritonclient.http as triton

    client = triton.InferenceServerClient(url.removeprefix("http://"))
    try:
        yield client
    finally:
        client.close()
        del client
        gc.collect()


def serve_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _PRIVATE_ENV}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def serve_command(uri: str, cache: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "labdeck", "serve", uri, "--cache-dir", str(cache), *args]


@dataclass
class Served:
    process: subprocess.Popen[bytes]
    url: str
    grpc_target: str | None
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def http(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, **{"timeout": 60, **kwargs})

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        """On a connection of its own (with several workers, any worker may answer)."""
        return httpx.get(self.url + path, timeout=60, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.post(self.url + path, timeout=60, **kwargs)

    def stop(self) -> int:
        """SIGTERM, then the exit code (killed if it does not stop)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"labdeck serve did not stop on SIGTERM:\n{self.log()}") from None


def start_serve(
    uri: str,
    tmp: Path,
    *args: str,
    env: dict[str, str] | None = None,
    grpc: bool = True,
    ready: bool = True,
) -> Served:
    """Start ``labdeck serve uri`` (HTTP on a port it picks, gRPC on a free one)."""
    tmp.mkdir(parents=True, exist_ok=True)
    grpc_port = free_port() if grpc else -1
    log_path = tmp / f"serve-{time.monotonic_ns()}.log"
    command = serve_command(uri, tmp / "cache", "--port", "0", "--grpc-port", str(grpc_port), *args)
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=serve_env(env))
    served = None
    deadline = time.monotonic() + START_TIMEOUT_S
    while served is None:
        found = re.search(r"^labdeck serve: .*, http://127\.0\.0\.1:(\d+)", log_path.read_text(errors="replace"), re.M)
        if found:
            target = f"127.0.0.1:{grpc_port}" if grpc else None
            served = Served(process, f"http://127.0.0.1:{found.group(1)}", target, log_path)
        elif process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"labdeck serve {uri} did not start:\n{log_path.read_text(errors='replace')}")
        else:
            time.sleep(0.05)
    if ready:
        wait_ready(served)
    return served


def wait_ready(served: Served) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            if served.get("/v2/health/ready").status_code == 200:
                return
        except httpx.TransportError:
            pass
        if served.process.poll() is not None or time.monotonic() > deadline:
            served.process.kill()
            raise AssertionError(f"labdeck serve never became ready:\n{served.log()}")
        time.sleep(0.05)


def run_serve(uri: str, tmp: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run a server that should exit by itself; its exit code and output."""
    return run_serves([([uri, *args], env)], tmp)[0]


def run_serves(runs: list[tuple[list[str], dict[str, str] | None]], tmp: Path) -> list[subprocess.CompletedProcess[str]]:
    """Run servers that should exit by themselves, all at once (``[uri, *args]`` and extra
    environment each, a cache folder each); their exit codes and output, in order."""
    processes = []
    for i, (args, env) in enumerate(runs):
        command = serve_command(args[0], tmp / f"cache-{i}", "--port", "0", "--grpc-port", "-1", *args[1:])
        processes.append(
            subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=serve_env(env))
        )
    done = []
    for process in processes:
        try:
            out, err = process.communicate(timeout=START_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            out, err = process.communicate()
        done.append(subprocess.CompletedProcess(process.args, process.returncode, out, err))
    return done


def stop_all(servers: list[Served]) -> dict[int, int]:
    """SIGTERM to every server at once, then each exit code (by pid)."""
    for served in servers:
        if served.process.poll() is None:
            served.process.send_signal(signal.SIGTERM)
    return {served.process.pid: served.stop() for served in servers}


def assert_plain_failure(done: subprocess.CompletedProcess[str], *phrases: str) -> None:
    """Exit 1, each phrase on stderr, and no Python traceback."""
    output = f"{done.args}\n{done.stdout}{done.stderr}"
    assert done.returncode == 1, output
    assert "Traceback" not in output, output
    for phrase in phrases:
        assert phrase in done.stderr, (phrase, output)


def infer(served: Served, model: str, inputs: list[dict[str, Any]], **body: Any) -> httpx.Response:
    return served.post(f"/v2/models/{model}/infer", json={"inputs": inputs, **body})


def column_inputs(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """A V2 input per DataFrame column, with the V2 datatype of its values."""
    inputs = []
    for name in frame.columns:
        values = frame[name].to_numpy()
        if values.dtype.kind == "f":
            datatype = "FP64" if values.dtype == np.float64 else "FP32"
        elif values.dtype.kind == "i":
            datatype = "INT64" if values.dtype == np.int64 else "INT32"
        elif values.dtype.kind == "b":
            datatype = "BOOL"
        else:
            datatype = "BYTES"
        inputs.append({"name": str(name), "shape": [len(values)], "datatype": datatype, "data": values.tolist()})
    return inputs


def metric(text: str, name: str, **labels: str) -> float:
    """The sum of every sample of ``name`` whose labels include ``labels`` (0 if none)."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        found = re.fullmatch(r"([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)", line)
        if not found or found.group(1) != name:
            continue
        have = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', found.group(2) or ""))
        if all(have.get(k) == v for k, v in labels.items()):
            total += float(found.group(3))
    return total


# ---------------------------------------------------------------------------- test models

PIP = ["mlflow", "pandas", "numpy"]  # given, so that saving a model does not infer them

COLUMNS_MODEL = '''
import mlflow


class Scorer(mlflow.pyfunc.PythonModel):
    """a * factor + b + len(c), for columns a (double), b (long), c (string)."""

    def load_context(self, context):
        self.factor = float((context.model_config or {}).get("factor", 2.0))

    def predict(self, context, model_input, params=None):
        return model_input["a"] * self.factor + model_input["b"] + model_input["c"].str.len()


mlflow.models.set_model(Scorer())
'''

TENSOR_MODEL = '''
import mlflow


class Images(mlflow.pyfunc.PythonModel):
    """The sum of each [2, 3] float32 image, times 1.5, and its brightest pixel."""

    def predict(self, context, model_input, params=None):
        flat = model_input.reshape(len(model_input), -1)
        return {"total": flat.sum(axis=1) * 1.5, "brightest": flat.max(axis=1)}


mlflow.models.set_model(Images())
'''

NAMED_TENSORS_MODEL = '''
import mlflow


class Weighted(mlflow.pyfunc.PythonModel):
    """Tensors x (float32 [-1, 3]) and w (int64 [-1]): each row of x summed, times w."""

    def predict(self, context, model_input, params=None):
        return model_input["x"].sum(axis=1) * model_input["w"]


mlflow.models.set_model(Weighted())
'''

GATED_MODEL = '''
import os
import time

import mlflow


class Gated(mlflow.pyfunc.PythonModel):
    """A slow model: the n-th process to load it (from 0) waits until the file
    model_config["gate"] + "-<n>" exists."""

    def load_context(self, context):
        base = context.model_config["gate"]
        n = 0
        while True:
            try:
                os.close(os.open(f"{base}.claim-{n}", os.O_CREAT | os.O_EXCL))
                break
            except FileExistsError:
                n += 1
        gate = f"{base}-{n}"
        deadline = time.monotonic() + 120
        while not os.path.exists(gate):
            if time.monotonic() > deadline:
                raise RuntimeError("the gate file never appeared")
            time.sleep(0.05)

    def predict(self, context, model_input, params=None):
        return model_input["a"] + 1


mlflow.models.set_model(Gated())
'''

BROKEN_MODEL = '''
import mlflow


class Broken(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        raise RuntimeError("the weights file is corrupt")

    def predict(self, context, model_input, params=None):
        return model_input


mlflow.models.set_model(Broken())
'''

HOLD_MODEL = '''
import os
import time

import mlflow
import pandas as pd


class Hold(mlflow.pyfunc.PythonModel):
    """Answers the pid of the process that predicted, one per row. Each load appends that
    pid to model_config["dir"]/loads. A row with a < 0 holds the prediction: the file
    started-<-a> (holding the pid) appears, and the answer waits for release-<-a>."""

    def load_context(self, context):
        self.dir = context.model_config["dir"]
        with open(os.path.join(self.dir, "loads"), "a") as f:
            f.write(f"{os.getpid()}\\n")

    def predict(self, context, model_input, params=None):
        for a in model_input["a"]:
            if a < 0:
                token = int(-a)
                with open(os.path.join(self.dir, f"started-{token}.partial"), "w") as f:
                    f.write(str(os.getpid()))
                os.rename(os.path.join(self.dir, f"started-{token}.partial"), os.path.join(self.dir, f"started-{token}"))
                deadline = time.monotonic() + 120
                while not os.path.exists(os.path.join(self.dir, f"release-{token}")):
                    if time.monotonic() > deadline:
                        raise RuntimeError("never released")
                    time.sleep(0.02)
        return pd.Series([float(os.getpid())] * len(model_input))


mlflow.models.set_model(Hold())
'''

COLUMNS_EXAMPLE = pd.DataFrame({"a": [0.5, 1.5], "b": np.array([1, 2], dtype=np.int64), "c": ["x", "yy"]})
IMAGES_EXAMPLE = np.arange(12, dtype=np.float32).reshape(2, 2, 3)
NAMED_EXAMPLE = {"x": np.arange(6, dtype=np.float32).reshape(2, 3), "w": np.array([1, 2], dtype=np.int64)}
A_EXAMPLE = pd.DataFrame({"a": [1.0, 2.0]})


def _code(tmp: Path, name: str, code: str) -> Path:
    tmp.mkdir(parents=True, exist_ok=True)
    path = tmp / f"{name}.py"
    path.write_text(code)
    return path


def _signature(example: Any, code: str) -> Any:
    from mlflow.models import infer_signature

    outputs = {
        COLUMNS_MODEL: pd.Series([1.0]),
        TENSOR_MODEL: {"total": np.zeros(1, np.float32), "brightest": np.zeros(1, np.float32)},
        NAMED_TENSORS_MODEL: np.zeros(1, np.float64),
    }.get(code, pd.Series([1.0]))
    return infer_signature(example, outputs)


def save_pyfunc(path: Path, code: str, example: Any, model_config: dict[str, Any] | None = None) -> Path:
    """Save a models-from-code pyfunc (with a signature and an input example) at ``path``."""
    import mlflow

    mlflow.pyfunc.save_model(
        str(path),
        python_model=str(_code(path.parent / "code", path.name, code)),
        signature=_signature(example, code),
        input_example=example,
        model_config=model_config,
        pip_requirements=PIP,
    )
    return path


def log_pyfunc(code: str, example: Any, tmp: Path, registered: str | None = None, **model_config: Any) -> Any:
    """Log (and register, when ``registered`` is given) a models-from-code pyfunc in the
    active run's tracking server; MLflow's ModelInfo."""
    import mlflow

    return mlflow.pyfunc.log_model(
        name="model",
        python_model=str(_code(tmp, f"model-{time.monotonic_ns()}", code)),
        signature=_signature(example, code),
        input_example=example,
        model_config=model_config or None,
        registered_model_name=registered,
        pip_requirements=PIP,
    )


class Hold:
    """The HOLD_MODEL's side in the test: which process predicted, which loaded."""

    def __init__(self, folder: Path):
        self.dir = folder
        folder.mkdir(parents=True, exist_ok=True)

    def wait_started(self, token: int, served: Served) -> int:
        """The pid holding prediction ``token``, once it is holding."""
        path = self.dir / f"started-{token}"
        deadline = time.monotonic() + START_TIMEOUT_S
        while not path.exists():
            if served.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"prediction {token} never started:\n{served.log()}")
            time.sleep(0.02)
        return int(path.read_text())

    def release(self, token: int) -> None:
        (self.dir / f"release-{token}").touch()

    def loads(self) -> list[int]:
        path = self.dir / "loads"
        return [int(line) for line in path.read_text().split()] if path.exists() else []


def children(pid: int) -> set[int]:
    """The pids of a process's children (Linux /proc)."""
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        found.update(int(p) for p in (task / "children").read_text().split())
    return found
