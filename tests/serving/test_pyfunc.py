"""The pyfunc runtime: ``labdeck serve`` on MLflow ``python_function`` models answers what
``mlflow.pyfunc.load_model(...).predict(...)`` answers, exactly, and holds requests to the
model's signature.

Three models-from-code (serve_kit): ``scorer`` has a column-based signature of mixed types
(a double, b long, c string), ``images`` one unnamed float32 tensor of shape [-1, 2, 3] and
two named outputs, ``weighted`` two named tensors (x float32 [-1, 3], w int64 [-1]). Each
is served once for the module, with gRPC. The signature shows in V2 metadata (REST and
gRPC); a request that does not fit it (an unknown or missing input, a wrong type, a value an
integer input cannot hold, a wrong shape) is a 400 on V2 REST, /invocations and Seldon v1,
and INVALID_ARGUMENT on gRPC, naming the input and what the model expects.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import mlflow.pyfunc
import numpy as np
import pandas as pd
import pytest

from labdeck.serving.proto import inference_pb2 as pb
from labdeck.serving.proto import inference_pb2_grpc as pb_grpc
from tests.serving.serve_kit import (
    COLUMNS_EXAMPLE,
    COLUMNS_MODEL,
    IMAGES_EXAMPLE,
    NAMED_EXAMPLE,
    NAMED_TENSORS_MODEL,
    TENSOR_MODEL,
    Served,
    column_inputs,
    infer,
    save_pyfunc,
    start_serve,
    wait_ready,
)

MODELS = {
    "scorer": (COLUMNS_MODEL, COLUMNS_EXAMPLE),
    "images": (TENSOR_MODEL, IMAGES_EXAMPLE),
    "weighted": (NAMED_TENSORS_MODEL, NAMED_EXAMPLE),
}


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("pyfunc-models")
    return {name: save_pyfunc(root / name, code, example) for name, (code, example) in MODELS.items()}


@pytest.fixture(scope="module")
def served(saved: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Served]]:
    root = tmp_path_factory.mktemp("pyfunc-serve")
    servers = {name: start_serve(str(path), root / name, ready=False) for name, path in saved.items()}
    try:
        for server in servers.values():
            wait_ready(server)
        yield servers
    finally:
        codes = {name: server.stop() for name, server in servers.items()}
    assert codes == {name: 0 for name in servers}, {name: servers[name].log() for name in servers}


@pytest.fixture(scope="module")
def oracle(saved: dict[str, Path]) -> dict[str, Any]:
    """Each model as mlflow loads it in this process."""
    return {name: mlflow.pyfunc.load_model(str(path)) for name, path in saved.items()}


def stub(server: Served) -> pb_grpc.GRPCInferenceServiceStub:
    assert server.grpc_target is not None
    return pb_grpc.GRPCInferenceServiceStub(grpc.insecure_channel(server.grpc_target))


def grpc_request(model: str, tensors: dict[str, np.ndarray], datatypes: dict[str, str] | None = None) -> Any:
    """A ModelInferRequest with typed contents (V2 datatypes from the arrays unless given)."""
    fields = {"FP64": "fp64_contents", "FP32": "fp32_contents", "INT64": "int64_contents", "BYTES": "bytes_contents"}
    request = pb.ModelInferRequest(model_name=model)
    for name, array in tensors.items():
        datatype = (datatypes or {}).get(name) or {"float64": "FP64", "float32": "FP32", "int64": "INT64"}.get(
            str(array.dtype), "BYTES"
        )
        tensor = request.inputs.add(name=name, datatype=datatype, shape=list(array.shape))
        values = [v.encode() if isinstance(v, str) else v for v in array.reshape(-1).tolist()]
        getattr(tensor.contents, fields[datatype]).extend(values)
    return request


def frame(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "a": rng.normal(size=rows),
            "b": rng.integers(-1000, 1000, size=rows, dtype=np.int64),
            "c": ["".join("xyz"[int(i)] for i in rng.integers(0, 3, size=int(n))) for n in rng.integers(1, 8, size=rows)],
        }
    )


def outputs(body: dict[str, Any]) -> dict[str, np.ndarray]:
    return {o["name"]: np.asarray(o["data"]).reshape(o["shape"]) for o in body["outputs"]}


# ---------------------------------------------------------------------------- predictions


def test_column_signature_predictions_equal_mlflow(served, oracle):
    server = served["scorer"]
    data = frame(50, seed=1)
    expected = oracle["scorer"].predict(data).to_numpy()

    answer = infer(server, "scorer", column_inputs(data))
    assert answer.status_code == 200, answer.text
    got = outputs(answer.json())
    assert list(got) == ["predict"] and got["predict"].dtype == np.float64
    assert np.array_equal(got["predict"], expected)

    records = server.post("/invocations", json={"dataframe_records": data.to_dict(orient="records")})
    assert records.status_code == 200, records.text
    assert np.array_equal(np.asarray(records.json()["predictions"]), expected)
    split = server.post("/invocations", json={"dataframe_split": data.to_dict(orient="split", index=False)})
    assert split.status_code == 200, split.text
    assert np.array_equal(np.asarray(split.json()["predictions"]), expected)
    csv = server.post("/invocations", content=data.to_csv(index=False), headers={"content-type": "text/csv"})
    assert csv.status_code == 200, csv.text
    assert np.array_equal(np.asarray(csv.json()["predictions"]), expected)

    reply = stub(server).ModelInfer(grpc_request("scorer", {c: data[c].to_numpy() for c in data.columns}))
    assert np.array_equal(np.asarray(reply.outputs[0].contents.fp64_contents), expected)


def test_tensor_signature_predictions_equal_mlflow(served, oracle):
    server = served["images"]
    images = np.random.default_rng(2).normal(size=(7, 2, 3)).astype(np.float32)
    expected = oracle["images"].predict(images)

    body = {"name": "input-0", "shape": [7, 2, 3], "datatype": "FP32", "data": images.reshape(-1).tolist()}
    answer = infer(server, "images", [body])
    assert answer.status_code == 200, answer.text
    got = outputs(answer.json())
    assert set(got) == {"total", "brightest"}
    for name in got:
        assert np.array_equal(got[name].astype(np.float32), expected[name]), name
    # numbers of another type are converted to the declared float32, as the model would get them
    as_fp64 = infer(server, "images", [{**body, "datatype": "FP64"}])
    assert as_fp64.status_code == 200, as_fp64.text
    assert np.array_equal(outputs(as_fp64.json())["total"].astype(np.float32), expected["total"])

    scoring = server.post("/invocations", json={"inputs": images.tolist()})
    assert scoring.status_code == 200, scoring.text
    rows = scoring.json()["predictions"]
    assert np.array_equal(np.asarray([r["total"] for r in rows], dtype=np.float32), expected["total"])

    seldon = server.post("/api/v1.0/predictions", json={"data": {"tensor": {"shape": [7, 2, 3], "values": images.reshape(-1).tolist()}}})
    assert seldon.status_code == 200, seldon.text
    assert np.array_equal(np.asarray(seldon.json()["data"]["tensor"]["values"], dtype=np.float32), expected["total"])

    request = pb.ModelInferRequest(model_name="images")
    request.inputs.add(name="input-0", datatype="FP32", shape=[7, 2, 3])
    request.raw_input_contents.append(images.tobytes())
    reply = stub(server).ModelInfer(request)
    raw = dict(zip([o.name for o in reply.outputs], reply.raw_output_contents, strict=True))
    assert np.array_equal(np.frombuffer(raw["brightest"], dtype=np.float32), expected["brightest"])


def test_named_tensor_signature_predictions_equal_mlflow(served, oracle):
    server = served["weighted"]
    rng = np.random.default_rng(3)
    x = rng.normal(size=(5, 3)).astype(np.float32)
    w = rng.integers(-9, 9, size=5, dtype=np.int64)
    expected = oracle["weighted"].predict({"x": x, "w": w})

    answer = infer(
        server,
        "weighted",
        [
            {"name": "w", "shape": [5], "datatype": "INT64", "data": w.tolist()},
            {"name": "x", "shape": [5, 3], "datatype": "FP32", "data": x.reshape(-1).tolist()},
        ],
    )
    assert answer.status_code == 200, answer.text
    assert np.array_equal(outputs(answer.json())["predict"], expected)

    scoring = server.post("/invocations", json={"inputs": {"x": x.tolist(), "w": w.tolist()}})
    assert scoring.status_code == 200, scoring.text
    assert np.array_equal(np.asarray(scoring.json()["predictions"]), expected)

    reply = stub(server).ModelInfer(grpc_request("weighted", {"x": x, "w": w}))
    assert np.array_equal(np.asarray(reply.outputs[0].contents.fp64_contents), expected)


# ---------------------------------------------------------------------------- metadata

METADATA = {
    "scorer": (
        [("a", "FP64", [-1]), ("b", "INT64", [-1]), ("c", "BYTES", [-1])],
        [("predict", "FP64", [-1])],  # one unnamed output is answered as "predict"
    ),
    "images": (
        [("input-0", "FP32", [-1, 2, 3])],
        [("total", "FP32", [-1]), ("brightest", "FP32", [-1])],
    ),
    "weighted": (
        [("x", "FP32", [-1, 3]), ("w", "INT64", [-1])],
        [("predict", "FP64", [-1])],
    ),
}


@pytest.mark.parametrize("name", sorted(METADATA))
def test_signature_is_the_v2_metadata(served, name):
    server = served[name]
    inputs, outputs_ = METADATA[name]
    body = server.get(f"/v2/models/{name}").json()
    assert body["name"] == name and body["platform"] == "mlflow"
    assert [(i["name"], i["datatype"], i["shape"]) for i in body["inputs"]] == inputs
    assert [(o["name"], o["datatype"], o["shape"]) for o in body["outputs"]] == outputs_

    reply = stub(server).ModelMetadata(pb.ModelMetadataRequest(name=name))
    assert [(i.name, i.datatype, list(i.shape)) for i in reply.inputs] == inputs
    assert [(o.name, o.datatype, list(o.shape)) for o in reply.outputs] == outputs_


# ---------------------------------------------------------------------------- enforcement

GOOD = frame(3, seed=4)


def _v2_columns(**replace: dict[str, Any]) -> list[dict[str, Any]]:
    """The scorer's three inputs, with some replaced (None drops one)."""
    by_name = {i["name"]: i for i in column_inputs(GOOD)}
    for name, value in replace.items():
        if value is None:
            del by_name[name]
        else:
            by_name[name] = {**by_name.get(name, {}), "name": value.get("name", name), **value}
    return list(by_name.values())


