"""The built-in runtimes: scikit-learn, XGBoost, LightGBM, ONNX and MLflow pyfunc."""
