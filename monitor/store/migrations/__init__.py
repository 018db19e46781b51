"""Alembic migrations shipped inside the package; ``upgrade_to_head`` runs them in-process."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection

SCRIPT_LOCATION = Path(__file__).resolve().parent
# For the `alembic` command line: alembic -c <this> -x url=sqlite:///trunkwatch.db upgrade head
ALEMBIC_INI = SCRIPT_LOCATION / "alembic.ini"


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(SCRIPT_LOCATION))
    return config


# Any fixed number: the advisory lock that serialises migrations of one PostgreSQL database.
MIGRATION_LOCK_KEY = 0x7477_6D69  # "twmi"


def upgrade_to_head(connection: Connection) -> None:
    """Bring the schema on this (sync, already transactional) connection to the newest revision."""
    if connection.dialect.name == "postgresql":
        # Agents starting together on a new database: one migrates, the others wait here and
        # then find the schema at head (without the lock their CREATE TABLEs deadlock). The
        # lock ends with the transaction. SQLite's BEGIN IMMEDIATE does the same.
        connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY})")
    config = alembic_config()
    # env.py runs on the caller's connection instead of opening its own engine.
    config.attributes["connection"] = connection
    command.upgrade(config, "head")
