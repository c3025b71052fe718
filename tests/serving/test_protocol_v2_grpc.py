"""V2 over gRPC, with a client built from the CHECKED-IN ``inference.proto``.

``grpc_tools.protoc`` compiles ``src/labdeck/serving/proto/inference.proto`` in the test;
the message classes and the method stubs are made from what it produced, in a descriptor
pool of their own. (Generated ``*_pb2`` modules would register the same ``inference.*``
symbols in protobuf's process-wide pool, where labdeck's own modules, imported by other
suites of this session, already hold them; a private pool cannot clash.) So the client
speaks the proto as written, and a server speaking anything else fails these tests.

Calls: ServerLive, ServerReady, ModelReady, ServerMetadata, ModelMetadata, and ModelInfer
with typed ``contents`` and with ``raw_input_contents`` (answered in
``raw_output_contents``). Answers equal the model's own predictions exactly; bad requests
are INVALID_ARGUMENT, unknown models NOT_FOUND, each with a details string that says what
was wrong. Triton's own gRPC client (``tritonclient.grpc``) gets the same answers.
"""

from __future__ import annotations

import ast
import json
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.message_factory import GetMessageClass

import labdeck
from tests.serving.models_kit import IRIS_ROWS, MAX_BODY_MB, Models, Servers, expected

SRC = Path(labdeck.__file__).resolve().parent.parent
PROTO = "labdeck/serving/proto/inference.proto"
SERVICE = "inference.GRPCInferenceService"


def compile_proto(out: Path) -> descriptor_pb2.FileDescriptorProto:
    """protoc on the checked-in proto: a descriptor set (what the client is built from) and
    the Python modules (``out/labdeck/serving/proto/inference_pb2*.py``, to compare)."""
    import grpc_tools
    from grpc_tools import protoc

    include = Path(grpc_tools.__file__).parent / "_proto"
    target = out / "inference.desc"
    status = protoc.main([
        "protoc", f"-I{SRC}", f"-I{include}", f"--descriptor_set_out={target}", f"--python_out={out}",
        f"--grpc_python_out={out}", str(SRC / PROTO),
    ])
    assert status == 0, "protoc could not compile the checked-in inference.proto"
    files = descriptor_pb2.FileDescriptorSet.FromString(target.read_bytes()).file
    assert [f.name for f in files] == [PROTO]
    return files[0]


def embedded_descriptor(module: Path) -> bytes:
    """The serialized descriptor a generated ``*_pb2.py`` registers (read, not imported)."""
    return next(
        node.args[0].value
        for node in ast.walk(ast.parse(module.read_text()))
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "AddSerializedFile"
    )


class V2Client:
    """The service's methods as callables, and its messages by short name (``client.msg.X``)."""

    def __init__(self, channel: grpc.Channel, proto: descriptor_pb2.FileDescriptorProto):
        pool = descriptor_pool.DescriptorPool()
        pool.Add(proto)
        service = pool.FindServiceByName(SERVICE)

        class Messages:
            pass

        self.msg: Any = Messages()
        for name in proto.message_type:
            setattr(self.msg, name.name, GetMessageClass(pool.FindMessageTypeByName(f"inference.{name.name}")))
        for method in service.methods:
            request, response = GetMessageClass(method.input_type), GetMessageClass(method.output_type)
            call = channel.unary_unary(
                f"/{SERVICE}/{method.name}",
                request_serializer=request.SerializeToString,
                response_deserializer=response.FromString,
            )
            setattr(self, method.name, call)


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("proto")


@pytest.fixture(scope="module")
def proto(generated: Path) -> descriptor_pb2.FileDescriptorProto:
    return compile_proto(generated)


@pytest.fixture(scope="module")
def grpc_servers(servers: Servers) -> Servers:
    servers.start(["iris", "rf_seldon", "onnx"])
    return servers


