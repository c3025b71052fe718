"""Real models and real model servers for the protocol suites (test_protocol_*.py).

``trained`` (session): iris models trained here, each saved in the layout a user would
hand to ``labdeck serve``, next to the in-memory model it was saved from, so a test can
compare the server's answer with the model's own ``predict``:

- ``lr_skops``, ``lr_pickle``, ``lr_cloudpickle``: a LogisticRegression fitted on a
  DataFrame, saved by ``mlflow.sklearn.save_model`` in each serialization (with a
  column-based signature and an input example);
- ``rf_seldon``: a RandomForest (20 trees) predicting the species *names*, in Seldon's
  convention (a folder holding only ``model.joblib``);
- ``xgb_json``, ``xgb_ubj``: an XGBoost Booster (multi:softprob) as ``model.json`` / ``.ubj``;
- ``xgbc_json``: an XGBClassifier saved with its own ``save_model`` (no MLmodel);
- ``xgb_mlflow``: the same classifier through ``mlflow.xgboost.save_model``;
- ``lgb_txt``: a LightGBM Booster's text model; ``lgb_mlflow_booster`` and
  ``lgb_mlflow_sklearn``: that Booster and an LGBMClassifier through
  ``mlflow.lightgbm.save_model``;
- ``onnx``: the RandomForest converted by skl2onnx (zipmap=False: a string ``label`` and a
  float32 ``probabilities`` output).

``servers`` (session): ``servers.get(key)`` runs ``labdeck serve`` on a model as a child
process (HTTP and gRPC on free ports) and waits until ``/v2/health/ready`` answers 200;
``servers.start(keys)`` starts several at once, which is what keeps the suites fast on a
small machine (a server spends its start-up importing its framework). Every server is
stopped with SIGTERM (then killed) when the session ends. ``SERVERS`` names them: each
model by its key, except the skops LogisticRegression, which is served as ``iris``, with
``--name iris --model-version 3 --max-body-mb 0.25``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from tests.conftest import free_port

# generous: a suite starts a dozen servers at once, and a 2-core machine shared with other
# work may take a while to import a dozen frameworks; a healthy server is ready in seconds
READY_TIMEOUT_S = 120
STOP_TIMEOUT_S = 30
MAX_BODY_MB = 0.25  # the ``iris`` server's limit, small enough to cross cheaply
PIP = ["mlflow", "scikit-learn"]  # given, so that saving does not spend seconds inferring them


@dataclass
class Trained:
    path: Path
    model: Any  # what answers like the served model in this process
    kind: str  # "sklearn", "xgb_booster", "lgb_booster", "onnx"


@dataclass
class Models:
    X: np.ndarray  # iris features, float64 [150, 4]
    columns: list[str]  # the feature names the MLflow signature declares
    species: np.ndarray  # the class names the RandomForest predicts
    saved: dict[str, Trained] = field(default_factory=dict)

    def __getitem__(self, key: str) -> Trained:
        return self.saved[key]


def _train(root: Path) -> Models:
    import joblib
    import lightgbm
    import mlflow.lightgbm
    import mlflow.sklearn
    import mlflow.xgboost
    import onnxruntime
    import xgboost
    from mlflow.models import infer_signature
    from skl2onnx import to_onnx
    from sklearn.datasets import load_iris
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    iris = load_iris(as_frame=True)
    frame, y = iris.data, iris.target.to_numpy()
    X = frame.to_numpy(dtype=np.float64)
    species = np.asarray(iris.target_names)[y]
    models = Models(X, list(frame.columns), np.asarray(iris.target_names))

    def folder(name: str) -> Path:
        path = root / name
        path.mkdir()
        return path

    lr = LogisticRegression(max_iter=1000).fit(frame, y)
    signature = infer_signature(frame, lr.predict(frame))
    for fmt in ("skops", "pickle", "cloudpickle"):
        path = root / f"lr_{fmt}"
        mlflow.sklearn.save_model(
            lr, str(path), serialization_format=fmt, signature=signature, input_example=frame.iloc[:2], pip_requirements=PIP
        )
        models.saved[f"lr_{fmt}"] = Trained(path, lr, "sklearn")

    rf = RandomForestClassifier(n_estimators=20, random_state=0).fit(X, species)
    joblib.dump(rf, folder("rf_seldon") / "model.joblib")
    models.saved["rf_seldon"] = Trained(root / "rf_seldon", rf, "sklearn")

    booster = xgboost.train({"objective": "multi:softprob", "num_class": 3, "max_depth": 3}, xgboost.DMatrix(X, label=y), 5)
    for name, file in (("xgb_json", "model.json"), ("xgb_ubj", "model.ubj")):
        booster.save_model(str(folder(name) / file))
        models.saved[name] = Trained(root / name, booster, "xgb_booster")
    xgbc = xgboost.XGBClassifier(n_estimators=5, max_depth=3).fit(X, y)
    xgbc.save_model(str(folder("xgbc_json") / "model.json"))
    models.saved["xgbc_json"] = Trained(root / "xgbc_json", xgbc, "sklearn")
    mlflow.xgboost.save_model(xgbc, str(root / "xgb_mlflow"), pip_requirements=PIP)
    models.saved["xgb_mlflow"] = Trained(root / "xgb_mlflow", xgbc, "sklearn")

    lgb_booster = lightgbm.train(
        {"objective": "multiclass", "num_class": 3, "verbose": -1}, lightgbm.Dataset(X, label=y), 5
    )
    lgb_booster.save_model(str(folder("lgb_txt") / "model.txt"))
    models.saved["lgb_txt"] = Trained(root / "lgb_txt", lgb_booster, "lgb_booster")
    mlflow.lightgbm.save_model(lgb_booster, str(root / "lgb_mlflow_booster"), pip_requirements=PIP)
    models.saved["lgb_mlflow_booster"] = Trained(root / "lgb_mlflow_booster", lgb_booster, "lgb_booster")
    lgbc = lightgbm.LGBMClassifier(n_estimators=5, verbose=-1).fit(X, y)
    mlflow.lightgbm.save_model(lgbc, str(root / "lgb_mlflow_sklearn"), pip_requirements=PIP)
    models.saved["lgb_mlflow_sklearn"] = Trained(root / "lgb_mlflow_sklearn", lgbc, "sklearn")

    onx = to_onnx(rf, X[:1].astype(np.float32), options={id(rf): {"zipmap": False}}, target_opset=17)
    (folder("onnx") / "model.onnx").write_bytes(onx.SerializeToString())
    # one thread, as the server runs it: a tree ensemble's sums depend on how they are split
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(str(root / "onnx" / "model.onnx"), options, providers=["CPUExecutionProvider"])
    models.saved["onnx"] = Trained(root / "onnx", session, "onnx")
    return models


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Models:
    return _train(tmp_path_factory.mktemp("models"))


def expected(trained: Trained, X: np.ndarray, output: str = "predict") -> np.ndarray:
    """What the model itself answers for ``X`` (``predict``, ``predict_proba``, or an ONNX output)."""
    model = trained.model
    if trained.kind == "onnx":
        return model.run([output], {model.get_inputs()[0].name: X.astype(np.float32)})[0]
    if trained.kind == "xgb_booster":
        import xgboost

        assert output == "predict"
        return model.predict(xgboost.DMatrix(X))
    if trained.kind == "lgb_booster":
        assert output == "predict"
        return model.predict(X)
    if hasattr(model, "feature_names_in_"):  # fitted on a DataFrame: give it one (as MLflow would)
        import pandas as pd

        X = pd.DataFrame(X, columns=model.feature_names_in_)
    return getattr(model, output)(X)


# model key -> (the folder's key in ``trained``, extra ``labdeck serve`` arguments)
SERVERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "iris": ("lr_skops", ("--name", "iris", "--model-version", "3", "--max-body-mb", str(MAX_BODY_MB))),
    **{key: (key, ()) for key in (
        "lr_pickle", "lr_cloudpickle", "rf_seldon", "xgb_json", "xgb_ubj", "xgbc_json",
        "xgb_mlflow", "lgb_txt", "lgb_mlflow_booster", "lgb_mlflow_sklearn", "onnx",
    )},
}


@dataclass
class Server:
    name: str  # the model name the server serves
    url: str
    grpc_target: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30, trust_env=False)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _launch(path: Path, name: str, args: tuple[str, ...], tmp: Path) -> Server:
    port, grpc_port = free_port(), free_port()
    log_path = tmp / f"{name}.log"
    command = [
        sys.executable, "-m", "labdeck", "serve", str(path), "--port", str(port), "--grpc-port", str(grpc_port),
        "--cache-dir", str(tmp / "cache"), *args,
    ]
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "PROMETHEUS_MULTIPROC_DIR")}
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env={**env, "PYTHONUNBUFFERED": "1"})
    served_name = args[args.index("--name") + 1] if "--name" in args else path.name
    return Server(served_name, f"http://127.0.0.1:{port}", f"127.0.0.1:{grpc_port}", process, log_path)


def _wait_ready(server: Server) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    with httpx.Client(timeout=5, trust_env=False) as client:
        while True:
            try:
                if client.get(server.url + "/v2/health/ready").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if server.process.poll() is not None or time.monotonic() > deadline:
                server.stop()
                raise AssertionError(f"labdeck serve {server.name} never became ready; its output:\n{server.log()}")
            time.sleep(0.05)


class Servers:
    def __init__(self, models: Models, tmp: Path):
        self.models = models
        self.tmp = tmp
        self.running: dict[str, Server] = {}

    def start(self, keys: list[str]) -> None:
        """Start every server of ``keys`` not yet running, all at once, and wait for each."""
        launched = [
            self.running.setdefault(key, _launch(self.models[SERVERS[key][0]].path, key, SERVERS[key][1], self.tmp))
            for key in keys
            if key not in self.running
        ]
        for server in launched:
            _wait_ready(server)

    def get(self, key: str) -> Server:
        self.start([key])
        server = self.running[key]
        assert server.process.poll() is None, f"the {key} server exited:\n{server.log()}"
        return server

    def stop_all(self) -> None:
        for server in self.running.values():
            if server.process.poll() is None:
                server.process.send_signal(signal.SIGTERM)
        for server in self.running.values():
            server.stop()


@pytest.fixture(scope="session")
def servers(trained: Models, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    fleet = Servers(trained, tmp_path_factory.mktemp("servers"))
    yield fleet
    fleet.stop_all()


IRIS_ROWS = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]])
