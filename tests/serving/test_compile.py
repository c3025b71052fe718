"""The compiled path (``--compile onnx``): real scikit-learn, XGBoost and LightGBM models,
loaded by their real runtimes, converted with skl2onnx/onnxmltools and predicted by
onnxruntime, must answer what the originals answer; models that cannot be converted, or
whose conversion does not verify, are served by their original runtime with the reason
logged. One test runs ``labdeck serve --compile onnx`` as a real process.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import joblib
import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.datasets import load_diabetes, load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from labdeck.errors import InvalidParameter
from labdeck.serving.compile import OnnxMethod, compile_runtime, verify
from labdeck.serving.dataplane import DataPlane
from labdeck.serving.metrics import ServingMetrics
from labdeck.serving.runtime import Runtime, RuntimeSettings
from labdeck.serving.runtimes.lightgbm import LightGBMRuntime
from labdeck.serving.runtimes.onnx import OnnxRuntime
from labdeck.serving.runtimes.sklearn import SklearnRuntime
from labdeck.serving.runtimes.xgboost import XGBoostRuntime
from labdeck.serving.types import Tensor

X, Y = load_iris(return_X_y=True)
LABELS = np.array(["setosa", "versicolor", "virginica"])[Y]


def loaded(runtime: Runtime) -> Runtime:
    asyncio.run(runtime.load())
    return runtime


def sklearn_runtime(model: Any, folder: Path) -> SklearnRuntime:
    folder.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, folder / "model.joblib")
    return loaded(SklearnRuntime(folder, RuntimeSettings("m")))  # type: ignore[return-value]


def xgboost_runtime(model: Any, folder: Path) -> XGBoostRuntime:
    folder.mkdir(parents=True, exist_ok=True)
    model.save_model(folder / "model.json")
    return loaded(XGBoostRuntime(folder, RuntimeSettings("m")))  # type: ignore[return-value]


def lightgbm_runtime(model: Any, folder: Path) -> LightGBMRuntime:
    import mlflow.lightgbm

    mlflow.lightgbm.save_model(model, str(folder))
    return loaded(LightGBMRuntime(folder, RuntimeSettings("m")))  # type: ignore[return-value]


def answer(runtime: Runtime, rows: np.ndarray, outputs: list[str]) -> dict[str, Tensor]:
    return {t.name: t for t in runtime.predict([Tensor("input-0", rows)], outputs, {})}


def classifiers() -> dict[str, tuple[Any, Any]]:
    from lightgbm import LGBMClassifier
    from xgboost import XGBClassifier

    return {
        "logistic-regression": (LogisticRegression(max_iter=1000), sklearn_runtime),
        "random-forest": (RandomForestClassifier(n_estimators=100, random_state=0), sklearn_runtime),
        "scaled-pipeline": (make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)), sklearn_runtime),
        "xgboost": (XGBClassifier(n_estimators=30, max_depth=3), xgboost_runtime),
        "lightgbm": (LGBMClassifier(n_estimators=30, verbose=-1), lightgbm_runtime),
    }


# ---------------------------------------------------------------- what converts


@pytest.mark.parametrize("kind", list(classifiers()))
def test_a_compiled_classifier_answers_as_the_original_on_every_iris_row(kind: str, tmp_path: Path) -> None:
    model, build = classifiers()[kind]
    model.fit(X, Y)
    runtime = build(model, tmp_path / kind)
    original = answer(runtime, X, ["predict", "predict_proba"])

    outcome = compile_runtime(runtime, "onnx")

    assert outcome.active, outcome.reason
    assert outcome.methods == ("predict", "predict_proba")
    assert isinstance(runtime.methods["predict"], OnnxMethod) and isinstance(runtime.methods["predict_proba"], OnnxMethod)
    compiled = answer(runtime, X, ["predict", "predict_proba"])
    for name in ("predict", "predict_proba"):  # the same form on the wire: dtype, V2 datatype, shape
        assert compiled[name].data.dtype == original[name].data.dtype
        assert (compiled[name].datatype, compiled[name].shape) == (original[name].datatype, original[name].shape)
    np.testing.assert_array_equal(compiled["predict"].data, model.predict(X))
    np.testing.assert_allclose(compiled["predict_proba"].data, model.predict_proba(X), rtol=0, atol=1e-5)
    # one row at a time, as a client sends it, and the default output
    for i in (0, 77, 149):
        single = runtime.predict([Tensor("input-0", X[i])], [], {})
        assert [t.name for t in single] == ["predict"]
        assert single[0].data.tolist() == model.predict(X[i : i + 1]).tolist()


def test_string_class_labels_keep_their_type(tmp_path: Path) -> None:
    model = RandomForestClassifier(n_estimators=20, random_state=0).fit(X, LABELS)
    runtime = sklearn_runtime(model, tmp_path)
    assert compile_runtime(runtime).active
    got = answer(runtime, X, ["predict"])["predict"]
    assert got.data.dtype == model.predict(X).dtype and got.datatype == "BYTES"
    np.testing.assert_array_equal(got.data, model.predict(X))


def test_raw_boosters_compile_and_answer_as_the_original(tmp_path: Path) -> None:
    import lightgbm
    import xgboost

    softprob = xgboost.train({"objective": "multi:softprob", "num_class": 3, "max_depth": 3}, xgboost.DMatrix(X, label=Y), 20)
    binary = lightgbm.train({"objective": "binary", "verbose": -1}, lightgbm.Dataset(X, label=(Y == 1).astype(int)), 20)
    (tmp_path / "xgb").mkdir()
    (tmp_path / "lgb").mkdir()
    softprob.save_model(tmp_path / "xgb" / "model.json")
    binary.save_model(str(tmp_path / "lgb" / "model.txt"))
    cases = [
        (loaded(XGBoostRuntime(tmp_path / "xgb", RuntimeSettings("m"))), softprob.predict(xgboost.DMatrix(X))),
        (loaded(LightGBMRuntime(tmp_path / "lgb", RuntimeSettings("m"))), binary.predict(X)),
    ]
    for runtime, expected in cases:
        outcome = compile_runtime(runtime)
        assert outcome.active and outcome.methods == ("predict",), outcome.reason
        got = answer(runtime, X, [])["predict"]
        assert got.data.dtype == expected.dtype and got.data.shape == expected.shape
        np.testing.assert_allclose(got.data, expected, rtol=0, atol=1e-5)


def test_the_input_example_is_what_verification_starts_from(tmp_path: Path) -> None:
    import mlflow.sklearn

    model = LogisticRegression(max_iter=1000).fit(X, Y)
    mlflow.sklearn.save_model(model, str(tmp_path / "m"), input_example=X[:5], serialization_format="cloudpickle")
    runtime = loaded(SklearnRuntime(tmp_path / "m", RuntimeSettings("m")))
    outcome = compile_runtime(runtime)
    assert outcome.active
    assert "the input example" in outcome.reason and "synthesized" in outcome.reason


# ---------------------------------------------------------------- what does not, and why


class ClosestToOrigin(ClassifierMixin, BaseEstimator):
    """A custom estimator: no converter knows it."""

    def fit(self, X: np.ndarray, y: np.ndarray) -> ClosestToOrigin:
        self.classes_ = np.unique(y)
        self.n_features_in_ = X.shape[1]
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.classes_[(np.abs(np.asarray(X)).sum(axis=1) > 10).astype(int)]


@pytest.mark.parametrize(
    ("model", "reason"),
    [
        (make_pipeline(FunctionTransformer(np.log1p), LogisticRegression(max_iter=1000)), "FunctionTransformer is not supported"),
        (ClosestToOrigin(), "Unable to find a shape calculator for type"),
    ],
    ids=["function-transformer", "custom-estimator"],
)
def test_a_model_that_cannot_be_converted_is_served_by_the_original(
    model: Any, reason: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    model.fit(X, Y)
    runtime = sklearn_runtime(model, tmp_path)
    original_predict = runtime.methods["predict"]
    with caplog.at_level(logging.WARNING, logger="labdeck.serving.compile"):
        outcome = compile_runtime(runtime, "onnx")
    assert not outcome.active and outcome.methods == ()
    assert reason in outcome.reason and "does not convert to ONNX" in outcome.reason
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and outcome.reason in warnings[0].getMessage()
    assert "serving the original sklearn runtime" in warnings[0].getMessage()
    assert runtime.methods["predict"] == original_predict
    np.testing.assert_array_equal(answer(runtime, X, [])["predict"].data, model.predict(X))


def test_a_conversion_that_loses_precision_is_refused(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A linear regression on the diabetes data: its float32 graph drifts past 1e-5."""
    Xd, yd = load_diabetes(return_X_y=True)
    model = LinearRegression().fit(Xd, yd)
    runtime = sklearn_runtime(model, tmp_path)
    with caplog.at_level(logging.WARNING, logger="labdeck.serving.compile"):
        outcome = compile_runtime(runtime, "onnx")
    assert not outcome.active
    assert re.search(r"verification failed for predict: values differ by up to \S+ \(row \d+\), more than the 1e-05 allowed", outcome.reason)
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [
        f"--compile onnx: serving the original sklearn runtime: {outcome.reason}"
    ]
    np.testing.assert_array_equal(answer(runtime, Xd, [])["predict"].data, model.predict(Xd))  # exactly sklearn's


