"""``onnx``: ONNX models on onnxruntime (CPU, one thread per session: the server scales
with workers, not threads). Inputs go to the graph by name; every graph output can be
asked for by name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from labdeck.errors import InvalidParameter
from labdeck.serving.runtime import Runtime
from labdeck.serving.types import ModelMetadata, Tensor, TensorSpec

_ONNX_TYPES = {
    "tensor(double)": "FP64", "tensor(float)": "FP32", "tensor(float16)": "FP16", "tensor(int64)": "INT64",
    "tensor(int32)": "INT32", "tensor(int16)": "INT16", "tensor(int8)": "INT8", "tensor(uint8)": "UINT8",
    "tensor(uint16)": "UINT16", "tensor(uint32)": "UINT32", "tensor(uint64)": "UINT64",
    "tensor(bool)": "BOOL", "tensor(string)": "BYTES",
}


class OnnxRuntime(Runtime):
    name = "onnx"
    platform = "onnxruntime_onnx"

    @classmethod
    def can_load(cls, model_dir: Path, mlmodel: dict[str, Any]) -> bool:
        if mlmodel:
            return "onnx" in (mlmodel.get("flavors") or {})
        return (model_dir / "model.onnx").is_file()

    async def load(self) -> None:
        import onnxruntime

        flavor = (self.mlmodel.get("flavors") or {}).get("onnx") or {}
        path = self.model_dir / flavor.get("data", "model.onnx")
        if not path.is_file():
            raise InvalidParameter(f"No ONNX model at {path}.")
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self._inputs = self.session.get_inputs()
        self._output_names = [o.name for o in self.session.get_outputs()]

    def metadata(self) -> ModelMetadata:
        def spec(node: Any) -> TensorSpec:
            shape = tuple(d if isinstance(d, int) else -1 for d in (node.shape or []))
            return TensorSpec(node.name, _ONNX_TYPES.get(node.type, "BYTES"), shape)

        return ModelMetadata(
            self.settings.name,
            self.platform,
            (self.settings.version,) if self.settings.version else (),
            tuple(spec(i) for i in self.session.get_inputs()),
            tuple(spec(o) for o in self.session.get_outputs()),
        )

    def predict(self, inputs: list[Tensor], outputs: list[str], parameters: dict[str, Any]) -> list[Tensor]:
        feeds = {}
        if len(self._inputs) == 1 and len(inputs) == 1:
            feeds[self._inputs[0].name] = self._cast(inputs[0], self._inputs[0])
        else:
            given = {t.name: t for t in inputs}
            for node in self._inputs:
                if node.name not in given:
                    raise InvalidParameter(f"Missing input {node.name!r}: the model needs {', '.join(i.name for i in self._inputs)}.")
                feeds[node.name] = self._cast(given[node.name], node)
        names = outputs or self._output_names[:1]
        unknown = [n for n in names if n not in self._output_names]
        if unknown:
            raise InvalidParameter(f"This model has no output {unknown[0]!r}: choose from {', '.join(self._output_names)}.")
        try:
            values = self.session.run(names, feeds)
        except Exception as exc:  # onnxruntime reports bad shapes/types as its own exception types
            raise InvalidParameter(f"The model refused the input: {exc}") from None
        return [Tensor(n, np.asarray(v)) for n, v in zip(names, values, strict=True)]

    @staticmethod
    def _cast(tensor: Tensor, node: Any) -> np.ndarray:
        from labdeck.serving.types import DATATYPES

        wanted = _ONNX_TYPES.get(node.type)
        data = tensor.data
        if wanted and wanted != tensor.datatype:
            if wanted == "BYTES" or tensor.datatype in ("BYTES", "BOOL"):
                raise InvalidParameter(f"Input '{tensor.name}' must be {wanted}, got {tensor.datatype}.")
            data = data.astype(DATATYPES[wanted])
        if data.ndim == 1 and node.shape and len(node.shape) == 2:
            data = data.reshape(1, -1)
        return data
