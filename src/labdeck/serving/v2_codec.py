"""V2 (Open Inference Protocol) over REST: JSON bodies, and the tensor binary extension
Triton's client uses by default (``Inference-Header-Content-Length``: a JSON header, then
each binary input's raw row-major bytes in input order; BYTES elements are each prefixed by
their 4-byte little-endian length).

Decoding checks what can be checked without the model (datatype names, shapes against the
number of values, binary sizes) and says exactly which input is wrong.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
import orjson

from labdeck.errors import InvalidParameter
from labdeck.serving.types import InferenceRequest, InferenceResponse, RequestedOutput, Tensor, dtype_of


def _shape(raw: Any, where: str) -> tuple[int, ...]:
    if not isinstance(raw, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in raw):
        raise InvalidParameter(f"{where}: 'shape' must be a list of non-negative integers, got {raw!r}.")
    return tuple(raw)


def _count(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def tensor_from_json(raw: Any, index: int, binary: memoryview | None) -> Tensor:
    if not isinstance(raw, dict):
        raise InvalidParameter(f"inputs[{index}] must be an object with name, shape, datatype and data.")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidParameter(f"inputs[{index}] needs a 'name'.")
    where = f"input '{name}'"
    datatype = raw.get("datatype")
    if not isinstance(datatype, str):
        raise InvalidParameter(f"{where} needs a 'datatype'.")
    dtype = dtype_of(datatype, where)
    shape = _shape(raw.get("shape"), where)
    parameters = raw.get("parameters")
    if parameters is not None and not isinstance(parameters, dict):
        raise InvalidParameter(f"{where}: 'parameters' must be an object.")
    if binary is not None:
        array = _from_bytes(binary, dtype, datatype, shape, where)
    else:
        if "data" not in raw:
            raise InvalidParameter(f"{where} has no 'data' (and no binary_data_size).")
        array = _from_json_data(raw["data"], dtype, datatype, shape, where)
    return Tensor(name, array, datatype, parameters)


def _from_json_data(data: Any, dtype: np.dtype, datatype: str, shape: tuple[int, ...], where: str) -> np.ndarray:
    if datatype == "FP16":
        raise InvalidParameter(f"{where}: FP16 has no JSON form; send it as binary data.")
    try:
        if datatype == "BYTES":
            flat = np.asarray(data, dtype=object).reshape(-1)
            array = np.array([v.encode() if isinstance(v, str) else v for v in flat], dtype=object)
            if not all(isinstance(v, bytes) for v in array):
                raise ValueError("BYTES elements must be strings")
        elif datatype == "BOOL":
            array = np.asarray(data)
            if array.dtype != np.bool_:
                raise ValueError("BOOL elements must be true or false")
        else:
            # numpy would read "1.5" as 1.5, null as NaN, true as 1 and 1.5 as the INT64 1:
            # only JSON numbers are numbers, and only whole ones are integers
            found = np.asarray(data)
            if found.dtype.kind not in "iuf":
                raise ValueError(f"{datatype} elements must be numbers")
            array = np.asarray(data, dtype=dtype)
            if array.dtype.kind in "iu" and found.dtype.kind == "f" and not np.array_equal(array, found):
                raise ValueError(f"{datatype} elements must be whole numbers")
    except (ValueError, TypeError, OverflowError) as exc:
        raise InvalidParameter(f"{where}: its data cannot be read as {datatype} ({exc}).") from None
    if array.size != _count(shape):
        raise InvalidParameter(
            f"{where}: shape {list(shape)} needs {_count(shape)} values but data has {array.size}."
        )
    return array.reshape(shape)


def _from_bytes(blob: memoryview, dtype: np.dtype, datatype: str, shape: tuple[int, ...], where: str) -> np.ndarray:
    count = _count(shape)
    if datatype == "BYTES":
        items, offset = [], 0
        while offset < len(blob):
            if offset + 4 > len(blob):
                raise InvalidParameter(f"{where}: binary BYTES data ends inside a length prefix.")
            (length,) = struct.unpack_from("<I", blob, offset)
            offset += 4
            if offset + length > len(blob):
                raise InvalidParameter(f"{where}: binary BYTES element runs past the data.")
            items.append(bytes(blob[offset : offset + length]))
            offset += length
        if len(items) != count:
            raise InvalidParameter(f"{where}: shape {list(shape)} needs {count} values but the binary data has {len(items)}.")
        return np.array(items, dtype=object).reshape(shape)
    if datatype == "BOOL":
        dtype = np.dtype(np.bool_)
    expected = count * dtype.itemsize
    if len(blob) != expected:
        raise InvalidParameter(f"{where}: shape {list(shape)} of {datatype} needs {expected} bytes, got {len(blob)}.")
    return np.frombuffer(blob, dtype=dtype.newbyteorder("<")).reshape(shape)


def decode_request(body: bytes, header_length: int | None) -> InferenceRequest:
    """A V2 inference request from a JSON body, or JSON header plus binary tensors."""
    if header_length is not None:
        if not 0 < header_length <= len(body):
            raise InvalidParameter(f"Inference-Header-Content-Length {header_length} does not fit a body of {len(body)} bytes.")
        head, rest = body[:header_length], memoryview(body)[header_length:]
    else:
        head, rest = body, memoryview(b"")
    try:
        raw = orjson.loads(head)
    except orjson.JSONDecodeError as exc:
        raise InvalidParameter(f"Malformed JSON in the inference request: {exc}") from None
    if not isinstance(raw, dict):
        raise InvalidParameter("The inference request must be a JSON object.")
    inputs = raw.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise InvalidParameter("The inference request needs a non-empty 'inputs' list.")
    tensors, offset = [], 0
    for i, item in enumerate(inputs):
        size = (item.get("parameters") or {}).get("binary_data_size") if isinstance(item, dict) else None
        binary = None
        if size is not None:
            if not isinstance(size, int) or size < 0 or offset + size > len(rest):
                raise InvalidParameter(f"inputs[{i}]: binary_data_size {size!r} does not fit the binary part of the body.")
            binary = rest[offset : offset + size]
            offset += size
        tensors.append(tensor_from_json(item, i, binary))
    if offset != len(rest):
        raise InvalidParameter(f"The body has {len(rest) - offset} bytes after the last binary input.")
    parameters = raw.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise InvalidParameter("'parameters' must be an object.")
    outputs = []
    for i, out in enumerate(raw.get("outputs") or []):
        if not isinstance(out, dict) or not isinstance(out.get("name"), str):
            raise InvalidParameter(f"outputs[{i}] needs a 'name'.")
        if not isinstance(out.get("parameters") or {}, dict):
            raise InvalidParameter(f"outputs[{i}]: 'parameters' must be an object.")
        outputs.append(RequestedOutput(out["name"], out.get("parameters")))
    request_id = raw.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise InvalidParameter("'id' must be a string.")
    return InferenceRequest(tensors, request_id, parameters, outputs)


def _json_data(array: np.ndarray) -> Any:
    if array.dtype == object:
        return [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in array.reshape(-1)]
    return array.reshape(-1).tolist()


def _binary_data(tensor: Tensor) -> bytes:
    array = tensor.data
    if tensor.datatype == "BYTES":
        parts = []
        for v in array.reshape(-1):
            b = v if isinstance(v, bytes) else str(v).encode()
            parts.append(struct.pack("<I", len(b)) + b)
        return b"".join(parts)
    return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()


def encode_response(response: InferenceResponse, request: InferenceRequest) -> tuple[bytes, int | None]:
    """The body, and the JSON header's length when outputs go as binary data."""
    wanted = {o.name: (o.parameters or {}) for o in request.outputs}
    all_binary = bool(request.parameters.get("binary_data_output"))
    outputs, blobs = [], []
    for t in response.outputs:
        item: dict[str, Any] = {"name": t.name, "shape": t.shape, "datatype": t.datatype}
        if t.parameters:
            item["parameters"] = dict(t.parameters)
        if all_binary or wanted.get(t.name, {}).get("binary_data"):
            blob = _binary_data(t)
            item.setdefault("parameters", {})["binary_data_size"] = len(blob)
            blobs.append(blob)
        else:
            item["data"] = _json_data(t.data)
        outputs.append(item)
    body: dict[str, Any] = {"model_name": response.model_name}
    if response.model_version:
        body["model_version"] = response.model_version
    if response.id is not None:
        body["id"] = response.id
    if response.parameters:
        body["parameters"] = response.parameters
    body["outputs"] = outputs
    head = orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)
    if not blobs:
        return head, None
    return head + b"".join(blobs), len(head)
