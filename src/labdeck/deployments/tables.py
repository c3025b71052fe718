"""Deployments' tables (SQLAlchemy Core). Only ``deployments/store.py`` queries them.

The desired state is ``deployments.spec`` (a normalized ModelDeployment, as JSON); what
the controller observed is in ``deployment_predictors``; ``deployment_events`` is the
record of what happened (rollouts, failures, alias moves), newest last.
"""

from sqlalchemy import BigInteger, Column, Index, Integer, PrimaryKeyConstraint, String, Table, Text

from labdeck.db.metadata import metadata

deployments = Table(
    "deployments",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("namespace", String(64), nullable=False),
    Column("source_kind", String(32), nullable=False),  # ModelDeployment | SeldonDeployment
    Column("spec", Text, nullable=False),
    Column("source", Text, nullable=False),  # the document as submitted
    Column("generation", Integer, nullable=False),
    Column("state", String(16), nullable=False),
    Column("message", Text, nullable=True),
    Column("created_by", String(256), nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Index(None, "namespace", "name", unique=True),
)

deployment_predictors = Table(
    "deployment_predictors",
    metadata,
    Column("deployment", String(64), nullable=False),
    Column("predictor", String(32), nullable=False),
    Column("state", String(16), nullable=False),
    Column("desired_replicas", Integer, nullable=False),
    Column("ready_replicas", Integer, nullable=False),
    Column("serving", Text, nullable=True),  # JSON: the revision that serves (model version, location...)
    Column("target", Text, nullable=True),  # JSON: the revision being rolled out, when another
    Column("failed_revision", String(64), nullable=True),
    Column("message", Text, nullable=True),
    Column("replicas", Text, nullable=False),  # JSON: each replica's id, revision, state, endpoints
    Column("updated_at", BigInteger, nullable=False),
    PrimaryKeyConstraint("deployment", "predictor"),
)

deployment_events = Table(
    "deployment_events",
    metadata,
    Column("event_id", Integer, primary_key=True, autoincrement=True),
    Column("deployment", String(64), nullable=False),
    Column("predictor", String(32), nullable=True),
    Column("at", BigInteger, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("message", Text, nullable=False),
    Index(None, "deployment", "event_id"),
)
