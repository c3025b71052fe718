"""The unmodified ``mlflow`` client against a live labdeck: the whole tracking flow a data
scientist runs, on SQLite and on PostgreSQL."""

from __future__ import annotations

import math
from pathlib import Path

import mlflow
import numpy as np
import pytest
from mlflow.entities import Metric, Param, RunTag, ViewType
from mlflow.exceptions import MlflowException
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression


@pytest.fixture
def client(server, mlflow_at):
    return mlflow_at(server)


def test_experiment_lifecycle(client):
    experiment_id = client.create_experiment("churn", tags={"team": "ds"})
    experiment = client.get_experiment(experiment_id)
    assert experiment.name == "churn"
    assert experiment.tags == {"team": "ds"}
    assert experiment.artifact_location == f"mlflow-artifacts:/{experiment_id}"
    assert client.get_experiment_by_name("churn").experiment_id == experiment_id
    assert client.get_experiment_by_name("absent") is None

    client.rename_experiment(experiment_id, "churn-v2")
    client.set_experiment_tag(experiment_id, "owner", "ana")
    client.delete_experiment_tag(experiment_id, "team")
    assert client.get_experiment(experiment_id).tags == {"owner": "ana"}

    client.delete_experiment(experiment_id)
    assert client.get_experiment(experiment_id).lifecycle_stage == "deleted"
    with pytest.raises(MlflowException, match="already exists"):
        client.create_experiment("churn-v2")
    names = {e.name for e in client.search_experiments(view_type=ViewType.DELETED_ONLY)}
    assert names == {"churn-v2"}
    client.restore_experiment(experiment_id)
    assert {e.name for e in client.search_experiments()} == {"Default", "churn-v2"}


def test_run_logging_and_reading_back(client):
    experiment_id = client.create_experiment("logging")
    run = client.create_run(experiment_id, run_name="first", tags={"stage": "dev"})
    run_id = run.info.run_id
    assert run.info.run_name == "first"
    assert run.info.status == "RUNNING"

    client.log_param(run_id, "lr", "0.1")
    client.log_param(run_id, "lr", "0.1")  # the same value again is accepted
    with pytest.raises(MlflowException, match="Changing param values is not allowed"):
        client.log_param(run_id, "lr", "0.2")
    for step in range(5):
        client.log_metric(run_id, "loss", 1.0 / (step + 1), step=step, timestamp=1000 + step)
    client.log_metric(run_id, "odd", float("nan"), timestamp=5)
    client.log_batch(
        run_id,
        metrics=[Metric("acc", 0.5, 10, 0), Metric("acc", 0.75, 11, 1)],
        params=[Param("depth", "3")],
        tags=[RunTag("note", "batch")],
    )
    client.set_tag(run_id, "temp", "x")
    client.delete_tag(run_id, "temp")
    client.set_terminated(run_id, "FINISHED")

    got = client.get_run(run_id)
    assert got.info.status == "FINISHED" and got.info.end_time is not None
    assert got.data.params == {"lr": "0.1", "depth": "3"}
    assert got.data.metrics["loss"] == pytest.approx(0.2)
    assert got.data.metrics["acc"] == 0.75
    assert math.isnan(got.data.metrics["odd"])
    assert got.data.tags["stage"] == "dev" and got.data.tags["note"] == "batch"
    assert "temp" not in got.data.tags
    assert got.data.tags["mlflow.runName"] == "first"

    history = client.get_metric_history(run_id, "loss")
    assert [(m.step, m.value) for m in history] == [(s, 1.0 / (s + 1)) for s in range(5)]

    client.delete_run(run_id)
    assert client.get_run(run_id).info.lifecycle_stage == "deleted"
    with pytest.raises(MlflowException, match="must be in the 'active' state"):
        client.log_metric(run_id, "loss", 0.0)
    client.restore_run(run_id)
    client.log_metric(run_id, "loss", 0.0, step=9)


def test_fluent_flow_with_sklearn_model(server, mlflow_at, tmp_path: Path):
    mlflow_at(server)
    mlflow.set_experiment("iris")
    X, y = load_iris(return_X_y=True)
    with mlflow.start_run() as run:
        mlflow.log_params({"C": 1.0, "max_iter": 300})
        model = LogisticRegression(max_iter=300).fit(X, y)
        mlflow.log_metric("train_acc", model.score(X, y))
        info = mlflow.sklearn.log_model(model, name="model", input_example=X[:2])
        nested = tmp_path / "report"
        (nested / "plots" / "deep").mkdir(parents=True)
        (nested / "summary.txt").write_text("ok")
        (nested / "plots" / "deep" / "values.csv").write_text("a,b\n1,2\n")
        mlflow.log_artifacts(str(nested), artifact_path="report")
        mlflow.log_dict({"k": [1, 2]}, "config/params.json")
        dataset = mlflow.data.from_numpy(X, targets=y, name="iris")
        mlflow.log_input(dataset, context="training")

    expected = model.predict(X[:10])
    by_run = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/model")
    assert np.array_equal(by_run.predict(X[:10]), expected)
    by_model_id = mlflow.pyfunc.load_model(f"models:/{info.model_id}")
    assert np.array_equal(by_model_id.predict(X[:10]), expected)

    logged = mlflow.get_logged_model(info.model_id)
    assert logged.status == "READY" and logged.source_run_id == run.info.run_id
    assert logged.metrics and logged.metrics[0].key == "train_acc"

    client = mlflow.MlflowClient()
    top = {(f.path, f.is_dir) for f in client.list_artifacts(run.info.run_id)}
    assert top == {("report", True), ("config", True)}
    deep = client.list_artifacts(run.info.run_id, "report/plots/deep")
    assert [(f.path, f.file_size) for f in deep] == [("report/plots/deep/values.csv", 8)]

    download = tmp_path / "download"
    local = mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="report", dst_path=str(download))
    assert (Path(local) / "plots" / "deep" / "values.csv").read_text() == "a,b\n1,2\n"
    assert mlflow.artifacts.load_dict(f"runs:/{run.info.run_id}/config/params.json") == {"k": [1, 2]}

    got = client.get_run(run.info.run_id)
    assert got.inputs.dataset_inputs[0].dataset.name == "iris"
    assert got.inputs.dataset_inputs[0].tags[0].value == "training"
    assert [o.model_id for o in got.outputs.model_outputs] == [info.model_id]
    assert "mlflow.log-model.history" not in got.data.tags or got.data.tags["mlflow.log-model.history"]


def test_search_runs_to_dataframe(client):
    experiment_id = client.create_experiment("frame")
    for i in range(12):
        run = client.create_run(experiment_id, run_name=f"r{i}")
        client.log_batch(run.info.run_id, metrics=[Metric("score", i / 10, 0, 0)], params=[Param("group", "ab"[i % 2])])
    mlflow.set_tracking_uri(client.tracking_uri if hasattr(client, "tracking_uri") else mlflow.get_tracking_uri())
    frame = mlflow.search_runs(
        experiment_ids=[experiment_id], filter_string="params.group = 'a' and metrics.score >= 0.4", order_by=["metrics.score DESC"]
    )
    assert list(frame["metrics.score"]) == [1.0, 0.8, 0.6, 0.4]
    assert set(frame["params.group"]) == {"a"}
