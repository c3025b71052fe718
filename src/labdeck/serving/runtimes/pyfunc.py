"""``pyfunc``: any MLflow ``python_function`` model, loaded with mlflow's own loader, with
its signature enforced by mlflow. Needs the ``mlflow`` package in the serving
environment (``pip install 'labdeck[mlflow]'``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from labdeck.errors import InvalidParameter
from labdeck.serving.runtime import Runtime
from labdeck.serving.types import Tensor


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
        self._columns = list(self.metadata().columns)

    def frame(self, inputs: list[Tensor]) -> Any:
        import pandas as pd

        if len(inputs) == 1 and inputs[0].data.ndim == 2:
            data = inputs[0].data
            named = (inputs[0].parameters or {}).get("columns")
            columns = named or (self._columns if len(self._columns) == data.shape[1] else None)
            return pd.DataFrame(data, columns=columns)
        return pd.DataFrame({t.name: _column(t) for t in inputs})

    def predict(self, inputs: list[Tensor], outputs: list[str], parameters: dict[str, Any]) -> list[Tensor]:
        return self.predict_frame(self.frame(inputs), parameters)

    def predict_frame(self, frame: Any, parameters: dict[str, Any]) -> list[Tensor]:
        from mlflow.exceptions import MlflowException

        params = {k: v for k, v in parameters.items() if k not in ("content_type", "headers")} or None
        try:
            result = self.model.predict(frame, params=params)
        except MlflowException as exc:  # signature enforcement: the caller's input was wrong
            raise InvalidParameter(f"The model refused the input: {exc.message}") from None
        return to_tensors(result)


def _column(tensor: Tensor) -> np.ndarray:
    data = tensor.data.reshape(-1)
    if data.dtype == object:
        return np.array([v.decode() if isinstance(v, bytes) else v for v in data], dtype=object)
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
