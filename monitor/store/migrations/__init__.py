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


def upgrade_to_head(connection: Connection) -> None:
    """Bring the schema on this (sync, already transactional) connection to the newest revision."""
    config = alembic_config()
    # env.py runs on the caller's connection instead of opening its own engine.
    config.attributes["connection"] = connection
    command.upgrade(config, "head")
