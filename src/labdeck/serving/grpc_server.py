"""V2 over gRPC (``inference.GRPCInferenceService``), a thin adapter over the data plane,
served by ``grpc_transport``.

Tensors arrive either in typed ``contents`` or as ``raw_input_contents`` (row-major bytes
in input order; BYTES elements length-prefixed); outputs go back raw when the request sent
raw inputs (as Triton's client expects), typed otherwise. Bad input is INVALID_ARGUMENT, an
unknown model NOT_FOUND, a model still loading UNAVAILABLE.

The Python modules in ``proto/`` are generated from ``proto/inference.proto`` (the server
uses the messages; clients also the stubs in ``inference_pb2_grpc``):

    python -m grpc_tools.protoc -I src --python_out=src --grpc_python_out=src \\
        src/labdeck/serving/proto/inference.proto
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
from google.protobuf.message import DecodeError

from labdeck import __version__
from labdeck.errors import InvalidParameter, LabdeckError, NotFound, Unavailable
from labdeck.serving.dataplane import DataPlane
from labdeck.serving.grpc_transport import GrpcError, GrpcServer, Status, UnaryMethod
from labdeck.serving.proto import inference_pb2 as pb
from labdeck.serving.types import InferenceRequest, RequestedOutput, Tensor, dtype_of
from labdeck.serving.v2_codec import _binary_data, _count, _from_bytes

# datatype -> the InferTensorContents field that carries it
_CONTENTS = {
    "BOOL": "bool_contents", "INT8": "int_contents", "INT16": "int_contents", "INT32": "int_contents",
    "INT64": "int64_contents", "UINT8": "uint_contents", "UINT16": "uint_contents", "UINT32": "uint_contents",
    "UINT64": "uint64_contents", "FP32": "fp32_contents", "FP64": "fp64_contents", "BYTES": "bytes_contents",
}


def _parameter(p: Any) -> Any:
    return getattr(p, p.WhichOneof("parameter_choice")) if p.WhichOneof("parameter_choice") else None


def _parameters(raw: Any) -> dict[str, Any]:
    return {k: _parameter(v) for k, v in raw.items()} if raw else {}


def decode(request: Any) -> InferenceRequest:
    raw = list(request.raw_input_contents)
    if raw and len(raw) != len(request.inputs):
        raise InvalidParameter(f"raw_input_contents has {len(raw)} entries for {len(request.inputs)} inputs.")
    tensors = []
    for i, tensor in enumerate(request.inputs):
        where = f"input '{tensor.name}'"
        dtype = dtype_of(tensor.datatype, where)
        shape = tuple(tensor.shape)
        if any(d < 0 for d in shape):
            raise InvalidParameter(f"{where}: shape {list(shape)} has a negative dimension.")
        if raw:
            array = _from_bytes(memoryview(raw[i]), dtype, tensor.datatype, shape, where)
        else:
            field = _CONTENTS.get(tensor.datatype)
            if field is None:
                raise InvalidParameter(f"{where}: {tensor.datatype} must be sent in raw_input_contents.")
            values = list(getattr(tensor.contents, field))
            count = _count(shape)
            if len(values) != count:
                raise InvalidParameter(f"{where}: shape {list(shape)} needs {count} values but contents has {len(values)}.")
            try:
                array = np.array(values, dtype=dtype).reshape(shape)
            except OverflowError:  # int_contents carry INT8/INT16 as int32: 300 cannot be an INT8
                raise InvalidParameter(f"{where}: a value in contents does not fit {tensor.datatype}.") from None
        tensors.append(Tensor(tensor.name, array, tensor.datatype, _parameters(tensor.parameters) or None))
    outputs = [RequestedOutput(o.name, _parameters(o.parameters) or None) for o in request.outputs] if request.outputs else []
    return InferenceRequest(tensors, request.id or None, _parameters(request.parameters), outputs)


def encode(response: Any, raw: bool) -> Any:
    message = pb.ModelInferResponse(model_name=response.model_name, model_version=response.model_version or "", id=response.id or "")
    # FP16 has no typed contents field: such an answer goes raw, as its inputs must
    raw = raw or any(t.datatype not in _CONTENTS for t in response.outputs)
    for t in response.outputs:
        out = message.outputs.add(name=t.name, datatype=t.datatype, shape=t.shape)
        if raw:
            message.raw_output_contents.append(_binary_data(t))
        elif t.datatype == "BYTES":
            # runtimes may answer text as str (numpy "<U" arrays): bytes_contents takes bytes
            out.contents.bytes_contents.extend(v if isinstance(v, bytes) else str(v).encode() for v in t.data.reshape(-1).tolist())
        else:
            getattr(out.contents, _CONTENTS[t.datatype]).extend(t.data.reshape(-1).tolist())
    return message


SERVICE = "inference.GRPCInferenceService"


def _status(error: LabdeckError) -> Status:
    if isinstance(error, NotFound):
        return Status.NOT_FOUND
    if isinstance(error, Unavailable):
        return Status.UNAVAILABLE
    return Status.INVALID_ARGUMENT


class InferenceService:
    """The service's methods, on messages; ``methods()`` is the transport's table, on bytes."""

    def __init__(self, plane: DataPlane):
        self.plane = plane

    def methods(self) -> dict[str, UnaryMethod]:
        return {
            f"/{SERVICE}/ServerLive": _on_bytes(pb.ServerLiveRequest, self.server_live),
            f"/{SERVICE}/ServerReady": _on_bytes(pb.ServerReadyRequest, self.server_ready),
            f"/{SERVICE}/ModelReady": _on_bytes(pb.ModelReadyRequest, self.model_ready),
            f"/{SERVICE}/ServerMetadata": _on_bytes(pb.ServerMetadataRequest, self.server_metadata),
            f"/{SERVICE}/ModelMetadata": _on_bytes(pb.ModelMetadataRequest, self.model_metadata),
            f"/{SERVICE}/ModelInfer": _on_bytes(pb.ModelInferRequest, self.model_infer),
        }

    async def server_live(self, request: Any) -> Any:
        return pb.ServerLiveResponse(live=True)

    async def server_ready(self, request: Any) -> Any:
        return pb.ServerReadyResponse(ready=self.plane.ready)

    async def model_ready(self, request: Any) -> Any:
        self.plane.check_model(request.name, request.version or None)
        return pb.ModelReadyResponse(ready=self.plane.ready)

    async def server_metadata(self, request: Any) -> Any:
        return pb.ServerMetadataResponse(name="labdeck", version=__version__, extensions=["binary_tensor_data"])

    async def model_metadata(self, request: Any) -> Any:
        self.plane.check_model(request.name, request.version or None)
        meta = self.plane.metadata
        reply = pb.ModelMetadataResponse(name=self.plane.name, platform=meta.platform if meta else "")
        if meta is not None:
            reply.versions.extend(meta.versions)
            for spec in meta.inputs:
                reply.inputs.add(name=spec.name, datatype=spec.datatype, shape=list(spec.shape))
            for spec in meta.outputs:
                reply.outputs.add(name=spec.name, datatype=spec.datatype, shape=list(spec.shape))
        return reply

    async def model_infer(self, request: Any) -> Any:
        started = time.perf_counter()
        code = 500  # what the metrics count unless the request ends below
        metrics = self.plane.metrics
        metrics._in_flight.inc()
        try:
            self.plane.check_model(request.model_name, request.model_version or None)
            if not self.plane.ready:
                raise Unavailable("The model is still loading.")
            response = await self.plane.infer(decode(request))
            answer = encode(response, raw=bool(request.raw_input_contents))
            code = 200
            return answer
        except LabdeckError as error:
            code = 404 if isinstance(error, NotFound) else 503 if isinstance(error, Unavailable) else 400
            raise
        except asyncio.CancelledError:  # the client reset the stream: a deadline or a cancel
            code = 499
            raise
        finally:
            metrics._in_flight.dec()
            metrics.observe("grpc", code, started)


def _on_bytes(request_type: Any, method: Callable[[Any], Awaitable[Any]]) -> UnaryMethod:
    """A method on messages as the transport calls it: request bytes in, response bytes out,
    labdeck's errors as gRPC statuses."""

    async def call(payload: bytes) -> bytes:
        try:
            request = request_type.FromString(payload)
        except DecodeError:
            raise GrpcError(Status.INVALID_ARGUMENT, f"The request is not a {request_type.DESCRIPTOR.name} message.") from None
        try:
            return (await method(request)).SerializeToString()  # type: ignore[no-any-return]
        except LabdeckError as error:
            raise GrpcError(_status(error), error.message) from None

    return call


def build_server(plane: DataPlane, max_message_bytes: int = 256 * 1024 * 1024) -> GrpcServer:
    """``max_message_bytes`` is ``--max-body-mb``: a request over it is RESOURCE_EXHAUSTED,
    gRPC's 413."""
    return GrpcServer(InferenceService(plane).methods(), max_message_bytes)