SCORER_REFUSALS = [
    (
        "unknown column",
        _v2_columns(z={"name": "z", "shape": [3], "datatype": "FP64", "data": [1, 2, 3]}),
        ["Unknown input 'z'", "a, b, c"],
    ),
    ("missing column", _v2_columns(c=None), ["Missing input 'c'", "a, b, c"]),
    ("number for text", _v2_columns(c={"datatype": "FP64", "data": [1.0, 2.0, 3.0]}), ["Input 'c' must be BYTES, got FP64"]),
    ("text for a number", _v2_columns(a={"datatype": "BYTES", "data": ["1", "2", "3"]}), ["Input 'a' must be FP64, got BYTES"]),
    ("fraction for a long", _v2_columns(b={"datatype": "FP64", "data": [1.0, 2.5, 3.0]}), ["Input 'b' must be INT64"]),
    ("uneven columns", _v2_columns(a={"shape": [2], "data": [1.0, 2.0]}), ["Input 'b' has 3 rows where the others have 2"]),
]


@pytest.mark.parametrize(("inputs", "phrases"), [c[1:] for c in SCORER_REFUSALS], ids=[c[0] for c in SCORER_REFUSALS])
def test_v2_refuses_what_the_column_signature_does_not_allow(served, inputs, phrases):
    answer = infer(served["scorer"], "scorer", inputs)
    assert answer.status_code == 400, answer.text
    for phrase in phrases:
        assert phrase in answer.json()["error"]


