"""``xgboost``: XGBoost models, through the scikit-learn API when MLflow recorded one
(``model_class``) or when the file says it was saved from one (``XGBClassifier.save_model``
stores the estimator type in the booster's ``scikit_learn`` attribute), else as a Booster
(``model.json``, ``.ubj``, ``.bst``, ``.xgb``). Through the scikit-learn API a classifier's
``predict`` answers labels and ``predict_proba`` probabilities, as MLServer's runtime does."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from labdeck.errors import InvalidParameter
from labdeck.serving.runtimes.tabular import TabularRuntime

FILES = ("model.json", "model.ubj", "model.bst", "model.xgb")


class XGBoostRuntime(TabularRuntime):
    name = "xgboost"
    platform = "xgboost"

    @classmethod
    def can_load(cls, model_dir: Path, mlmodel: dict[str, Any]) -> bool:
        if mlmodel:
            return "xgboost" in (mlmodel.get("flavors") or {})
        return any((model_dir / f).is_file() for f in FILES)

    async def load(self) -> None:
        import xgboost

        flavor = (self.mlmodel.get("flavors") or {}).get("xgboost") or {}
        path = self.model_dir / flavor["data"] if flavor.get("data") else next(
            (self.model_dir / f for f in FILES if (self.model_dir / f).is_file()), None
        )
        if path is None or not path.is_file():
            raise InvalidParameter(f"No XGBoost model file in {self.model_dir} (looked for {', '.join(FILES)}).")
        booster = xgboost.Booster()
        booster.load_model(str(path))
        model_class = flavor.get("model_class") or _sklearn_class(booster) or "xgboost.core.Booster"
        module, _, cls_name = model_class.rpartition(".")
        if cls_name == "Booster":
            self.estimator = booster

            def predict(X: Any) -> Any:
                # a Booster predicts from fewer columns than it was trained on, reading the
                # rest as missing: that answer is for other data than the caller's
                X = np.asarray(X)
                if X.ndim == 2 and X.shape[1] != booster.num_features():
                    raise ValueError(f"The model takes {booster.num_features()} features; the input has {X.shape[1]}.")
                return booster.predict(xgboost.DMatrix(X))

            self.methods = {"predict": predict}
            return
        model = getattr(importlib.import_module(module), cls_name)()
        model.load_model(str(path))
        self.estimator = model
        self.methods = {m: getattr(model, m) for m in ("predict", "predict_proba") if hasattr(model, m)}


def _sklearn_class(booster: Any) -> str | None:
    """The scikit-learn API class a bare model file was saved from, if any."""
    kind = json.loads(booster.attr("scikit_learn") or "{}").get("_estimator_type")
    return {"classifier": "xgboost.sklearn.XGBClassifier", "regressor": "xgboost.sklearn.XGBRegressor"}.get(kind)
