"""``lightgbm``: LightGBM models: a Booster's text model (``model.txt``, or MLflow's
``model.lgb``) or a pickled scikit-learn estimator (MLflow's ``model.pkl``)."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

from labdeck.errors import InvalidParameter
from labdeck.serving.runtimes.tabular import TabularRuntime


class LightGBMRuntime(TabularRuntime):
    name = "lightgbm"
    platform = "lightgbm"

    @classmethod
    def can_load(cls, model_dir: Path, mlmodel: dict[str, Any]) -> bool:
        if mlmodel:
            return "lightgbm" in (mlmodel.get("flavors") or {})
        return (model_dir / "model.txt").is_file()

    async def load(self) -> None:
        import lightgbm

        flavor = (self.mlmodel.get("flavors") or {}).get("lightgbm") or {}
        path = self.model_dir / flavor.get("data", "model.txt")
        if not path.is_file():
            raise InvalidParameter(f"No LightGBM model file at {path}.")
        if path.suffix == ".pkl":
            with open(path, "rb") as f:
                model = pickle.load(f)
            self.methods = {m: getattr(model, m) for m in ("predict", "predict_proba") if hasattr(model, m)}
        else:
            booster = lightgbm.Booster(model_file=str(path))
            self.methods = {"predict": booster.predict}
