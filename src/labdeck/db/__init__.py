"""The metadata database: engine, the read/write runner, and Alembic migrations."""

from labdeck.db.database import Database

__all__ = ["Database"]
