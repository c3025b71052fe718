"""Seldon Core's v1 prediction protocol (``SeldonMessage``) and MLflow's scoring protocol
(``/invocations``): both bodies to tensors and back, with each protocol's error shape.

Seldon v1: ``{"data": {"names"?, "ndarray" | "tensor": {"shape", "values"}}}``, or
``jsonData`` / ``strData`` / ``binData``, plus ``meta``; the answer uses the same kind as the
request (ndarray in, ndarray out). MLflow scoring: exactly one of ``dataframe_split``,
``dataframe_records``, ``instances``, ``inputs`` (plus ``params``), or CSV; the answer is
``{"predictions": ...}``.
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np

from labdeck.errors import InvalidParameter
from labdeck.serving.request_ids import new_request_id
from labdeck.serving.types import Tensor

SELDON_KINDS = ("ndarray", "tensor")


def seldon_request(body: Any) -> tuple[list[Tensor], str, list[str], dict[str, Any]]:
    """(inputs, the kind of data sent, the names sent, meta)."""
    if not isinstance(body, dict):
        raise InvalidParameter("A Seldon message must be a JSON object with 'data', 'jsonData', 'strData' or 'binData'.")
    meta = body.get("meta") if isinstance(body.get("meta"), dict) else {}
    if "jsonData" in body:
        return [_json_tensor(body["jsonData"])], "jsonData", [], meta
    if "strData" in body:
        if not isinstance(body["strData"], str):
            raise InvalidParameter("'strData' must be a string.")
        return [Tensor("input-0", np.array([body["strData"].encode()], dtype=object), "BYTES")], "strData", [], meta
    if "binData" in body:
        try:
            raw = base64.b64decode(body["binData"], validate=True)
        except (ValueError, TypeError):
            raise InvalidParameter("'binData' must be base64.") from None
        return [Tensor("input-0", np.array([raw], dtype=object), "BYTES")], "binData", [], meta
    data = body.get("data")
    if not isinstance(data, dict):
        raise InvalidParameter("A Seldon message needs 'data' (with 'ndarray' or 'tensor'), 'jsonData', 'strData' or 'binData'.")
    names = data.get("names") or []
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise InvalidParameter("'data.names' must be a list of strings.")
    if "ndarray" in data:
        array = _array(data["ndarray"], "data.ndarray")
        kind = "ndarray"
    elif "tensor" in data:
        tensor = data["tensor"]
        if not isinstance(tensor, dict) or "shape" not in tensor or "values" not in tensor:
            raise InvalidParameter("'data.tensor' needs 'shape' and 'values'.")
        shape = tensor["shape"]
        if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
            raise InvalidParameter("'data.tensor.shape' must be a list of non-negative integers.")
        values = _array(tensor["values"], "data.tensor.values").reshape(-1)
        if values.size != int(np.prod(shape)):
            raise InvalidParameter(f"'data.tensor' shape {shape} needs {int(np.prod(shape))} values but has {values.size}.")
        array = values.reshape(shape)
        kind = "tensor"
    else:
        raise InvalidParameter("'data' needs 'ndarray' or 'tensor'.")
    if array.ndim == 1:
        array = array.reshape(1, -1)
    columns = {"columns": names} if names and array.ndim == 2 and len(names) == array.shape[1] else None
    return [Tensor("input-0", array, parameters=columns)], kind, names, meta


def _array(values: Any, where: str) -> np.ndarray:
    try:
        array = np.asarray(values)
    except ValueError:
        raise InvalidParameter(f"'{where}' must be a rectangular array of numbers.") from None
    if array.dtype == object or array.dtype.kind not in "biuf":
        if array.dtype.kind in ("U", "S"):
            return np.array([v.encode() for v in array.reshape(-1)], dtype=object).reshape(array.shape)
        raise InvalidParameter(f"'{where}' must be a rectangular array of numbers.")
    return array.astype(np.float64) if array.dtype.kind != "b" else array


def _json_tensor(value: Any) -> Tensor:
    import orjson

    return Tensor("input-0", np.array([orjson.dumps(value)], dtype=object), "BYTES", {"content_type": "json"})


def seldon_response(outputs: list[Tensor], kind: str, meta: dict[str, Any], model: str) -> dict[str, Any]:
    result = outputs[0].data
    out_meta: dict[str, Any] = {
        "puid": meta.get("puid") or new_request_id(),
        "tags": meta.get("tags") or {},
        "routing": {},
        "requestPath": {model: "labdeck"},
        "metrics": [],
    }
    if result.dtype == object or result.dtype.kind in ("U", "S"):
        result = np.array(
            [v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in result.reshape(-1).tolist()], dtype=object
        ).reshape(result.shape)
    if kind in ("strData", "binData", "jsonData"):
        values = result.reshape(-1).tolist()
        text = values[0] if len(values) == 1 else values
        return {"meta": out_meta, "strData" if isinstance(text, str) else "jsonData": text}
    # as Seldon's microservice: class names "t:0".. only for a 2-D answer, and a tensor only
    # for numbers (anything else goes back as an ndarray, whatever the request sent)
    names = [f"t:{i}" for i in range(result.shape[1])] if result.ndim == 2 else []
    if kind == "tensor" and result.dtype.kind in "biuf":
        data: dict[str, Any] = {"names": names, "tensor": {"shape": list(result.shape), "values": result.reshape(-1).tolist()}}
    else:
        data = {"names": names, "ndarray": result.tolist()}
    return {"meta": out_meta, "data": data}


MLFLOW_FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")


def mlflow_request(body: Any) -> tuple[list[Tensor], dict[str, Any]]:
    """(inputs, params) from an ``/invocations`` JSON body."""
    if not isinstance(body, dict):
        raise InvalidParameter(f"The body must be a JSON object with one of {', '.join(MLFLOW_FORMATS)}.")
    given = [k for k in MLFLOW_FORMATS if k in body]
    if len(given) != 1:
        raise InvalidParameter(
            f"The body must have exactly one of {', '.join(MLFLOW_FORMATS)}; it has {', '.join(given) or 'none'}."
        )
    params = body.get("params") or {}
    if not isinstance(params, dict):
        raise InvalidParameter("'params' must be an object.")
    fmt = given[0]
    value = body[fmt]
    if fmt == "dataframe_split":
        if not isinstance(value, dict) or "data" not in value:
            raise InvalidParameter("'dataframe_split' needs 'data' (and usually 'columns').")
        columns = value.get("columns")
        data = _array(value["data"], "dataframe_split.data")
        if data.ndim == 1:
            data = data.reshape(1, -1)
        if columns is not None:
            if not isinstance(columns, list) or len(columns) != data.shape[1]:
                raise InvalidParameter(f"'dataframe_split' has {data.shape[1]} values per row but {len(columns or [])} columns.")
            if data.dtype == object:
                # text among the values made the whole array text: read each column on its
                # own, as a frame's columns have types of their own (numbers next to text)
                rows = value["data"] if isinstance(value["data"][0], list) else [value["data"]]
                return [Tensor(str(c), _array([r[i] for r in rows], f"dataframe_split column {c}")) for i, c in enumerate(columns)], params
            return [Tensor(str(c), data[:, i].copy()) for i, c in enumerate(columns)], params
        return [Tensor("input-0", data)], params
    if fmt == "dataframe_records":
        if not isinstance(value, list) or not value or not all(isinstance(r, dict) for r in value):
            raise InvalidParameter("'dataframe_records' must be a non-empty list of objects.")
        columns = list(value[0])
        try:
            return [Tensor(str(c), _array([r[c] for r in value], f"dataframe_records[].{c}")) for c in columns], params
        except KeyError as exc:
            raise InvalidParameter(f"Every record needs the column {exc.args[0]!r}.") from None
    if isinstance(value, dict):
        return [Tensor(str(k), _array(v, f"{fmt}.{k}")) for k, v in value.items()], params
    return [Tensor("input-0", _array(value, fmt))], params


def csv_request(body: bytes) -> list[Tensor]:
    import io

    import pandas as pd

    try:
        frame = pd.read_csv(io.BytesIO(body))
    except (ValueError, pd.errors.ParserError) as exc:
        raise InvalidParameter(f"The CSV body cannot be read: {exc}") from None
    # pandas hands a text column over as objects, which would not pass for text below
    return [
        Tensor(str(c), _array(frame[c].to_numpy(dtype=str) if frame[c].dtype.kind not in "biuf" else frame[c].to_numpy(), f"column {c}"))
        for c in frame.columns
    ]


def mlflow_response(outputs: list[Tensor]) -> dict[str, Any]:
    def plain(t: Tensor) -> Any:
        if t.data.dtype == object:
            return [v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in t.data.tolist()]
        return t.data.tolist()

    if len(outputs) == 1:
        return {"predictions": plain(outputs[0])}
    columns = {t.name: plain(t) for t in outputs}
    rows = len(next(iter(columns.values())))
    return {"predictions": [{name: values[i] for name, values in columns.items()} for i in range(rows)]}