def test_the_verifier_refuses_predictors_that_disagree() -> None:
    weak = LogisticRegression(C=1e-3, max_iter=1000).fit(X, Y)
    strong = LogisticRegression(C=100, max_iter=1000).fit(X, Y)
    differing = int((weak.predict(X) != strong.predict(X)).sum())
    assert differing > 0

    labels = verify(strong.predict, weak.predict, X, exact=True)
    assert labels is not None and labels.startswith(f"labels differ on {differing} of 150 rows (row ")
    probabilities = verify(strong.predict_proba, weak.predict_proba, X, exact=False)
    assert probabilities is not None and "values differ by up to" in probabilities
    assert verify(strong.predict_proba, lambda rows: strong.predict_proba(rows)[:, :2], X, exact=False) == (
        "the compiled model answers shape [150, 2] where the original answers [150, 3]"
    )
    # within tolerance, and identical, pass
    assert verify(strong.predict_proba, lambda rows: strong.predict_proba(rows) + 5e-6, X, exact=False) is None
    assert verify(strong.predict, strong.predict, X, exact=True) is None
    assert verify(strong.predict_proba, lambda rows: strong.predict_proba(rows) + 2e-5, X, exact=False) is not None


def test_a_model_of_another_framework_is_served_as_it_is(tmp_path: Path) -> None:
    from skl2onnx import to_onnx

    onnx_model = to_onnx(LogisticRegression(max_iter=1000).fit(X, Y), X[:1].astype(np.float32))
    (tmp_path / "model.onnx").write_bytes(onnx_model.SerializeToString())
    runtime = loaded(OnnxRuntime(tmp_path, RuntimeSettings("m")))
    outcome = compile_runtime(runtime)
    assert not outcome.active
    assert outcome.reason == "the onnx compiled path converts scikit-learn, XGBoost and LightGBM models; this is a onnx model"
    with pytest.raises(InvalidParameter, match="Unknown compile target 'tvm'"):
        compile_runtime(runtime, "tvm")