def test_scoring_and_seldon_refuse_what_the_column_signature_does_not_allow(served):
    server = served["scorer"]

    def scoring(body: dict[str, Any]) -> str:
        answer = server.post("/invocations", json=body)
        assert answer.status_code == 400, answer.text
        assert answer.json()["error_code"] == "BAD_REQUEST"
        return answer.json()["message"]

    records = GOOD.to_dict(orient="records")
    assert "Unknown input 'z'" in scoring({"dataframe_records": [{**r, "z": 1} for r in records]})
    assert "Missing input 'c'" in scoring({"dataframe_split": {"columns": ["a", "b"], "data": [[1.0, 2]]}})
    assert "Input 'c' must be BYTES, got FP64" in scoring({"dataframe_records": [{**r, "c": 1.5} for r in records]})
    assert "Input 'b' must be INT64" in scoring({"dataframe_records": [{**r, "b": 0.5} for r in records]})

    def seldon(body: dict[str, Any]) -> str:
        answer = server.post("/api/v1.0/predictions", json=body)
        assert answer.status_code == 400, answer.text
        assert answer.json()["status"]["reason"] == "MICROSERVICE_BAD_DATA"
        return answer.json()["status"]["info"]

    assert "Unknown input 'z'" in seldon({"data": {"names": ["a", "b", "z"], "ndarray": [[1.0, 2, 3]]}})
    assert "the model takes [rows, 3]" in seldon({"data": {"names": ["a", "b"], "ndarray": [[1.0, 2]]}})
    assert "Input 'c' must be BYTES, got FP64" in seldon({"data": {"names": ["a", "b", "c"], "ndarray": [[1.0, 2, 3]]}})


