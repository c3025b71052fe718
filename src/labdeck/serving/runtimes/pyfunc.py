"""``pyfunc``: any MLflow ``python_function`` model, loaded with mlflow's own loader. Needs
the ``mlflow`` package in the serving environment (``pip install 'labdeck[mlflow]'``).

The model gets what ``mlflow.pyfunc`` gives it when called directly: a DataFrame for a
column-based signature (each column of its declared type), a numpy array for one unnamed
tensor, a dict of arrays for named tensors. The request is checked against the signature
first (``signature.py``), so that a wrong input is refused with its name and what the model
expects; what mlflow still refuses is refused with mlflow's reason. Warm-up predicts the
logged input example, as mlflow loaded it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import numpy as np

from labdeck.errors import InvalidParameter
from labdeck.serving.runtime import Runtime
from labdeck.serving.signature import column_values, feature_matrix
from labdeck.serving.types import DATATYPES, ModelMetadata, Tensor

# MLflow column types whose values the model gets as str (BYTES tensors carry bytes)
_TEXT_COLUMNS = ("string", "datetime")


class PyfuncRuntime(Runtime):
    name = "pyfunc"
    platform = "mlflow"

    @classmethod
    def can_load(cls, model_dir: Path, mlmodel: dict[str, Any]) -> bool:
        return "python_function" in (mlmodel.get("flavors") or {})

    async def load(self) -> None:
        try:
            import mlflow.pyfunc
        except ImportError:
            raise InvalidParameter("The pyfunc runtime needs mlflow: pip install 'labdeck[mlflow]'.") from None
        self.model = mlflow.pyfunc.load_model(str(self.model_dir))
        self._meta: ModelMetadata = self.metadata()
        declared = (self.mlmodel.get("signature") or {}).get("inputs") or "[]"
        items = json.loads(declared) if isinstance(declared, str) else declared
        self._text = {item.get("name") for item in items if item.get("type") in _TEXT_COLUMNS}
        # mlflow hands a tensor-based model a dict only when every tensor has a name
        self._named = bool(items) and all(item.get("name") for item in items)

    def example(self) -> list[Tensor]:
        tensors = _example_tensors(getattr(self.model, "input_example", None), self._meta)
        if tensors is not None:
            return tensors
        if self._meta.columns:  # one zero (or empty text) per column, each of its own type
            return [
                Tensor(s.name, np.full(1, b"", dtype=object) if s.datatype == "BYTES" else np.zeros(1, DATATYPES[s.datatype]))
                for s in self._meta.inputs
            ]
        return super().example()

    def model_input(self, inputs: list[Tensor]) -> Any:
        """What ``mlflow.pyfunc``'s ``predict`` takes for this model, from checked inputs."""
        import pandas as pd

        meta = self._meta
        if meta.columns:
            columns = column_values(inputs, meta)
            return pd.DataFrame({name: _text(values) if name in self._text else values for name, values in columns.items()})
        if meta.inputs:
            checked = cast(list[Tensor], feature_matrix(inputs, meta))
            if self._named:
                return {t.name: _text(t.data) if t.datatype == "BYTES" else t.data for t in checked}
            return checked[0].data
        return self.frame(inputs)

    def frame(self, inputs: list[Tensor]) -> Any:
        """A model without a signature gets a DataFrame of what was sent."""
        import pandas as pd

        if len(inputs) == 1 and inputs[0].data.ndim == 2:
            return pd.DataFrame(inputs[0].data, columns=(inputs[0].parameters or {}).get("columns"))
        return pd.DataFrame({t.name: _column(t) for t in inputs})

    def predict(self, inputs: list[Tensor], outputs: list[str], parameters: dict[str, Any]) -> list[Tensor]:
        return self.predict_input(self.model_input(inputs), parameters)

    def predict_input(self, model_input: Any, parameters: dict[str, Any]) -> list[Tensor]:
        from mlflow.exceptions import MlflowException

        params = {k: v for k, v in parameters.items() if k not in ("content_type", "headers")} or None
        try:
            result = self.model.predict(model_input, params=params)
        except MlflowException as exc:  # signature enforcement: the caller's input was wrong
            raise InvalidParameter(f"The model refused the input: {_reason(exc.message)}") from None
        return to_tensors(result)


def _reason(message: str) -> str:
    """mlflow's enforcement message without the copy of the whole input it starts with
    ("Failed to enforce schema of data '<every row>' with schema '...'. Error: <reason>")."""
    if message.startswith("Failed to enforce schema"):
        _, found, reason = message.partition("'. Error: ")
        if found:
            return reason
    return message


def _example_tensors(example: Any, meta: ModelMetadata) -> list[Tensor] | None:
    """The logged input example (a DataFrame, an array or a dict of arrays) as tensors."""
    import pandas as pd

    if isinstance(example, pd.DataFrame) and meta.columns:
        return [Tensor(str(c), _bytes(example[c].to_numpy())) for c in example.columns]
    if isinstance(example, np.ndarray) and len(meta.inputs) == 1:
        return [Tensor(meta.inputs[0].name, _bytes(example))]
    if isinstance(example, dict) and all(isinstance(v, np.ndarray) for v in example.values()):
        return [Tensor(str(k), _bytes(v)) for k, v in example.items()]
    return None


def _bytes(values: np.ndarray) -> np.ndarray:
    """Text as a BYTES tensor holds it (object array of bytes)."""
    if values.dtype.kind in ("U", "S", "O"):
        return np.array([v.encode() if isinstance(v, str) else v for v in values.reshape(-1)], dtype=object).reshape(values.shape)
    return values


def _text(values: np.ndarray) -> np.ndarray:
    return np.array([v.decode() if isinstance(v, bytes) else v for v in values.reshape(-1)], dtype=object).reshape(values.shape)


def _column(tensor: Tensor) -> np.ndarray:
    data = tensor.data.reshape(-1)
    if data.dtype == object:
        return _text(data)
    return data


def to_tensors(result: Any) -> list[Tensor]:
    """A pyfunc's answer (array, Series, DataFrame, list, dict) as output tensors."""
    import pandas as pd

    if isinstance(result, pd.DataFrame):
        return [Tensor(str(c), _array(result[c].to_numpy())) for c in result.columns]
    if isinstance(result, dict):
        return [Tensor(str(k), _array(np.asarray(v))) for k, v in result.items()]
    if isinstance(result, pd.Series):
        result = result.to_numpy()
    return [Tensor("predict", _array(np.asarray(result)))]


def _array(values: np.ndarray) -> np.ndarray:
    if values.dtype.kind in ("U", "S") or values.dtype == object:
        return np.array([v if isinstance(v, bytes) else str(v).encode() for v in values.reshape(-1)], dtype=object).reshape(
            values.shape
        )
    return values
