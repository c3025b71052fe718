"""V2 (Open Inference Protocol) over REST, spoken by Triton's own client (``tritonclient.http``)
in JSON mode and in its default binary mode (``Inference-Header-Content-Length``), and by
plain httpx where the wire itself is the point.

The server is ``iris``: an MLflow (skops) LogisticRegression served as ``--name iris
--model-version 3``. Every answer is compared with the model's own ``predict`` /
``predict_proba`` exactly.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from tests.serving.models_kit import IRIS_ROWS, Models, Server, Servers, expected
from tests.serving.serve_kit import triton_http


@pytest.fixture(scope="module")
def iris(servers: Servers) -> Server:
    return servers.get("iris")


@pytest.fixture(scope="module")
def client(iris: Server) -> Any:
    with triton_http(iris.url) as c:
        yield c


def tensor(array: np.ndarray, datatype: str, *, binary: bool, name: str = "x") -> Any:
    given = triton.InferInput(name, list(array.shape), datatype)
    given.set_data_from_numpy(array, binary_data=binary)
    return given


# ------------------------------------------------------------------ health and metadata


def test_health_and_server_metadata(client: Any, iris: Server) -> None:
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("iris")
    assert client.is_model_ready("iris", "3")
    assert not client.is_model_ready("iris", "4")
    assert not client.is_model_ready("petals")
    meta = client.get_server_metadata()
    assert meta["name"] == "labdeck"
    assert "binary_tensor_data" in meta["extensions"]
    with iris.http() as http:
        assert http.get("/v2/health/live").json() == {"live": True}
        assert http.get("/v2/health/ready").json() == {"ready": True}
        assert http.get("/v2/models/iris/versions/3/ready").json() == {"name": "iris", "ready": True}


def test_model_metadata_describes_the_signature(client: Any, trained: Models, iris: Server) -> None:
    meta = client.get_model_metadata("iris")
    assert meta["name"] == "iris"
    assert meta["versions"] == ["3"]
    assert meta["platform"] == "sklearn"
    assert [(i["name"], i["datatype"], i["shape"]) for i in meta["inputs"]] == [(c, "FP64", [-1]) for c in trained.columns]
    assert client.get_model_metadata("iris", "3") == meta
    with iris.http() as http:
        assert http.get("/v2/models/iris/versions/3").json() == meta
        missing = http.get("/v2/models/iris/versions/4")
        assert missing.status_code == 404
        assert "iris version 4" in missing.json()["error"]


def test_every_output_the_metadata_names_can_be_asked_for(client: Any, trained: Models) -> None:
    """A client that reads the outputs from the metadata and asks for them gets them
    (the signature's unnamed output is the model's ``predict``)."""
    meta = client.get_model_metadata("iris")
    names = [o["name"] for o in meta["outputs"]]
    assert names == ["predict"]
    assert [o["datatype"] for o in meta["outputs"]] == ["INT64"]
    outputs = [triton.InferRequestedOutput(n, binary_data=False) for n in names]
    result = client.infer("iris", [tensor(IRIS_ROWS, "FP64", binary=False)], outputs=outputs)
    np.testing.assert_array_equal(result.as_numpy("predict"), expected(trained["lr_skops"], IRIS_ROWS))


# ------------------------------------------------------------------ inference


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_infer_equals_the_models_own_answers(binary: bool, client: Any, trained: Models) -> None:
    model = trained["lr_skops"]
    outputs = [triton.InferRequestedOutput(n, binary_data=binary) for n in ("predict", "predict_proba")]
    result = client.infer("iris", [tensor(trained.X, "FP64", binary=binary)], outputs=outputs, request_id="r-17")
    response = result.get_response()
    assert response["model_name"] == "iris"
    assert response["model_version"] == "3"
    assert response["id"] == "r-17"
    assert [(o["name"], o["datatype"], o["shape"]) for o in response["outputs"]] == [
        ("predict", "INT64", [150]), ("predict_proba", "FP64", [150, 3]),
    ]
    assert all(("data" in o) is not binary for o in response["outputs"])
    np.testing.assert_array_equal(result.as_numpy("predict"), expected(model, trained.X))
    np.testing.assert_array_equal(result.as_numpy("predict_proba"), expected(model, trained.X, "predict_proba"))


def test_binary_mode_with_no_output_named_answers_predict_in_binary(client: Any, trained: Models, iris: Server) -> None:
    result = client.infer("iris", [tensor(IRIS_ROWS, "FP64", binary=True)])
    (out,) = result.get_response()["outputs"]
    assert out["name"] == "predict"
    assert out["parameters"]["binary_data_size"] == 8 * len(IRIS_ROWS)
    np.testing.assert_array_equal(result.as_numpy("predict"), expected(trained["lr_skops"], IRIS_ROWS))
    # and the same body by hand: the answer's header length splits JSON from bytes
    with iris.http() as http:
        head = b'{"inputs":[{"name":"x","shape":[3,4],"datatype":"FP64","parameters":{"binary_data_size":96}}],"parameters":{"binary_data_output":true}}'
        answer = http.post(
            "/v2/models/iris/infer",
            content=head + IRIS_ROWS.astype("<f8").tobytes(),
            headers={"Inference-Header-Content-Length": str(len(head))},
        )
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/octet-stream"
    split = int(answer.headers["inference-header-content-length"])
    labels = np.frombuffer(answer.content[split:], dtype="<i8")
    np.testing.assert_array_equal(labels, expected(trained["lr_skops"], IRIS_ROWS))


@pytest.mark.parametrize("datatype", ["FP32", "FP64", "INT32", "INT64"])
@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_numeric_datatypes_are_accepted(datatype: str, binary: bool, client: Any, trained: Models) -> None:
    dtype = {"FP32": np.float32, "FP64": np.float64, "INT32": np.int32, "INT64": np.int64}[datatype]
    rows = (IRIS_ROWS * 10).astype(dtype) if datatype.startswith("INT") else IRIS_ROWS.astype(dtype)
    outputs = [triton.InferRequestedOutput(n, binary_data=binary) for n in ("predict", "predict_proba")]
    result = client.infer("iris", [tensor(rows, datatype, binary=binary)], outputs=outputs)
    as_sent = rows.astype(np.float64)  # the signature declares doubles: the server converts exactly so
    model = trained["lr_skops"]
    np.testing.assert_array_equal(result.as_numpy("predict"), expected(model, as_sent))
    np.testing.assert_array_equal(result.as_numpy("predict_proba"), expected(model, as_sent, "predict_proba"))


@pytest.mark.parametrize("datatype", ["INT8", "INT16", "UINT8", "UINT16", "UINT32", "UINT64"])
def test_small_integer_datatypes_in_json(datatype: str, trained: Models, iris: Server) -> None:
    rows = (IRIS_ROWS * 10).astype(np.int64)
    body = {"inputs": [{"name": "x", "shape": [3, 4], "datatype": datatype, "data": rows.reshape(-1).tolist()}]}
    with iris.http() as http:
        answer = http.post("/v2/models/iris/infer", json=body)
    assert answer.status_code == 200, answer.text
    assert answer.json()["outputs"][0]["data"] == expected(trained["lr_skops"], rows.astype(np.float64)).tolist()


def test_fp16_in_binary(client: Any, trained: Models) -> None:
    """FP16 has no JSON form; in binary it arrives, and the FP64 model sees its exact values."""
    rows = IRIS_ROWS.astype(np.float16)
    result = client.infer("iris", [tensor(rows, "FP16", binary=True)], outputs=[triton.InferRequestedOutput("predict_proba")])
    np.testing.assert_array_equal(result.as_numpy("predict_proba"), expected(trained["lr_skops"], rows.astype(np.float64), "predict_proba"))


def test_one_input_per_column_as_the_metadata_lists_them(client: Any, trained: Models) -> None:
    inputs = [tensor(np.ascontiguousarray(trained.X[:, i]), "FP64", binary=True, name=c) for i, c in enumerate(trained.columns)]
    # in another order than the signature's: columns are matched by name
    result = client.infer("iris", inputs[::-1], outputs=[triton.InferRequestedOutput("predict_proba")])
    np.testing.assert_array_equal(result.as_numpy("predict_proba"), expected(trained["lr_skops"], trained.X, "predict_proba"))


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_text_outputs(binary: bool, servers: Servers, trained: Models) -> None:
    """The forest's species names come back as BYTES, in JSON and in binary."""
    forest = servers.get("rf_seldon")
    with triton_http(forest.url) as c:
        outputs = [triton.InferRequestedOutput("predict", binary_data=binary)]
        result = c.infer("rf_seldon", [tensor(trained.X, "FP64", binary=binary)], outputs=outputs)
    assert result.get_response()["outputs"][0]["datatype"] == "BYTES"
    want = [str(s) for s in expected(trained["rf_seldon"], trained.X)]
    # tritonclient hands JSON strings back as str and binary ones as bytes
    if binary:
        want = [s.encode() for s in want]
    assert list(result.as_numpy("predict")) == want


