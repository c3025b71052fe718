"""``xgboost``: XGBoost models, through the scikit-learn API when MLflow recorded one
(``model_class``), else as a Booster (``model.json``, ``.ubj``, ``.bst``, ``.xgb``)."""

from __future__ import annotations

import importlib
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
        model_class = flavor.get("model_class", "xgboost.core.Booster")
        module, _, cls_name = model_class.rpartition(".")
        if cls_name == "Booster":
            booster = xgboost.Booster()
            booster.load_model(str(path))
            self.methods = {"predict": lambda X: booster.predict(xgboost.DMatrix(np.asarray(X)))}
            return
        model = getattr(importlib.import_module(module), cls_name)()
        model.load_model(str(path))
        self.methods = {m: getattr(model, m) for m in ("predict", "predict_proba") if hasattr(model, m)}
