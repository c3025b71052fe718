"""A model's declared inputs and outputs (the MLflow signature in its ``MLmodel``), as V2
metadata, and the check that a request matches them before the model sees it.

Column-based signatures (``[{"type": "double", "name": "sepal_length"}, ...]``) accept
either one tensor per column, by name, or a single 2-D tensor with one column per feature
(what V2 clients and Seldon send). Tensor-based signatures accept tensors whose fixed
dimensions match. Numbers convert to the declared numeric type, except where that would
change them (1.5 or 300 sent for an INT8); text never becomes a number and numbers never
become text.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import numpy as np

from labdeck.errors import InvalidParameter
from labdeck.serving.types import DATATYPES, ModelMetadata, Tensor, TensorSpec

_COLUMN_TYPES = {
    "double": "FP64",
    "float": "FP32",
    "long": "INT64",
    "integer": "INT32",
    "boolean": "BOOL",
    "string": "BYTES",
    "binary": "BYTES",
    "datetime": "BYTES",
}
_NUMPY_TO_V2 = {
    "float64": "FP64", "float32": "FP32", "float16": "FP16", "int64": "INT64", "int32": "INT32",
    "int16": "INT16", "int8": "INT8", "uint64": "UINT64", "uint32": "UINT32", "uint16": "UINT16",
    "uint8": "UINT8", "bool": "BOOL", "object": "BYTES", "str": "BYTES",
}
NUMERIC = frozenset(k for k in DATATYPES if k not in ("BOOL", "BYTES"))


def _specs(raw: Any, prefix: str) -> tuple[list[TensorSpec], list[str]]:
    """TensorSpecs from one side of a signature, and the column names if column-based."""
    if not raw:
        return [], []
    items = json.loads(raw) if isinstance(raw, str) else raw
    specs, columns = [], []
    for i, item in enumerate(items):
        if item.get("type") == "tensor":
            spec = item.get("tensor-spec", {})
            datatype = _NUMPY_TO_V2.get(str(spec.get("dtype")), "BYTES")
            shape = tuple(int(d) for d in spec.get("shape", [-1]))
            specs.append(TensorSpec(item.get("name") or f"{prefix}-{i}", datatype, shape))
        else:
            name = item.get("name") or f"{prefix}-{i}"
            specs.append(TensorSpec(name, _COLUMN_TYPES.get(item.get("type", ""), "BYTES"), (-1,)))
            columns.append(name)
    return specs, columns


def metadata_from_mlmodel(name: str, platform: str, mlmodel: dict[str, Any], version: str | None) -> ModelMetadata:
    signature = mlmodel.get("signature") or {}
    inputs, columns = _specs(signature.get("inputs"), "input")
    outputs, _ = _specs(signature.get("outputs"), "output")
    if len(outputs) == 1 and outputs[0].name == "output-0":
        # the runtimes answer a model's one unnamed output as "predict": the metadata must
        # name what a client can ask for
        outputs = [replace(outputs[0], name="predict")]
    return ModelMetadata(
        name=name,
        platform=platform,
        versions=(version,) if version else (),
        inputs=tuple(inputs),
        outputs=tuple(outputs),
        columns=tuple(columns) if len(columns) == len(inputs) else (),
    )


def _converted(tensor: Tensor, datatype: str, where: str) -> np.ndarray:
    if tensor.datatype == datatype:
        return tensor.data
    if datatype in NUMERIC and tensor.datatype in NUMERIC:
        converted = tensor.data.astype(DATATYPES[datatype], copy=False)
        # a cast to an integer type truncates fractions and wraps what does not fit: the
        # model would answer for other numbers than the ones sent
        if converted.dtype.kind in "iu" and not np.array_equal(converted, tensor.data):
            raise InvalidParameter(f"{where} must be {datatype}: its {tensor.datatype} values are not all whole numbers in range.")
        return converted
    raise InvalidParameter(f"{where} must be {datatype}, got {tensor.datatype}.")


def feature_matrix(inputs: list[Tensor], metadata: ModelMetadata) -> np.ndarray | list[Tensor]:
    """Check ``inputs`` against the signature. For a column-based signature, the features
    as one 2-D array in signature order; otherwise the (checked, converted) tensors."""
    if metadata.columns:
        return _columns(inputs, metadata)
    if metadata.inputs:
        return _tensors(inputs, metadata)
    return inputs


def _columns(inputs: list[Tensor], metadata: ModelMetadata) -> np.ndarray:
    specs = {s.name: s for s in metadata.inputs}
    n = len(metadata.columns)
    if len(inputs) == 1 and inputs[0].name not in specs:
        (tensor,) = inputs
        data = tensor.data
        if data.ndim == 1 and data.shape[0] == n:
            data = data.reshape(1, n)
        if data.ndim != 2 or data.shape[1] != n:
            raise InvalidParameter(
                f"Input '{tensor.name}' has shape {list(tensor.data.shape)}; the model takes [rows, {n}] "
                f"(columns {', '.join(metadata.columns)}) or one input per column."
            )
        data = _in_signature_order(data, (tensor.parameters or {}).get("columns"), metadata.columns)
        kinds = {specs[c].datatype for c in metadata.columns}
        target = "FP64" if kinds <= NUMERIC and len(kinds) > 1 else next(iter(kinds))
        return _converted(Tensor(tensor.name, data, tensor.datatype), target, f"Input '{tensor.name}'")
    columns = list(column_values(inputs, metadata).values())
    if all(c.dtype == columns[0].dtype for c in columns):
        return np.stack(columns, axis=1)
    frame = np.empty((columns[0].shape[0], len(columns)), dtype=object)
    for i, column in enumerate(columns):
        frame[:, i] = column
    return frame


def _in_signature_order(data: np.ndarray, names: Any, columns: tuple[str, ...]) -> np.ndarray:
    """A 2-D tensor's columns reordered by the names it came with (Seldon's ``names``), so
    that values sent in another order still reach their features. Names that are none of
    the model's (``a``, ``t:0``, ...) say nothing and are ignored, as Seldon's sklearn
    server ignores them; names that mix the model's with others are refused."""
    if not names or not set(names) & set(columns):
        return data
    if sorted(names) != sorted(columns):
        raise InvalidParameter(f"The names {list(names)} do not match the model's columns {list(columns)}.")
    return data[:, [list(names).index(c) for c in columns]] if list(names) != list(columns) else data