# ---------------------------------------------------------------- inputs the graph was not built for


def test_inputs_the_graph_was_not_built_for_get_the_original_answer(tmp_path: Path) -> None:
    model = LogisticRegression(max_iter=1000).fit(X, Y)
    compiled = sklearn_runtime(model, tmp_path / "compiled")
    assert compile_runtime(compiled).active
    plain = sklearn_runtime(model, tmp_path / "plain")

    def outcome(runtime: Runtime, inputs: list[Tensor]) -> Any:
        try:
            return [t.data.tolist() for t in runtime.predict(inputs, ["predict"], {})]
        except InvalidParameter as error:
            return error.message

    nan_row = X[:2].copy()
    nan_row[1, 2] = np.nan
    cases = {
        "three features": [Tensor("input-0", X[:2, :3])],
        "no rows": [Tensor("input-0", np.zeros((0, 4)))],
        "a missing value": [Tensor("input-0", nan_row)],
        "too large for float32": [Tensor("input-0", np.full((1, 4), 1e300))],
        "integers": [Tensor("input-0", np.array([[5, 3, 1, 0], [7, 3, 6, 2]], dtype=np.int64))],
    }
    for name, inputs in cases.items():
        assert outcome(compiled, inputs) == outcome(plain, inputs), name
    assert "features" in outcome(compiled, cases["three features"])


# ---------------------------------------------------------------- the data plane


