"""What the tabular runtimes share: a model with methods (``predict``, ``predict_proba``,
...) applied to a 2-D feature matrix. The requested output names choose the methods; with
none requested, the configured method (``--method``, default ``predict``) answers, under
the output name ``predict`` or the method's own name."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from labdeck.errors import InvalidParameter
from labdeck.serving.runtime import Runtime
from labdeck.serving.signature import feature_matrix
from labdeck.serving.types import ModelMetadata, Tensor


class TabularRuntime(Runtime):
    methods: dict[str, Callable[[np.ndarray], Any]]
    # The framework's model object behind ``methods`` (an estimator or a Booster), set by
    # ``load``: what ``--compile`` converts.
    estimator: Any = None
    _meta: ModelMetadata | None = None

    def _metadata_cached(self) -> ModelMetadata:
        if self._meta is None:
            self._meta = self.metadata()
        return self._meta

    def features(self, inputs: list[Tensor]) -> np.ndarray:
        checked = feature_matrix(inputs, self._metadata_cached())
        if isinstance(checked, np.ndarray):
            return checked
        if len(checked) > 1 and all(t.data.ndim == 1 for t in checked) and len({t.data.shape[0] for t in checked}) == 1:
            return np.column_stack([t.data for t in checked])  # named columns, in the order given
        if len(checked) != 1:
            raise InvalidParameter(
                f"This model takes one 2-D input (rows x features); got {len(checked)} inputs: "
                f"{', '.join(t.name for t in checked)}."
            )
        data = checked[0].data
        if data.ndim == 1:
            data = data.reshape(1, -1)
        if data.ndim != 2:
            raise InvalidParameter(f"Input '{checked[0].name}' has shape {list(data.shape)}; the model takes [rows, features].")
        return data

    def call(self, method: Callable[[np.ndarray], Any], X: np.ndarray) -> Any:
        """One of the model's methods on a feature matrix (a runtime may wrap the call)."""
        return method(X)

    def predict(self, inputs: list[Tensor], outputs: list[str], parameters: dict[str, Any]) -> list[Tensor]:
        X = self.features(inputs)
        default = str(parameters.get("method") or self.settings.method or "predict")
        names = outputs or [default]
        results = []
        for name in names:
            method_name = default if name == "predict" and not outputs else name
            method = self.methods.get(method_name)
            if method is None:
                raise InvalidParameter(
                    f"This model has no output {name!r}: choose from {', '.join(sorted(self.methods))}."
                )
            try:
                value = np.asarray(self.call(method, X))
            except ValueError as exc:  # the framework refusing the data, e.g. a wrong feature count
                raise InvalidParameter(f"The model refused the input: {exc}") from None
            results.append(Tensor(name, value))
        return results
