"""``labdeck serve MODEL_URI``: a model as an API (V2 REST and gRPC, Seldon v1, MLflow
scoring). Needs the serving extra: ``pip install 'labdeck[serving]'`` (and the framework's
extra: ``[xgboost]``, ``[lightgbm]``, ``[onnx]``, ``[mlflow]`` for pyfunc)."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import click


@click.command()
@click.argument("model_uri")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=9000, show_default=True, type=click.IntRange(0, 65535), help="HTTP port (0 picks one).")
@click.option("--grpc-port", default=9001, show_default=True, type=click.IntRange(-1, 65535), help="gRPC port (-1: no gRPC).")
@click.option("--name", help="Model name on the V2 paths [default: the registered model's name or the folder's].")
@click.option("--model-version", "version", help="Version reported in V2 metadata [default: the registry's].")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64), help="Processes sharing the ports.")
@click.option("--runtime", help="sklearn, xgboost, lightgbm, onnx or pyfunc [default: chosen from the model].")
@click.option("--method", help="What 'predict' calls, e.g. predict_proba [default: predict].")
@click.option("--parameters", help="JSON object of runtime parameters.")
@click.option("--max-batch-size", default=0, show_default=True, type=click.IntRange(0, 100_000), help="Adaptive batching: rows per batch (0: off).")
@click.option("--max-batch-time", default=0.005, show_default=True, type=click.FloatRange(0, 10), help="Adaptive batching: seconds to wait for a batch.")
@click.option("--max-body-mb", default=64.0, show_default=True, type=click.FloatRange(0.001, 4096), help="Largest request body.")
@click.option("--tracking-uri", envvar="MLFLOW_TRACKING_URI", help="Tracking server resolving models:/ and runs:/ [env: MLFLOW_TRACKING_URI].")
@click.option("--cache-dir", default="~/.cache/labdeck/models", show_default=True, type=click.Path(path_type=Path))
@click.option("--access-log", is_flag=True, help="Log every request.")
@click.option(
    "--compile", "compile", type=click.Choice(["onnx"]), default=None,
    help="Convert a scikit-learn, XGBoost or LightGBM model to ONNX at load and serve that, once verified "
    "to answer as the original does (else the original serves, and a warning says why).",
)
@click.option("--log-level", default="info", type=click.Choice(["debug", "info", "warning", "error"]))
def serve(model_uri: str, grpc_port: int, parameters: str | None, log_level: str, **flags: object) -> None:
    """Serve MODEL_URI (models:/name@alias, runs:/id/path, s3://..., a folder, http(s)://...)."""
    from labdeck.logs import configure
    from labdeck.serving.server import ServeOptions, serve as run

    try:
        params = json.loads(parameters) if parameters else {}
    except ValueError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="--parameters") from None
    if not isinstance(params, dict):
        raise click.BadParameter("must be a JSON object", param_hint="--parameters")
    configure(log_level.upper())
    if log_level != "debug":  # not a line per file downloaded while fetching the model
        logging.getLogger("httpx").setLevel(logging.WARNING)
    options = ServeOptions(uri=model_uri, grpc_port=None if grpc_port < 0 else grpc_port, parameters=params, **flags)  # type: ignore[arg-type]
    sys.exit(run(options))
