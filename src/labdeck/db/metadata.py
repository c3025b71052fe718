"""The one SQLAlchemy ``MetaData`` every area's tables are declared on.

Areas own their tables (``tracking/tables.py``, ...); this module only gives them a
shared registry and a naming convention, so that constraint names are stable across
SQLite and PostgreSQL and migrations can refer to them.
"""

from sqlalchemy import MetaData

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)
