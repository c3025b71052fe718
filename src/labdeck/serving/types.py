"""The data plane's values: tensors, inference requests and responses, and model metadata,
shared by every protocol adapter (V2 REST and gRPC, Seldon v1, MLflow scoring) and every
runtime. Tensors hold numpy arrays; protocols convert at their edge (``serving/codecs``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from labdeck.errors import InvalidParameter

# V2 datatype -> numpy dtype. BYTES are numpy object arrays of ``bytes``.
DATATYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
    "BYTES": np.dtype(object),
}
_KIND_TO_DATATYPE = {np.dtype(v): k for k, v in DATATYPES.items() if k != "BYTES"}


def datatype_of(array: np.ndarray) -> str:
    """The V2 datatype of a numpy array (strings and objects are BYTES)."""
    found = _KIND_TO_DATATYPE.get(array.dtype)
    if found is not None:
        return found
    if array.dtype.kind in ("U", "S", "O"):
        return "BYTES"
    raise InvalidParameter(f"The model produced values of type {array.dtype}, which V2 cannot carry.")


def dtype_of(datatype: str, where: str) -> np.dtype:
    found = DATATYPES.get(datatype)
    if found is None:
        raise InvalidParameter(
            f"Unknown datatype {datatype!r} for {where}: use one of {', '.join(DATATYPES)}."
        )
    return found


@dataclass(slots=True)
class Tensor:
    name: str
    data: np.ndarray
    datatype: str = ""
    parameters: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if not self.datatype:
            self.datatype = datatype_of(self.data)

    @property
    def shape(self) -> list[int]:
        return list(self.data.shape)


@dataclass(slots=True)
class RequestedOutput:
    name: str
    parameters: dict[str, Any] | None = None


@dataclass(slots=True)
class InferenceRequest:
    inputs: list[Tensor]
    id: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    outputs: list[RequestedOutput] = field(default_factory=list)


@dataclass(slots=True)
class InferenceResponse:
    model_name: str
    outputs: list[Tensor]
    model_version: str | None = None
    id: str | None = None
    parameters: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class TensorSpec:
    """One input or output a model declares: name, V2 datatype, shape (-1 = any size)."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    parameters: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class ModelMetadata:
    name: str
    platform: str
    versions: tuple[str, ...] = ()
    inputs: tuple[TensorSpec, ...] = ()
    outputs: tuple[TensorSpec, ...] = ()
    # For a column-based signature: the feature columns in order (one 2-D input may carry them).
    columns: tuple[str, ...] = ()
    # The V2 metadata's free-form ``parameters`` (e.g. which path answers, with --compile).
    parameters: dict[str, Any] | None = None
