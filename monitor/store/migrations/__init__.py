"""Alembic migrations shipped inside the package; ``upgrade_to_head`` runs them in-process.

Alembic is imported only when the schema is not at HEAD_REVISION: it and its templates are
~10 MB of the daemon's memory for good, and a restart on a current database needs none of
it (tests/test_store.py checks HEAD_REVISION against the scripts' own head).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

if TYPE_CHECKING:
    from alembic.config import Config

SCRIPT_LOCATION = Path(__file__).resolve().parent
# For the `alembic` command line: alembic -c <this> -x url=sqlite:///trunkwatch.db upgrade head
ALEMBIC_INI = SCRIPT_LOCATION / "alembic.ini"


# The newest revision in versions/: a new migration changes it.
HEAD_REVISION = "0008"
VERSION_TABLE = "alembic_version"


def alembic_config() -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(SCRIPT_LOCATION))
    return config


# Any fixed number: the advisory lock that serialises migrations of one PostgreSQL database.
MIGRATION_LOCK_KEY = 0x7477_6D69  # "twmi"


def upgrade_to_head(connection: Connection) -> str | None:
    """Bring the schema on this (sync, already transactional) connection to the newest
    revision; returns the revision it found (read under the lock: None, never migrated)."""
    if connection.dialect.name == "postgresql":
        # Agents starting together on a new database: one migrates, the others wait here and
        # then find the schema at head (without the lock their CREATE TABLEs deadlock). The
        # lock ends with the transaction. SQLite's BEGIN IMMEDIATE does the same.
        connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY})")
    found = schema_revision(connection)
    if found == HEAD_REVISION:
        return found
    from alembic import command

    config = alembic_config()
    # env.py runs on the caller's connection instead of opening its own engine.
    config.attributes["connection"] = connection
    command.upgrade(config, "head")
    return found


def schema_revision(connection: Connection) -> str | None:
    """The revision the database's schema is at (None: never migrated)."""
    if not inspect(connection).has_table(VERSION_TABLE):
        return None
    rows = connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).all()
    return rows[0][0] if len(rows) == 1 else None  # several heads: let alembic decide
