"""``sklearn``: scikit-learn models, as MLflow logs them (skops, pickle or cloudpickle,
per the flavor's ``serialization_format``) or as Seldon lays them out (``model.joblib``)."""

from __future__ import annotations

import pickle
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import sklearn

from labdeck.errors import InvalidParameter
from labdeck.serving.runtimes.tabular import TabularRuntime

SELDON_FILES = ("model.joblib", "model.pkl", "model.pickle")


class SklearnRuntime(TabularRuntime):
    name = "sklearn"
    platform = "sklearn"

    @classmethod
    def can_load(cls, model_dir: Path, mlmodel: dict[str, Any]) -> bool:
        if mlmodel:
            return "sklearn" in (mlmodel.get("flavors") or {})
        return any((model_dir / f).is_file() for f in SELDON_FILES)

    async def load(self) -> None:
        self.model = _load(self.model_dir, (self.mlmodel.get("flavors") or {}).get("sklearn"))
        self.estimator = self.model
        quiet_about_feature_names(self.model)
        self.methods = {
            m: getattr(self.model, m)
            for m in ("predict", "predict_proba", "predict_log_proba", "decision_function", "transform")
            if hasattr(self.model, m)
        }

    def call(self, method: Callable[[np.ndarray], Any], X: np.ndarray) -> Any:
        """scikit-learn checks every input for NaN and infinity, a good part of a one-row
        prediction's time. Where that check would pass (numbers that are all finite, which
        numpy tells in a fraction of the time) it is skipped; any other input meets
        scikit-learn's own check, so a model that takes missing values still gets them and
        one that does not still refuses them."""
        kind = X.dtype.kind
        if kind in "iub" or (kind == "f" and np.isfinite(X.sum())):
            with sklearn.config_context(assume_finite=True):
                return method(X)
        return method(X)


def _load(model_dir: Path, flavor: dict[str, Any] | None) -> Any:
    if flavor is None:
        for name in SELDON_FILES:
            path = model_dir / name
            if path.is_file():
                import joblib

                return joblib.load(path)
        raise InvalidParameter(f"No scikit-learn model file in {model_dir} (looked for {', '.join(SELDON_FILES)}).")
    path = model_dir / flavor.get("pickled_model", "model.pkl")
    return load_serialized(path, flavor.get("serialization_format", "cloudpickle"), flavor.get("skops_trusted_types"))


def quiet_about_feature_names(model: Any) -> None:
    """A model fitted on a DataFrame warns, on every prediction from an array, that X has no
    feature names: the runtimes hand it arrays whose columns are in the signature's order,
    so the warning would only fill the server's log, one per request."""
    if hasattr(model, "feature_names_in_"):
        warnings.filterwarnings("ignore", message="X does not have valid feature names", category=UserWarning)


def load_serialized(path: Path, fmt: str, skops_trusted_types: list[str] | None = None) -> Any:
    """An estimator as MLflow's sklearn flavor writes it (also what the lightgbm and other
    flavors use for their scikit-learn API models): skops, cloudpickle or pickle."""
    if fmt == "skops":
        import skops.io

        trusted = skops_trusted_types or skops.io.get_untrusted_types(file=path)
        return skops.io.load(path, trusted=trusted)
    with open(path, "rb") as f:
        if fmt == "cloudpickle":
            import cloudpickle

            return cloudpickle.load(f)
        return pickle.load(f)
