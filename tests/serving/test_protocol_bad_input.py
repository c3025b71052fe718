"""The bad-input matrix: every malformed or unsuitable request, on every HTTP protocol
(V2 REST, Seldon v1, MLflow scoring; gRPC has its own in test_protocol_v2_grpc), is a 4xx
in that protocol's error shape with a message that names the problem, never a 5xx, and the
server answers the next good request correctly.

The frameworks' own refusals count too: a model without a signature (Seldon's
``model.joblib``, XGBoost and LightGBM files, ONNX) is sent too few or too many features,
or text, and the framework's error must become a 400 that says so.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pytest

from tests.serving.models_kit import IRIS_ROWS, MAX_BODY_MB, Models, Server, Servers, expected

NO_SIGNATURE = ["rf_seldon", "xgb_json", "xgbc_json", "lgb_txt", "lgb_mlflow_sklearn", "onnx"]


@pytest.fixture(scope="module", autouse=True)
def _started(servers: Servers) -> None:
    servers.start(["iris", *NO_SIGNATURE])


def v2_input(data: Any, shape: list[int], datatype: str = "FP64", name: str = "x") -> dict[str, Any]:
    return {"name": name, "shape": shape, "datatype": datatype, "data": data}


GOOD = v2_input(IRIS_ROWS.reshape(-1).tolist(), [3, 4])
TOO_BIG = b" " * int(MAX_BODY_MB * 1024 * 1024 + 1024)

def binary(sent: int, declared: int | None = None) -> tuple[bytes, dict[str, str]]:
    """A binary-extension body for a [3, 4] FP64 input (96 bytes) whose header declares
    ``declared`` bytes (default: what is sent) and which carries ``sent`` bytes."""
    size = sent if declared is None else declared
    head = orjson.dumps({"inputs": [{"name": "x", "shape": [3, 4], "datatype": "FP64", "parameters": {"binary_data_size": size}}]})
    return head + bytes(sent), {"Inference-Header-Content-Length": str(len(head))}


# (id, body: dict -> JSON | bytes -> as is, extra headers, status, phrase in the error)
V2_CASES: list[tuple[str, Any, dict[str, str], int, str]] = [
    ("malformed JSON", b'{"inputs": [', {}, 400, "Malformed JSON"),
    ("not an object", [GOOD], {}, 400, "must be a JSON object"),
    ("no inputs", {}, {}, 400, "non-empty 'inputs'"),
    ("empty inputs", {"inputs": []}, {}, 400, "non-empty 'inputs'"),
    ("an input that is not an object", {"inputs": [[1, 2]]}, {}, 400, "inputs[0] must be an object"),
    ("an input without a name", {"inputs": [{"shape": [1], "datatype": "FP64", "data": [1]}]}, {}, 400, "needs a 'name'"),
    ("unknown datatype", {"inputs": [{**GOOD, "datatype": "FP99"}]}, {}, 400, "Unknown datatype 'FP99'"),
    ("datatype not a string", {"inputs": [{**GOOD, "datatype": 11}]}, {}, 400, "needs a 'datatype'"),
    ("shape not a list", {"inputs": [{**GOOD, "shape": "3x4"}]}, {}, 400, "'shape' must be a list"),
    ("negative shape", {"inputs": [{**GOOD, "shape": [-3, -4]}]}, {}, 400, "non-negative"),
    ("shape against data", {"inputs": [{**GOOD, "shape": [2, 4]}]}, {}, 400, "shape [2, 4] needs 8 values but data has 12"),
    ("ragged nested data", {"inputs": [v2_input([[5.1, 3.5, 1.4, 0.2], [6.7]], [2, 4])]}, {}, 400, "cannot be read as FP64"),
    ("no data", {"inputs": [{"name": "x", "shape": [3, 4], "datatype": "FP64"}]}, {}, 400, "has no 'data'"),
    ("a string in a float tensor", {"inputs": [v2_input([5.1, "3.5x", 1.4, 0.2], [1, 4])]}, {}, 400, "cannot be read as FP64"),
    ("a number as a string", {"inputs": [v2_input([5.1, "3.5", 1.4, 0.2], [1, 4])]}, {}, 400, "FP64 elements must be numbers"),
    ("null in a float tensor", {"inputs": [v2_input([5.1, None, 1.4, 0.2], [1, 4])]}, {}, 400, "FP64 elements must be numbers"),
    ("booleans in a float tensor", {"inputs": [v2_input([True, False, True, True], [1, 4])]}, {}, 400, "FP64 elements must be numbers"),
    ("fractions in an integer tensor", {"inputs": [v2_input([5.1, 3.5, 1.4, 0.2], [1, 4], "INT64")]}, {}, 400, "INT64 elements must be whole numbers"),
    ("a value out of its datatype's range", {"inputs": [v2_input([51, 35, 14, 300], [1, 4], "INT8")]}, {}, 400, "cannot be read as INT8"),
    ("too few features", {"inputs": [v2_input(IRIS_ROWS[:, :3].reshape(-1).tolist(), [3, 3])]}, {}, 400, "the model takes [rows, 4]"),
    ("too many features", {"inputs": [v2_input([1.0] * 15, [3, 5])]}, {}, 400, "the model takes [rows, 4]"),
    ("a 3-D tensor", {"inputs": [v2_input([1.0] * 12, [1, 3, 4])]}, {}, 400, "the model takes [rows, 4]"),
    ("text for numbers", {"inputs": [v2_input(["a", "b", "c", "d"], [1, 4], "BYTES")]}, {}, 400, "must be FP64, got BYTES"),
    ("booleans for numbers", {"inputs": [v2_input([True, False, True, True], [1, 4], "BOOL")]}, {}, 400, "must be FP64, got BOOL"),
    ("FP16 as JSON", {"inputs": [v2_input([1.0] * 4, [1, 4], "FP16")]}, {}, 400, "FP16 has no JSON form"),
    ("an unknown column", {"inputs": [v2_input([1.0], [1], name="petal colour"), v2_input([1.0], [1], name="y")]}, {}, 400, "Unknown input 'petal colour'"),
    ("an unknown output", {"inputs": [GOOD], "outputs": [{"name": "explain"}]}, {}, 400, "no output 'explain'"),
    ("an output without a name", {"inputs": [GOOD], "outputs": [{"parameters": {}}]}, {}, 400, "outputs[0] needs a 'name'"),
    ("output parameters not an object", {"inputs": [GOOD], "outputs": [{"name": "predict", "parameters": 5}]}, {}, 400, "parameters"),
    ("parameters not an object", {"inputs": [GOOD], "parameters": ["binary_data_output"]}, {}, 400, "'parameters' must be an object"),
    ("an id that is not a string", {"inputs": [GOOD], "id": 7}, {}, 400, "'id' must be a string"),
    ("a header length past the body", orjson.dumps({"inputs": [GOOD]}), {"Inference-Header-Content-Length": "100000"}, 400, "does not fit"),
    ("a header length that is not a number", orjson.dumps({"inputs": [GOOD]}), {"Inference-Header-Content-Length": "ten"}, 400, "must be an integer"),
    ("binary data shorter than its shape", *binary(88), 400, "needs 96 bytes, got 88"),
    ("binary data past the body", *binary(88, declared=96), 400, "does not fit the binary part"),
    ("bytes after the last binary input", *binary(100, declared=96), 400, "4 bytes after the last binary input"),
    ("a body over --max-body-mb", TOO_BIG, {}, 413, "larger than the limit"),
]


def post(server: Server, path: str, body: Any, headers: dict[str, str] | None = None) -> Any:
    with server.http() as http:
        if isinstance(body, bytes):
            return http.post(path, content=body, headers={"Content-Type": "application/json", **(headers or {})})
        return http.post(path, json=body, headers=headers or {})


def answers_correctly_after(server: Server, trained: Models) -> None:
    reply = post(server, "/v2/models/iris/infer", {"inputs": [GOOD]})
    assert reply.status_code == 200, reply.text
    assert reply.json()["outputs"][0]["data"] == expected(trained["lr_skops"], IRIS_ROWS).tolist()


@pytest.mark.parametrize(("body", "headers", "status", "phrase"), [c[1:] for c in V2_CASES], ids=[c[0] for c in V2_CASES])
def test_v2(body: Any, headers: dict[str, str], status: int, phrase: str, servers: Servers, trained: Models) -> None:
    iris = servers.get("iris")
    answer = post(iris, "/v2/models/iris/infer", body, headers)
    assert answer.status_code == status, answer.text
    assert set(answer.json()) == {"error"}
    assert phrase in answer.json()["error"], answer.json()["error"]
    answers_correctly_after(iris, trained)


def test_v2_unknown_model_and_endpoint(servers: Servers, trained: Models) -> None:
    iris = servers.get("iris")
    for path in ("/v2/models/petals/infer", "/v2/models/petals", "/v2/models/petals/ready", "/v2/models/iris/versions/9/infer"):
        answer = post(iris, path, {"inputs": [GOOD]}) if path.endswith("infer") else iris.http().get(path)
        assert answer.status_code == 404, (path, answer.text)
        assert "not found (this server serves iris)" in answer.json()["error"]
    with iris.http() as http:
        for method, path in (("GET", "/v2/models/iris/infer"), ("POST", "/v2/models/iris/explain"), ("GET", "/v3")):
            answer = http.request(method, path)
            assert answer.status_code == 404, (path, answer.text)
            assert "No endpoint" in answer.json()["error"]
    answers_correctly_after(iris, trained)


def test_the_connection_goes_on_after_a_413(servers: Servers, trained: Models) -> None:
    iris = servers.get("iris")
    with iris.http() as http:
        for path in ("/v2/models/iris/infer", "/api/v1.0/predictions", "/invocations"):
            refused = http.post(path, content=TOO_BIG + TOO_BIG, headers={"Content-Type": "application/json"})
            assert refused.status_code == 413, (path, refused.text)
            again = http.post("/v2/models/iris/infer", json={"inputs": [GOOD]})
            assert again.json()["outputs"][0]["data"] == expected(trained["lr_skops"], IRIS_ROWS).tolist()


SELDON_CASES: list[tuple[str, Any, int, str]] = [
    ("malformed JSON", b'{"data": {"ndarray": [[1,', 400, "Malformed JSON"),
    ("not an object", [[5.1, 3.5, 1.4, 0.2]], 400, "must be a JSON object"),
    ("no data", {"meta": {}}, 400, "needs 'data'"),
    ("data not an object", {"data": [[5.1, 3.5, 1.4, 0.2]]}, 400, "needs 'data'"),
    ("neither ndarray nor tensor", {"data": {"names": []}}, 400, "'ndarray' or 'tensor'"),
    ("a ragged ndarray", {"data": {"ndarray": [[5.1, 3.5, 1.4, 0.2], [1.0]]}}, 400, "rectangular array"),
    ("a string in the ndarray", {"data": {"ndarray": [[5.1, "3.5", 1.4, 0.2]]}}, 400, "must be FP64, got BYTES"),
    ("null in the ndarray", {"data": {"ndarray": [[5.1, None, 1.4, 0.2]]}}, 400, "rectangular array of numbers"),
    ("tensor without values", {"data": {"tensor": {"shape": [1, 4]}}}, 400, "needs 'shape' and 'values'"),
    ("tensor shape not a list", {"data": {"tensor": {"shape": 4, "values": [1, 2, 3, 4]}}}, 400, "list of non-negative integers"),
    ("tensor shape against values", {"data": {"tensor": {"shape": [2, 4], "values": [5.1, 3.5, 1.4, 0.2]}}}, 400, "needs 8 values but has 4"),
    ("too few features", {"data": {"ndarray": IRIS_ROWS[:, :3].tolist()}}, 400, "the model takes [rows, 4]"),
    ("names that half match the columns", {"data": {"names": ["sepal length (cm)", "b", "c", "d"], "ndarray": IRIS_ROWS.tolist()}}, 400, "do not match the model's columns"),
    ("a body over --max-body-mb", TOO_BIG, 413, "larger than the limit"),
]


@pytest.mark.parametrize(("body", "status", "phrase"), [c[1:] for c in SELDON_CASES], ids=[c[0] for c in SELDON_CASES])
def test_seldon(body: Any, status: int, phrase: str, servers: Servers, trained: Models) -> None:
    iris = servers.get("iris")
    answer = post(iris, "/api/v1.0/predictions", body)
    assert answer.status_code == status, answer.text
    error = answer.json()["status"]
    assert (error["status"], error["code"], error["reason"]) == (1, -1, "MICROSERVICE_BAD_DATA")
    assert phrase in error["info"], error["info"]
    answers_correctly_after(iris, trained)


MLFLOW_CASES: list[tuple[str, Any, int, str]] = [
    ("malformed JSON", b'{"inputs": [[1,', 400, "Malformed JSON"),
    ("no format", {"rows": IRIS_ROWS.tolist()}, 400, "exactly one of"),
    ("a ragged input", {"inputs": [[5.1, 3.5, 1.4, 0.2], [1.0]]}, 400, "rectangular array"),
    ("a string in the numbers", {"instances": [[5.1, "x", 1.4, 0.2]]}, 400, "must be FP64, got BYTES"),
    ("too few features", {"inputs": IRIS_ROWS[:, :3].tolist()}, 400, "the model takes [rows, 4]"),
    ("records of unequal columns", {"dataframe_records": [{"a": 1.0}, {"b": 2.0}]}, 400, "Every record needs the column 'a'"),
    ("a body over --max-body-mb", TOO_BIG, 413, "larger than the limit"),
]


@pytest.mark.parametrize(("body", "status", "phrase"), [c[1:] for c in MLFLOW_CASES], ids=[c[0] for c in MLFLOW_CASES])
def test_mlflow(body: Any, status: int, phrase: str, servers: Servers, trained: Models) -> None:
    iris = servers.get("iris")
    answer = post(iris, "/invocations", body)
    assert answer.status_code == status, answer.text
    assert answer.json()["error_code"] == "BAD_REQUEST"
    assert phrase in answer.json()["message"], answer.json()["message"]
    answers_correctly_after(iris, trained)


@pytest.mark.parametrize("key", NO_SIGNATURE)
def test_frameworks_refusals_are_400s(key: str, servers: Servers, trained: Models) -> None:
    """No signature to check against: the framework itself refuses, and says why."""
    server = servers.get(key)
    path = f"/v2/models/{server.name}/infer"
    bad = {
        "too few features": v2_input(IRIS_ROWS[:, :3].reshape(-1).tolist(), [3, 3]),
        "too many features": v2_input([1.0] * 15, [3, 5]),
        "text": v2_input(["five", "three", "one", "none"], [1, 4], "BYTES"),
        "a 3-D tensor": v2_input([1.0] * 12, [1, 3, 4]),
    }
    for case, tensor in bad.items():
        answer = post(server, path, {"inputs": [tensor]})
        assert answer.status_code == 400, (case, answer.status_code, answer.text)
        assert answer.json()["error"], case
    good = post(server, path, {"inputs": [GOOD]})
    assert good.status_code == 200, good.text
    want = expected(trained[key], IRIS_ROWS, "label" if key == "onnx" else "predict")
    got = good.json()["outputs"][0]["data"]
    np.testing.assert_array_equal(np.array(got, dtype=want.dtype if want.dtype.kind not in "USO" else object).reshape(want.shape), want)


def test_booleans_reach_a_model_that_takes_them(servers: Servers, trained: Models) -> None:
    """Without a signature saying otherwise, BOOL goes to the model as it is (scikit-learn
    reads booleans as 0 and 1)."""
    forest = servers.get("rf_seldon")
    flags = np.array([[True, False, True, True], [False, False, False, True]])
    answer = post(forest, "/v2/models/rf_seldon/infer", {"inputs": [v2_input(flags.reshape(-1).tolist(), [2, 4], "BOOL")]})
    assert answer.status_code == 200, answer.text
    assert answer.json()["outputs"][0]["data"] == expected(trained["rf_seldon"], flags).tolist()


def test_no_request_left_a_traceback(servers: Servers) -> None:
    """Every refusal above was deliberate: no server logged an unhandled error."""
    for key in ("iris", *NO_SIGNATURE):
        log = servers.get(key).log()
        assert "Traceback" not in log and "unhandled error" not in log, f"{key}:\n{log}"
        # nor a warning per prediction (scikit-learn's about feature names, were the runtime
        # to hand a model fitted on a DataFrame its rows without letting it know)
        assert "does not have valid feature names" not in log, f"{key}:\n{log}"
