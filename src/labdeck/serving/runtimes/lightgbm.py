"""``lightgbm``: LightGBM models: a Booster's text model (``model.txt``, or MLflow's
``model.lgb``) or a scikit-learn API estimator (``LGBMClassifier``, ...) as MLflow's
lightgbm flavor saves it: in the flavor's ``serialization_format``, skops by default
since MLflow 3 (``model.skops``), cloudpickle or pickle before (``model.pkl``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from labdeck.errors import InvalidParameter
from labdeck.serving.runtimes.sklearn import load_serialized, quiet_about_feature_names
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
        # MLflow's own rule (mlflow.lightgbm._load_model): only a Booster is a LightGBM file
        if flavor.get("model_class", "lightgbm.basic.Booster") != "lightgbm.basic.Booster":
            model = load_serialized(path, flavor.get("serialization_format", "cloudpickle"), flavor.get("skops_trusted_types"))
            self.estimator = model
            quiet_about_feature_names(model)
            self.methods = {m: getattr(model, m) for m in ("predict", "predict_proba") if hasattr(model, m)}
        else:
            booster = lightgbm.Booster(model_file=str(path))
            self.estimator = booster

            def predict(X: Any) -> Any:
                # LightGBM refuses data as LightGBMError, which is no ValueError: make it one,
                # so that the caller hears "the model refused the input" (a 400), not a 500
                try:
                    return booster.predict(X)
                except lightgbm.basic.LightGBMError as exc:
                    raise ValueError(str(exc)) from None

            self.methods = {"predict": predict}
