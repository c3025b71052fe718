"""Tracking's tables (SQLAlchemy Core). Only ``tracking/store.py`` queries them.

The initial migration creates exactly these; a test compares the migrated schema with
this module so the two cannot drift.
"""

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from labdeck.db.metadata import metadata

experiments = Table(
    "experiments",
    metadata,
    Column("experiment_id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(500), nullable=False),
    Column("artifact_location", Text, nullable=False),
    Column("lifecycle_stage", String(32), nullable=False),
    Column("creation_time", BigInteger, nullable=False),
    Column("last_update_time", BigInteger, nullable=False),
    UniqueConstraint("name"),
)

experiment_tags = Table(
    "experiment_tags",
    metadata,
    Column("experiment_id", Integer, ForeignKey("experiments.experiment_id", ondelete="CASCADE"), nullable=False),
    Column("key", String(250), nullable=False),
    Column("value", Text, nullable=False),
    PrimaryKeyConstraint("experiment_id", "key"),
)

runs = Table(
    "runs",
    metadata,
    Column("run_uuid", String(32), primary_key=True),
    Column("name", String(250), nullable=False),
    Column("experiment_id", Integer, ForeignKey("experiments.experiment_id", ondelete="CASCADE"), nullable=False),
    Column("user_id", String(256), nullable=False),
    Column("status", String(20), nullable=False),
    Column("start_time", BigInteger, nullable=False),
    Column("end_time", BigInteger, nullable=True),
    Column("deleted_time", BigInteger, nullable=True),
    Column("lifecycle_stage", String(32), nullable=False),
    Column("artifact_uri", Text, nullable=False),
    Index(None, "experiment_id", "lifecycle_stage", "start_time", "run_uuid"),
)


def _run_fk() -> Column:
    return Column("run_uuid", String(32), ForeignKey("runs.run_uuid", ondelete="CASCADE"), nullable=False)


params = Table(
    "params",
    metadata,
    _run_fk(),
    Column("key", String(250), nullable=False),
    Column("value", Text, nullable=False),
    PrimaryKeyConstraint("run_uuid", "key"),
    sqlite_with_rowid=False,
)

tags = Table(
    "tags",
    metadata,
    _run_fk(),
    Column("key", String(250), nullable=False),
    Column("value", Text, nullable=False),
    PrimaryKeyConstraint("run_uuid", "key"),
    sqlite_with_rowid=False,
)


def _metric_columns() -> list[Column]:
    return [
        _run_fk(),
        Column("key", String(250), nullable=False),
        Column("value", Float, nullable=False),
        Column("timestamp", BigInteger, nullable=False),
        Column("step", BigInteger, nullable=False),
        Column("is_nan", Boolean, nullable=False),
        Column("model_id", String(64), nullable=True),
        Column("dataset_name", String(500), nullable=True),
        Column("dataset_digest", String(36), nullable=True),
    ]


# Every logged point. The primary key is also the order of a metric's history
# (timestamp, step, value), and a point logged twice is stored once.
metrics = Table(
    "metrics",
    metadata,
    *_metric_columns(),
    PrimaryKeyConstraint("run_uuid", "key", "timestamp", "step", "value", "is_nan"),
    sqlite_with_rowid=False,
)

# The newest point per (run, key): the max of (step, timestamp, value), as MLflow defines it.
latest_metrics = Table(
    "latest_metrics",
    metadata,
    *_metric_columns(),
    PrimaryKeyConstraint("run_uuid", "key"),
    Index(None, "key", "value"),
    sqlite_with_rowid=False,
)

datasets = Table(
    "datasets",
    metadata,
    Column("dataset_uuid", String(36), primary_key=True),
    Column("experiment_id", Integer, ForeignKey("experiments.experiment_id", ondelete="CASCADE"), nullable=False),
    Column("name", String(500), nullable=False),
    Column("digest", String(36), nullable=False),
    Column("source_type", String(36), nullable=False),
    Column("source", Text, nullable=False),
    Column("schema", Text, nullable=True),
    Column("profile", Text, nullable=True),
    UniqueConstraint("experiment_id", "name", "digest"),
)

run_dataset_inputs = Table(
    "run_dataset_inputs",
    metadata,
    _run_fk(),
    Column("dataset_uuid", String(36), ForeignKey("datasets.dataset_uuid", ondelete="CASCADE"), nullable=False),
    Column("position", Integer, nullable=False),
    PrimaryKeyConstraint("run_uuid", "dataset_uuid"),
)

run_dataset_input_tags = Table(
    "run_dataset_input_tags",
    metadata,
    _run_fk(),
    Column("dataset_uuid", String(36), ForeignKey("datasets.dataset_uuid", ondelete="CASCADE"), nullable=False),
    Column("key", String(255), nullable=False),
    Column("value", String(500), nullable=False),
    PrimaryKeyConstraint("run_uuid", "dataset_uuid", "key"),
)

logged_models = Table(
    "logged_models",
    metadata,
    Column("model_id", String(64), primary_key=True),
    Column("experiment_id", Integer, ForeignKey("experiments.experiment_id", ondelete="CASCADE"), nullable=False),
    Column("name", String(500), nullable=False),
    Column("artifact_location", Text, nullable=False),
    Column("creation_timestamp_ms", BigInteger, nullable=False),
    Column("last_updated_timestamp_ms", BigInteger, nullable=False),
    Column("status", String(32), nullable=False),
    Column("lifecycle_stage", String(32), nullable=False),
    Column("model_type", String(500), nullable=True),
    Column("source_run_id", String(32), nullable=True),
    Column("status_message", Text, nullable=True),
    Column("creator_id", String(256), nullable=True),
    Index(None, "experiment_id", "creation_timestamp_ms"),
)


def _model_fk() -> Column:
    return Column("model_id", String(64), ForeignKey("logged_models.model_id", ondelete="CASCADE"), nullable=False)


logged_model_tags = Table(
    "logged_model_tags",
    metadata,
    _model_fk(),
    Column("key", String(250), nullable=False),
    Column("value", Text, nullable=False),
    PrimaryKeyConstraint("model_id", "key"),
)

logged_model_params = Table(
    "logged_model_params",
    metadata,
    _model_fk(),
    Column("key", String(250), nullable=False),
    Column("value", Text, nullable=False),
    PrimaryKeyConstraint("model_id", "key"),
)

# Metric points logged with a model_id: a logged model's metrics. The model id is not a
# foreign key because MLflow clients may log points for a model before or without creating it.
logged_model_metrics = Table(
    "logged_model_metrics",
    metadata,
    Column("model_id", String(64), nullable=False),
    Column("key", String(250), nullable=False),
    Column("value", Float, nullable=False),
    Column("timestamp", BigInteger, nullable=False),
    Column("step", BigInteger, nullable=False),
    Column("is_nan", Boolean, nullable=False),
    Column("run_uuid", String(32), ForeignKey("runs.run_uuid", ondelete="CASCADE"), nullable=False),
    Column("dataset_name", String(500), nullable=True),
    Column("dataset_digest", String(36), nullable=True),
    PrimaryKeyConstraint("model_id", "key", "timestamp", "step", "value", "is_nan", "run_uuid"),
)

run_model_inputs = Table(
    "run_model_inputs",
    metadata,
    _run_fk(),
    Column("model_id", String(64), nullable=False),
    PrimaryKeyConstraint("run_uuid", "model_id"),
)

run_model_outputs = Table(
    "run_model_outputs",
    metadata,
    _run_fk(),
    Column("model_id", String(64), nullable=False),
    Column("step", BigInteger, nullable=False),
    PrimaryKeyConstraint("run_uuid", "model_id"),
)
