"""Identity's tables (SQLAlchemy Core). Only ``auth/store.py`` queries them.

Secrets are never stored: passwords as argon2id hashes, tokens and session ids as SHA-256
digests of values that are shown once and then exist only with their holder.
"""

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
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

users = Table(
    "users",
    metadata,
    Column("user_id", Integer, primary_key=True, autoincrement=True),
    Column("username", String(256), nullable=False),
    Column("email", String(320), nullable=True),
    Column("display_name", String(256), nullable=True),
    Column("password_hash", Text, nullable=True),
    Column("oidc_subject", String(512), nullable=True),
    Column("is_admin", Boolean, nullable=False),
    Column("is_active", Boolean, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("last_login_at", BigInteger, nullable=True),
    UniqueConstraint("username"),
    UniqueConstraint("oidc_subject"),
)


def _user_fk() -> Column:
    return Column("user_id", Integer, ForeignKey("users.user_id", ondelete="CASCADE"), nullable=False)


teams = Table(
    "teams",
    metadata,
    Column("team_id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(256), nullable=False),
    Column("description", Text, nullable=True),
    Column("private", Boolean, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    UniqueConstraint("name"),
)

team_members = Table(
    "team_members",
    metadata,
    Column("team_id", Integer, ForeignKey("teams.team_id", ondelete="CASCADE"), nullable=False),
    _user_fk(),
    PrimaryKeyConstraint("team_id", "user_id"),
    Index(None, "user_id"),
)

tokens = Table(
    "tokens",
    metadata,
    Column("token_id", Integer, primary_key=True, autoincrement=True),
    _user_fk(),
    Column("name", String(256), nullable=False),
    Column("token_hash", String(64), nullable=False),
    Column("prefix", String(16), nullable=False),
    Column("read_only", Boolean, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=True),
    Column("last_used_at", BigInteger, nullable=True),
    UniqueConstraint("token_hash"),
    Index(None, "user_id"),
)

sessions = Table(
    "sessions",
    metadata,
    Column("session_hash", String(64), primary_key=True),
    _user_fk(),
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Index(None, "user_id"),
)

# Who owns what: the creator, and optionally a team whose privacy decides what everyone
# else may do. Resources are named by type ("experiment", "registered_model",
# "deployment") and a stable id (an experiment id, a model's key, a deployment name).
resources = Table(
    "resources",
    metadata,
    Column("resource_type", String(32), nullable=False),
    Column("resource_id", String(256), nullable=False),
    Column("owner_id", Integer, ForeignKey("users.user_id", ondelete="SET NULL"), nullable=True),
    Column("team_id", Integer, ForeignKey("teams.team_id", ondelete="SET NULL"), nullable=True),
    PrimaryKeyConstraint("resource_type", "resource_id"),
    Index(None, "team_id"),
)

grants = Table(
    "grants",
    metadata,
    Column("resource_type", String(32), nullable=False),
    Column("resource_id", String(256), nullable=False),
    Column("principal_type", String(8), nullable=False),
    Column("principal_id", Integer, nullable=False),
    Column("level", String(8), nullable=False),
    PrimaryKeyConstraint("resource_type", "resource_id", "principal_type", "principal_id"),
    Index(None, "principal_type", "principal_id"),
)

login_failures = Table(
    "login_failures",
    metadata,
    Column("key", String(512), primary_key=True),
    Column("window_start", BigInteger, nullable=False),
    Column("failures", Integer, nullable=False),
)