def test_parameters_choose_the_method(client: Any, trained: Models) -> None:
    result = client.infer("iris", [tensor(IRIS_ROWS, "FP64", binary=False)], parameters={"method": "predict_proba"})
    (out,) = result.get_response()["outputs"]
    assert out["name"] == "predict_proba"
    np.testing.assert_array_equal(result.as_numpy("predict_proba"), expected(trained["lr_skops"], IRIS_ROWS, "predict_proba"))


def test_versioned_infer_path(client: Any, trained: Models, iris: Server) -> None:
    result = client.infer("iris", [tensor(IRIS_ROWS, "FP64", binary=True)], model_version="3")
    np.testing.assert_array_equal(result.as_numpy("predict"), expected(trained["lr_skops"], IRIS_ROWS))
    with pytest.raises(InferenceServerException) as refused:
        client.infer("iris", [tensor(IRIS_ROWS, "FP64", binary=True)], model_version="2")
    assert refused.value.status() == "404"
    assert "iris version 2 not found" in refused.value.message()


def test_nested_json_data_and_request_id(trained: Models, iris: Server) -> None:
    """Tensor data may be nested as well as flat; the id is echoed, or made up when absent."""
    body = {"id": "abc", "inputs": [{"name": "x", "shape": [3, 4], "datatype": "FP64", "data": IRIS_ROWS.tolist()}]}
    with iris.http() as http:
        answer = http.post("/v2/models/iris/infer", json=body)
        assert answer.status_code == 200, answer.text
        assert answer.json()["id"] == "abc"
        assert answer.json()["outputs"][0]["data"] == expected(trained["lr_skops"], IRIS_ROWS).tolist()
        del body["id"]
        made_up = {http.post("/v2/models/iris/infer", json=body).json()["id"] for _ in range(2)}
        assert len(made_up) == 2 and "" not in made_up  # a new one each time


def test_request_id_header_is_echoed(iris: Server) -> None:
    body = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [5.1, 3.5, 1.4, 0.2]}]}
    with iris.http() as http:
        for method, path, kwargs in (
            ("POST", "/v2/models/iris/infer", {"json": body}),
            ("POST", "/v2/models/nope/infer", {"json": body}),
            ("GET", "/v2/models/iris", {}),
            ("GET", "/v2/health/ready", {}),
            ("GET", "/no/such/path", {}),
            ("POST", "/api/v1.0/predictions", {"json": {"data": {"ndarray": [[5.1, 3.5, 1.4, 0.2]]}}}),
            ("POST", "/invocations", {"json": {"inputs": "nonsense"}}),
        ):
            answer = http.request(method, path, headers={"X-Request-Id": f"req-{path}"}, **kwargs)
            assert answer.headers.get("x-request-id") == f"req-{path}", (path, answer.status_code)