@pytest.fixture(scope="module")
def connect(proto: descriptor_pb2.FileDescriptorProto, grpc_servers: Servers) -> Iterator[Any]:
    channels: list[grpc.Channel] = []

    def open_client(key: str) -> V2Client:
        channel = grpc.insecure_channel(grpc_servers.get(key).grpc_target, options=[("grpc.enable_http_proxy", 0)])
        channels.append(channel)
        return V2Client(channel, proto)

    yield open_client
    for channel in channels:
        channel.close()


@pytest.fixture(scope="module")
def v2(connect: Any) -> V2Client:
    return connect("iris")


def infer_request(v2: V2Client, rows: np.ndarray, *, raw: bool, datatype: str = "FP64", model: str = "iris", **fields: Any) -> Any:
    request = v2.msg.ModelInferRequest(model_name=model, **fields)
    tensor = request.inputs.add(name="x", datatype=datatype, shape=list(rows.shape))
    if raw:
        request.raw_input_contents.append(rows.astype(rows.dtype.newbyteorder("<")).tobytes())
    else:
        field = {"FP64": "fp64_contents", "FP32": "fp32_contents", "INT32": "int_contents", "INT64": "int64_contents"}[datatype]
        getattr(tensor.contents, field).extend(rows.reshape(-1).tolist())
    return request


def typed(output: Any) -> np.ndarray:
    for field, dtype in (
        ("int64_contents", np.int64), ("fp64_contents", np.float64), ("fp32_contents", np.float32),
        ("int_contents", np.int32), ("bytes_contents", object), ("bool_contents", np.bool_),
    ):
        values = getattr(output.contents, field)
        if len(values):
            return np.array(list(values), dtype=dtype).reshape(list(output.shape))
    raise AssertionError(f"output {output.name} has no contents")


def raw(response: Any, index: int) -> np.ndarray:
    output, blob = response.outputs[index], response.raw_output_contents[index]
    if output.datatype == "BYTES":
        items, offset = [], 0
        while offset < len(blob):
            (length,) = struct.unpack_from("<I", blob, offset)
            items.append(blob[offset + 4 : offset + 4 + length])
            offset += 4 + length
        return np.array(items, dtype=object).reshape(list(output.shape))
    dtype = {"INT64": "<i8", "FP64": "<f8", "FP32": "<f4", "INT32": "<i4"}[output.datatype]
    return np.frombuffer(blob, dtype=dtype).reshape(list(output.shape))