def test_grpc_refuses_what_the_signature_does_not_allow(served):
    def refused(name: str, request: Any) -> str:
        with pytest.raises(grpc.RpcError) as caught:
            stub(served[name]).ModelInfer(request)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, caught.value.details()
        return caught.value.details()

    columns = {c: GOOD[c].to_numpy() for c in GOOD.columns}
    assert "Missing input 'c'" in refused("scorer", grpc_request("scorer", {"a": columns["a"], "b": columns["b"]}))
    assert "Input 'c' must be BYTES, got FP64" in refused("scorer", grpc_request("scorer", {**columns, "c": np.ones(3)}))
    assert "Input 'input-0' has shape [1, 3, 2]" in refused(
        "images", grpc_request("images", {"input-0": np.zeros((1, 3, 2), np.float32)})
    )
    assert "Missing input 'w'" in refused("weighted", grpc_request("weighted", {"x": np.zeros((1, 3), np.float32)}))


TENSOR_REFUSALS = [
    (
        "images",
        [{"name": "input-0", "shape": [1, 3, 2], "datatype": "FP32", "data": [0] * 6}],
        ["Input 'input-0' has shape [1, 3, 2]", "the model expects [-1, 2, 3]"],
    ),
    ("images", [{"name": "input-0", "shape": [1, 6], "datatype": "FP32", "data": [0] * 6}], ["the model expects [-1, 2, 3]"]),
    ("images", [{"name": "input-0", "shape": [1, 2, 3], "datatype": "BYTES", "data": ["x"] * 6}], ["must be FP32, got BYTES"]),
    ("weighted", [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [0, 0, 0]}], ["Missing input 'w'", "x, w"]),
    (
        "weighted",
        [
            {"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [0, 0, 0]},
            {"name": "w", "shape": [1], "datatype": "FP64", "data": [0.5]},
        ],
        ["Input 'w' must be INT64"],
    ),
    (
        "weighted",
        [
            {"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [0, 0, 0]},
            {"name": "w", "shape": [1], "datatype": "INT64", "data": [1]},
            {"name": "w2", "shape": [1], "datatype": "INT64", "data": [1]},
        ],
        None,  # an input the model does not take is left out, as mlflow leaves it out
    ),
]


@pytest.mark.parametrize(("name", "inputs", "phrases"), TENSOR_REFUSALS)
def test_v2_refuses_what_the_tensor_signature_does_not_allow(served, name, inputs, phrases):
    answer = infer(served[name], name, inputs)
    if phrases is None:
        assert answer.status_code == 200, answer.text
        return
    assert answer.status_code == 400, answer.text
    for phrase in phrases:
        assert phrase in answer.json()["error"]