def test_the_data_plane_reports_which_path_answers(tmp_path: Path) -> None:
    forest = RandomForestClassifier(n_estimators=10, random_state=0).fit(X, Y)
    joblib.dump(forest, tmp_path / "model.joblib")
    (tmp_path / "custom").mkdir()
    joblib.dump(ClosestToOrigin().fit(X, Y), tmp_path / "custom" / "model.joblib")

    async def start(folder: Path) -> DataPlane:
        plane = DataPlane(SklearnRuntime(folder, RuntimeSettings("iris")), ServingMetrics("iris"), compile="onnx")
        await plane.start()
        return plane

    compiled = asyncio.run(start(tmp_path))
    assert compiled.compiled is not None and compiled.compiled.active
    assert compiled.metadata is not None and compiled.metadata.parameters is not None
    assert compiled.metadata.parameters["compiled"] == "onnx"
    assert 'labdeck_serving_compiled{model="iris",target="onnx"} 1.0' in compiled.metrics.render().decode()

    fallen_back = asyncio.run(start(tmp_path / "custom"))
    assert fallen_back.metadata is not None and fallen_back.metadata.parameters is not None
    assert fallen_back.metadata.parameters["compiled"] == "none"
    assert "does not convert to ONNX" in fallen_back.metadata.parameters["compile_note"]
    assert 'labdeck_serving_compiled{model="iris",target="onnx"} 0.0' in fallen_back.metrics.render().decode()

    plain = DataPlane(SklearnRuntime(tmp_path, RuntimeSettings("iris")), ServingMetrics("iris"))
    asyncio.run(plain.start())
    assert plain.compiled is None and plain.metadata is not None and not plain.metadata.parameters


# ---------------------------------------------------------------- labdeck serve --compile onnx


@pytest.fixture
def served_forest(tmp_path: Path) -> Iterator[tuple[str, Any, list[str]]]:
    model = RandomForestClassifier(n_estimators=100, random_state=0).fit(X, Y)
    folder = tmp_path / "forest"
    folder.mkdir()
    joblib.dump(model, folder / "model.joblib")
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    process = subprocess.Popen(
        [sys.executable, "-m", "labdeck", "serve", str(folder), "--name", "forest", "--port", "0", "--grpc-port", "-1",
         "--compile", "onnx", "--cache-dir", str(tmp_path / "cache")],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env={**env, "PYTHONUNBUFFERED": "1"},
    )
    lines: list[str] = []
    found = threading.Event()

    def read() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            lines.append(line)
            if "http://127.0.0.1:" in line:
                found.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        found.wait(120)
        match = re.search(r"http://127\.0\.0\.1:(\d+)", "".join(lines))
        assert match, "".join(lines)
        url = f"http://127.0.0.1:{match.group(1)}"
        with httpx.Client(base_url=url, timeout=30) as client:
            for _ in range(1200):  # until the worker has loaded, compiled and warmed up
                if process.poll() is not None:
                    raise AssertionError("labdeck serve exited:\n" + "".join(lines))
                try:
                    if client.get("/v2/health/ready").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
        yield url, model, lines
    finally:
        process.terminate()
        process.wait(60)
        reader.join(10)


def test_labdeck_serve_compile_onnx_answers_as_sklearn(served_forest: tuple[str, Any, list[str]]) -> None:
    url, model, lines = served_forest
    with httpx.Client(base_url=url, timeout=30) as client:
        request = {
            "inputs": [{"name": "input-0", "datatype": "FP64", "shape": list(X.shape), "data": X.ravel().tolist()}],
            "outputs": [{"name": "predict"}, {"name": "predict_proba"}],
        }
        reply = client.post("/v2/models/forest/infer", json=request)
        assert reply.status_code == 200, reply.text
        outputs = {o["name"]: o for o in reply.json()["outputs"]}
        assert outputs["predict"]["datatype"] == "INT64" and outputs["predict"]["shape"] == [150]
        assert outputs["predict"]["data"] == model.predict(X).tolist()
        assert outputs["predict_proba"]["datatype"] == "FP64" and outputs["predict_proba"]["shape"] == [150, 3]
        np.testing.assert_allclose(np.reshape(outputs["predict_proba"]["data"], (150, 3)), model.predict_proba(X), rtol=0, atol=1e-5)

        one = client.post("/v2/models/forest/infer", json={"inputs": [{"name": "input-0", "datatype": "FP64", "shape": [1, 4], "data": X[100].tolist()}]})
        assert one.json()["outputs"][0]["data"] == model.predict(X[100:101]).tolist()

        metadata = client.get("/v2/models/forest").json()
        assert metadata["parameters"]["compiled"] == "onnx"
        assert "predict, predict_proba verified on" in metadata["parameters"]["compile_note"]
        assert 'labdeck_serving_compiled{model="forest",target="onnx"} 1.0' in client.get("/metrics").text
    assert any("--compile onnx: predict, predict_proba verified on" in line for line in lines), "".join(lines)