def column_values(inputs: list[Tensor], metadata: ModelMetadata) -> dict[str, np.ndarray]:
    """Check ``inputs`` against a column-based signature column by column: each declared
    column's values (1-D, converted to the column's own type), in signature order. The
    inputs are one tensor per column, by name, or a single 2-D tensor whose columns are
    named by its ``columns`` parameter (Seldon's ``names``), else in signature order."""
    specs = {s.name: s for s in metadata.inputs}
    n = len(metadata.columns)
    if len(inputs) == 1 and inputs[0].name not in specs:
        (tensor,) = inputs
        data = tensor.data.reshape(1, n) if tensor.data.ndim == 1 and tensor.data.shape[0] == n else tensor.data
        if data.ndim != 2 or data.shape[1] != n:
            raise InvalidParameter(
                f"Input '{tensor.name}' has shape {list(tensor.data.shape)}; the model takes [rows, {n}] "
                f"(columns {', '.join(metadata.columns)}) or one input per column."
            )
        names = (tensor.parameters or {}).get("columns") or metadata.columns
        inputs = [Tensor(str(name), data[:, i], tensor.datatype) for i, name in enumerate(names)]
    given = {t.name: t for t in inputs}
    unknown = [name for name in given if name not in specs]
    if unknown:
        raise InvalidParameter(f"Unknown input {unknown[0]!r}: the model's inputs are {', '.join(metadata.columns)}.")
    missing = [c for c in metadata.columns if c not in given]
    if missing:
        raise InvalidParameter(f"Missing input {missing[0]!r}: the model needs {', '.join(metadata.columns)}.")
    rows = None
    columns = {}
    for name in metadata.columns:
        data = _converted(given[name], specs[name].datatype, f"Input '{name}'").reshape(-1)
        if rows is None:
            rows = data.shape[0]
        elif data.shape[0] != rows:
            raise InvalidParameter(f"Input '{name}' has {data.shape[0]} rows where the others have {rows}.")
        columns[name] = data
    return columns


def _tensors(inputs: list[Tensor], metadata: ModelMetadata) -> list[Tensor]:
    specs = list(metadata.inputs)
    if len(specs) == 1 and len(inputs) == 1:
        pairs = [(specs[0], inputs[0])]
    else:
        by_name = {t.name: t for t in inputs}
        missing = [s.name for s in specs if s.name not in by_name]
        if missing:
            raise InvalidParameter(f"Missing input {missing[0]!r}: the model needs {', '.join(s.name for s in specs)}.")
        pairs = [(s, by_name[s.name]) for s in specs]
    checked = []
    for spec, tensor in pairs:
        where = f"Input '{tensor.name}'"
        data = _converted(tensor, spec.datatype, where)
        if len(spec.shape) != data.ndim or any(e != -1 and e != g for e, g in zip(spec.shape, data.shape, strict=True)):
            raise InvalidParameter(f"{where} has shape {list(data.shape)}; the model expects {list(spec.shape)} (-1: any).")
        checked.append(Tensor(spec.name, data, spec.datatype, tensor.parameters))
    return checked
