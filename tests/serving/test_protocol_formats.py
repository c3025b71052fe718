"""Every model format the runtimes recognise, served by ``labdeck serve`` and asked over V2
REST: the answer is exactly what the model itself predicts (labels equal, probabilities
equal to the last bit: orjson writes the shortest repr, so float64 and float32 round-trip).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from tests.serving.models_kit import SERVERS, Models, Servers, expected

FORMATS = list(SERVERS)  # "iris" is the skops LogisticRegression

# the outputs each format answers besides its default one
EXTRA_OUTPUTS = {
    "iris": ["predict_proba"], "lr_pickle": ["predict_proba"], "lr_cloudpickle": ["predict_proba"],
    "rf_seldon": ["predict_proba"], "xgbc_json": ["predict_proba"], "xgb_mlflow": ["predict_proba"],
    "lgb_mlflow_sklearn": ["predict_proba"], "onnx": ["probabilities"],
}
PLATFORM = {
    "iris": "sklearn", "lr": "sklearn", "rf": "sklearn", "xgb": "xgboost", "xgbc": "xgboost", "lgb": "lightgbm", "onnx": "onnxruntime_onnx",
}


@pytest.fixture(scope="module", autouse=True)
def _all_servers(servers: Servers) -> None:
    servers.start(FORMATS)


def v2_json(array: np.ndarray, name: str = "x") -> dict[str, Any]:
    datatype = {"float64": "FP64", "float32": "FP32"}[str(array.dtype)]
    return {"name": name, "shape": list(array.shape), "datatype": datatype, "data": array.reshape(-1).tolist()}


def decoded(output: dict[str, Any]) -> np.ndarray:
    dtype = {"FP64": np.float64, "FP32": np.float32, "INT64": np.int64, "INT32": np.int32, "BYTES": object}[output["datatype"]]
    return np.array(output["data"], dtype=dtype).reshape(output["shape"])


@pytest.mark.parametrize("key", FORMATS)
def test_predictions_equal_the_models_own(key: str, trained: Models, servers: Servers) -> None:
    server = servers.get(key)
    model = trained[SERVERS[key][0]]
    outputs = ["predict" if key != "onnx" else "label", *EXTRA_OUTPUTS.get(key, [])]
    with server.http() as http:
        meta = http.get(f"/v2/models/{server.name}")
        assert meta.status_code == 200, meta.text
        assert meta.json()["platform"] == PLATFORM[key.split("_")[0]]
        answer = http.post(
            f"/v2/models/{server.name}/infer",
            json={"inputs": [v2_json(trained.X)], "outputs": [{"name": o} for o in outputs]},
        )
        assert answer.status_code == 200, answer.text
        got = {o["name"]: decoded(o) for o in answer.json()["outputs"]}
        assert list(got) == outputs
        for name in outputs:
            want = expected(model, trained.X, name)
            if want.dtype.kind in "USO":
                want = want.astype(object)
            else:
                assert got[name].dtype == want.dtype, (name, got[name].dtype, want.dtype)
            np.testing.assert_array_equal(got[name], want)
        # with no output asked for, the default answers
        plain = http.post(f"/v2/models/{server.name}/infer", json={"inputs": [v2_json(trained.X[:5])]})
        assert plain.status_code == 200, plain.text
        (first,) = plain.json()["outputs"]
        np.testing.assert_array_equal(decoded(first), got[outputs[0]][:5])


def test_classifier_labels_are_species_names(trained: Models, servers: Servers) -> None:
    """The Seldon-layout forest predicts strings: V2 carries them as BYTES."""
    server = servers.get("rf_seldon")
    with server.http() as http:
        answer = http.post("/v2/models/rf_seldon/infer", json={"inputs": [v2_json(trained.X[[0, 60, 120]])]})
    assert answer.status_code == 200, answer.text
    (out,) = answer.json()["outputs"]
    assert out["datatype"] == "BYTES"
    assert out["data"] == ["setosa", "versicolor", "virginica"]