def refused(call: Any, *args: Any, **kwargs: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call(*args, **kwargs)
    return caught.value


# ------------------------------------------------------------------ the proto


def test_checked_in_modules_are_generated_from_the_checked_in_proto(proto: descriptor_pb2.FileDescriptorProto, generated: Path) -> None:
    """What the server imports (``inference_pb2.py``) embeds the descriptor protoc makes
    from ``inference.proto`` now: nobody edited one without regenerating the other."""
    fresh = generated / "labdeck/serving/proto"
    checked_in = SRC / "labdeck/serving/proto"
    assert embedded_descriptor(checked_in / "inference_pb2.py") == embedded_descriptor(fresh / "inference_pb2.py")
    for method in proto.service[0].method:
        assert f"/{SERVICE}/{method.name}" in (checked_in / "inference_pb2_grpc.py").read_text()


# ------------------------------------------------------------------ health and metadata


def test_health_and_metadata(v2: V2Client, trained: Models) -> None:
    assert v2.ServerLive(v2.msg.ServerLiveRequest()).live is True
    assert v2.ServerReady(v2.msg.ServerReadyRequest()).ready is True
    assert v2.ModelReady(v2.msg.ModelReadyRequest(name="iris")).ready is True
    assert v2.ModelReady(v2.msg.ModelReadyRequest(name="iris", version="3")).ready is True
    server = v2.ServerMetadata(v2.msg.ServerMetadataRequest())
    assert server.name == "labdeck"
    assert server.version == labdeck.__version__
    assert "binary_tensor_data" in server.extensions
    meta = v2.ModelMetadata(v2.msg.ModelMetadataRequest(name="iris", version="3"))
    assert meta.name == "iris"
    assert list(meta.versions) == ["3"]
    assert meta.platform == "sklearn"
    assert [(i.name, i.datatype, list(i.shape)) for i in meta.inputs] == [(c, "FP64", [-1]) for c in trained.columns]
    assert [(o.name, o.datatype, list(o.shape)) for o in meta.outputs] == [("predict", "INT64", [-1])]


def test_unknown_models_are_not_found(v2: V2Client) -> None:
    for call, request in (
        (v2.ModelReady, v2.msg.ModelReadyRequest(name="petals")),
        (v2.ModelReady, v2.msg.ModelReadyRequest(name="iris", version="4")),
        (v2.ModelMetadata, v2.msg.ModelMetadataRequest(name="petals")),
        (v2.ModelInfer, infer_request(v2, IRIS_ROWS, raw=False, model="petals")),
        (v2.ModelInfer, infer_request(v2, IRIS_ROWS, raw=False, model_version="4")),
    ):
        error = refused(call, request)
        assert error.code() == grpc.StatusCode.NOT_FOUND
        assert "not found (this server serves iris)" in error.details()


# ------------------------------------------------------------------ inference


def test_infer_with_typed_contents(v2: V2Client, trained: Models) -> None:
    request = infer_request(v2, trained.X, raw=False, id="g-1")
    request.outputs.add(name="predict")
    request.outputs.add(name="predict_proba")
    response = v2.ModelInfer(request)
    assert (response.model_name, response.model_version, response.id) == ("iris", "3", "g-1")
    assert len(response.raw_output_contents) == 0
    assert [(o.name, o.datatype, list(o.shape)) for o in response.outputs] == [
        ("predict", "INT64", [150]), ("predict_proba", "FP64", [150, 3]),
    ]
    model = trained["lr_skops"]
    np.testing.assert_array_equal(typed(response.outputs[0]), expected(model, trained.X))
    np.testing.assert_array_equal(typed(response.outputs[1]), expected(model, trained.X, "predict_proba"))


def test_infer_with_raw_input_contents_answers_raw(v2: V2Client, trained: Models) -> None:
    request = infer_request(v2, trained.X, raw=True)
    request.outputs.add(name="predict_proba")
    request.outputs.add(name="predict")
    response = v2.ModelInfer(request)
    assert len(response.raw_output_contents) == 2
    assert all(not o.HasField("contents") for o in response.outputs)
    model = trained["lr_skops"]
    np.testing.assert_array_equal(raw(response, 0), expected(model, trained.X, "predict_proba"))
    np.testing.assert_array_equal(raw(response, 1), expected(model, trained.X))
    assert response.id  # made up when the request has none


@pytest.mark.parametrize("datatype", ["FP32", "INT32", "INT64"])
@pytest.mark.parametrize("as_raw", [False, True], ids=["typed", "raw"])
def test_other_numeric_datatypes(datatype: str, as_raw: bool, v2: V2Client, trained: Models) -> None:
    dtype = {"FP32": np.float32, "INT32": np.int32, "INT64": np.int64}[datatype]
    rows = (IRIS_ROWS * 10).astype(dtype) if datatype.startswith("INT") else IRIS_ROWS.astype(dtype)
    request = infer_request(v2, rows, raw=as_raw, datatype=datatype)
    request.outputs.add(name="predict_proba")
    response = v2.ModelInfer(request)
    got = raw(response, 0) if as_raw else typed(response.outputs[0])
    np.testing.assert_array_equal(got, expected(trained["lr_skops"], rows.astype(np.float64), "predict_proba"))


def test_one_input_per_column(v2: V2Client, trained: Models) -> None:
    request = v2.msg.ModelInferRequest(model_name="iris")
    for i, column in enumerate(trained.columns):
        request.inputs.add(name=column, datatype="FP64", shape=[len(trained.X)]).contents.fp64_contents.extend(trained.X[:, i])
    np.testing.assert_array_equal(typed(v2.ModelInfer(request).outputs[0]), expected(trained["lr_skops"], trained.X))


def test_parameters_reach_the_model(v2: V2Client, trained: Models) -> None:
    request = infer_request(v2, IRIS_ROWS, raw=False)
    request.parameters["method"].string_param = "predict_proba"
    (out,) = v2.ModelInfer(request).outputs
    assert out.name == "predict_proba"
    np.testing.assert_array_equal(typed(out), expected(trained["lr_skops"], IRIS_ROWS, "predict_proba"))


@pytest.mark.parametrize("as_raw", [False, True], ids=["typed", "raw"])
def test_string_labels_come_back_as_bytes(as_raw: bool, connect: Any, trained: Models) -> None:
    forest = connect("rf_seldon")
    request = infer_request(forest, trained.X, raw=as_raw, model="rf_seldon")
    request.outputs.add(name="predict")
    request.outputs.add(name="predict_proba")
    response = forest.ModelInfer(request)
    assert [(o.name, o.datatype) for o in response.outputs] == [("predict", "BYTES"), ("predict_proba", "FP64")]
    labels = raw(response, 0) if as_raw else typed(response.outputs[0])
    want = expected(trained["rf_seldon"], trained.X)
    np.testing.assert_array_equal(labels, np.array([s.encode() for s in want], dtype=object))
    proba = raw(response, 1) if as_raw else typed(response.outputs[1])
    np.testing.assert_array_equal(proba, expected(trained["rf_seldon"], trained.X, "predict_proba"))


@pytest.mark.parametrize("as_raw", [False, True], ids=["typed", "raw"])
def test_onnx_outputs_by_name(as_raw: bool, connect: Any, trained: Models) -> None:
    onnx = connect("onnx")
    request = infer_request(onnx, trained.X.astype(np.float32), raw=as_raw, datatype="FP32", model="onnx")
    request.outputs.add(name="probabilities")
    request.outputs.add(name="label")
    response = onnx.ModelInfer(request)
    model = trained["onnx"]
    proba = raw(response, 0) if as_raw else typed(response.outputs[0])
    np.testing.assert_array_equal(proba, expected(model, trained.X, "probabilities"))
    labels = raw(response, 1) if as_raw else typed(response.outputs[1])
    np.testing.assert_array_equal(labels, np.array([s.encode() for s in expected(model, trained.X, "label")], dtype=object))


# ------------------------------------------------------------------ bad requests


def test_bad_requests_are_invalid_argument_and_say_why(v2: V2Client, trained: Models) -> None:
    msg = v2.msg
    three_features = infer_request(v2, IRIS_ROWS[:, :3], raw=False)
    bad_datatype = infer_request(v2, IRIS_ROWS, raw=False)
    bad_datatype.inputs[0].datatype = "FP99"
    short = infer_request(v2, IRIS_ROWS, raw=False)
    short.inputs[0].shape[:] = [4, 4]
    short_raw = infer_request(v2, IRIS_ROWS, raw=True)
    short_raw.raw_input_contents[0] = short_raw.raw_input_contents[0][:-8]
    two_raw = infer_request(v2, IRIS_ROWS, raw=True)
    two_raw.raw_input_contents.append(b"")
    wrapping = msg.ModelInferRequest(model_name="iris")
    wrapping.inputs.add(name="x", datatype="INT8", shape=[1, 4]).contents.int_contents.extend([5, 3, 1, 300])
    text = msg.ModelInferRequest(model_name="iris")
    text.inputs.add(name="x", datatype="BYTES", shape=[1, 4]).contents.bytes_contents.extend([b"a", b"b", b"c", b"d"])
    no_inputs = msg.ModelInferRequest(model_name="iris")
    unknown_output = infer_request(v2, IRIS_ROWS, raw=False)
    unknown_output.outputs.add(name="predict_petals")
    fp16_typed = msg.ModelInferRequest(model_name="iris")
    fp16_typed.inputs.add(name="x", datatype="FP16", shape=[1, 4])
    cases = {
        "three features": (three_features, "the model takes [rows, 4]"),
        "unknown datatype": (bad_datatype, "Unknown datatype 'FP99'"),
        "shape against contents": (short, "shape [4, 4] needs 16 values but contents has 12"),
        "shape against raw bytes": (short_raw, "needs 96 bytes, got 88"),
        "raw entries against inputs": (two_raw, "raw_input_contents has 2 entries for 1 inputs"),
        "a value out of its datatype's range": (wrapping, "INT8"),
        "text for numbers": (text, "must be FP64, got BYTES"),
        "no inputs": (no_inputs, "Missing input"),
        "an output the model has not": (unknown_output, "no output 'predict_petals'"),
        "FP16 in typed contents": (fp16_typed, "raw_input_contents"),
    }
    for case, (request, phrase) in cases.items():
        error = refused(v2.ModelInfer, request)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (case, error.code(), error.details())
        assert phrase in error.details(), (case, error.details())
    # and the server goes on answering
    np.testing.assert_array_equal(
        typed(v2.ModelInfer(infer_request(v2, IRIS_ROWS, raw=False)).outputs[0]), expected(trained["lr_skops"], IRIS_ROWS)
    )


def test_a_message_over_the_body_limit_is_refused(v2: V2Client, trained: Models) -> None:
    """--max-body-mb bounds gRPC messages as it bounds REST bodies."""
    rows = np.tile(IRIS_ROWS, (int(MAX_BODY_MB * 1024 * 1024 / 96) + 100, 1))
    error = refused(v2.ModelInfer, infer_request(v2, rows, raw=True))
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, (error.code(), error.details())
    response = v2.ModelInfer(infer_request(v2, IRIS_ROWS, raw=True))
    np.testing.assert_array_equal(raw(response, 0), expected(trained["lr_skops"], IRIS_ROWS))


# tritonclient.grpc's generated modules register the same ``inference.*`` symbols in
# protobuf's process-wide pool as labdeck's own (see the module docstring): it runs in a
# process of its own, as a user's client would.
TRITON_GRPC_CLIENT = """
import json, sys
import numpy as np
import tritonclient.grpc as triton
from tritonclient.utils import InferenceServerException

client = triton.InferenceServerClient(sys.argv[1])
rows = np.array(json.loads(sys.argv[2]), dtype=np.float64)
x = triton.InferInput("x", list(rows.shape), "FP64")
x.set_data_from_numpy(rows)
wanted = [triton.InferRequestedOutput("predict"), triton.InferRequestedOutput("predict_proba")]
result = client.infer("iris", [x], outputs=wanted, model_version="3")
try:
    client.infer("nope", [x])
    unknown = "answered"
except InferenceServerException as error:
    unknown = error.status()
print(json.dumps({
    "live": client.is_server_live(), "ready": client.is_server_ready(), "model_ready": client.is_model_ready("iris"),
    "metadata": client.get_model_metadata("iris", as_json=True),
    "predict": result.as_numpy("predict").tolist(), "predict_proba": result.as_numpy("predict_proba").tolist(),
    "unknown": unknown,
}))
client.close()
"""


def test_tritons_grpc_client(grpc_servers: Servers, trained: Models) -> None:
    """``tritonclient.grpc``, as Triton, KServe and Seldon v2 users call a model: raw tensors
    in and out, and the model's metadata."""
    ran = subprocess.run(
        [sys.executable, "-c", TRITON_GRPC_CLIENT, grpc_servers.get("iris").grpc_target, json.dumps(IRIS_ROWS.tolist())],
        capture_output=True, text=True, timeout=120,
    )
    assert ran.returncode == 0, ran.stderr
    seen = json.loads(ran.stdout)
    assert seen["live"] and seen["ready"] and seen["model_ready"]
    assert seen["metadata"]["name"] == "iris" and seen["metadata"]["inputs"]
    np.testing.assert_array_equal(seen["predict"], expected(trained["lr_skops"], IRIS_ROWS))
    np.testing.assert_array_equal(seen["predict_proba"], expected(trained["lr_skops"], IRIS_ROWS, "predict_proba"))
    assert seen["unknown"] == "StatusCode.NOT_FOUND"
