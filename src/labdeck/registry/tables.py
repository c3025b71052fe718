"""The registry's tables (SQLAlchemy Core). Only ``registry/store.py`` queries them.

Models have a surrogate integer key so that a rename touches one row; versions, tags,
aliases and history rows hang off it and go with it when the model is deleted. A deleted
version stays as a tombstone (``deleted``) so that its number is never given out again,
as MLflow does.
"""

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from labdeck.db.metadata import metadata

registered_models = Table(
    "registered_models",
    metadata,
    Column("model_pk", Integer, primary_key=True, autoincrement=True),
    Column("name", String(256), nullable=False),
    Column("creation_time", BigInteger, nullable=False),
    Column("last_updated_time", BigInteger, nullable=False),
    Column("description", Text, nullable=True),
    Column("user_id", String(256), nullable=True),
    UniqueConstraint("name"),
)


def _model_fk() -> Column:
    return Column(
        "model_pk", Integer, ForeignKey("registered_models.model_pk", ondelete="CASCADE"), nullable=False
    )


model_versions = Table(
    "model_versions",
    metadata,
    _model_fk(),
    Column("version", Integer, nullable=False),
    Column("creation_time", BigInteger, nullable=False),
    Column("last_updated_time", BigInteger, nullable=False),
    Column("description", Text, nullable=True),
    Column("user_id", String(256), nullable=True),
    Column("current_stage", String(20), nullable=False),
    Column("source", Text, nullable=False),
    Column("storage_location", Text, nullable=True),
    Column("run_id", String(32), nullable=True),
    Column("run_link", Text, nullable=True),
    Column("model_id", String(64), nullable=True),
    Column("status", String(32), nullable=False),
    Column("status_message", Text, nullable=True),
    Column("deleted", Boolean, nullable=False),
    PrimaryKeyConstraint("model_pk", "version"),
    Index(None, "run_id"),
)

registered_model_tags = Table(
    "registered_model_tags",
    metadata,
    _model_fk(),
    Column("key", String(250), nullable=False),
    Column("value", Text, nullable=False),
    PrimaryKeyConstraint("model_pk", "key"),
    Index(None, "key", "value"),
)

model_version_tags = Table(
    "model_version_tags",
    metadata,
    Column("model_pk", Integer, nullable=False),
    Column("version", Integer, nullable=False),
    Column("key", String(250), nullable=False),
    Column("value", Text, nullable=False),
    PrimaryKeyConstraint("model_pk", "version", "key"),
    ForeignKeyConstraint(
        ["model_pk", "version"], ["model_versions.model_pk", "model_versions.version"], ondelete="CASCADE"
    ),
)

registered_model_aliases = Table(
    "registered_model_aliases",
    metadata,
    Column("model_pk", Integer, nullable=False),
    Column("alias", String(256), nullable=False),
    Column("version", Integer, nullable=False),
    PrimaryKeyConstraint("model_pk", "alias"),
    ForeignKeyConstraint(
        ["model_pk", "version"], ["model_versions.model_pk", "model_versions.version"], ondelete="CASCADE"
    ),
)

# Every alias move and stage transition, with who and when: what was served when.
model_history = Table(
    "model_history",
    metadata,
    Column("event_id", Integer, primary_key=True, autoincrement=True),
    _model_fk(),
    Column("timestamp", BigInteger, nullable=False),
    Column("actor", String(256), nullable=True),
    Column("kind", String(32), nullable=False),
    Column("alias", String(256), nullable=True),
    Column("version", Integer, nullable=True),
    Column("from_version", Integer, nullable=True),
    Column("to_version", Integer, nullable=True),
    Column("from_stage", String(20), nullable=True),
    Column("to_stage", String(20), nullable=True),
    Column("from_name", String(256), nullable=True),
    Column("to_name", String(256), nullable=True),
    Column("deployment", String(128), nullable=True),
    Index(None, "model_pk", "event_id"),
)
