"""Migration 0003: creates exactly the ticket tables the code declares, and reverses."""

from __future__ import annotations

from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from monitor.store import Store
from monitor.store.migrations import alembic_config
from monitor.store.schema import metadata, ticket_outbox, tickets


def _state(conn: Connection) -> dict[str, Any]:
    insp = inspect(conn)
    return {
        "tables": set(insp.get_table_names()),
        "diff": compare_metadata(MigrationContext.configure(conn), metadata),
        "version": conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one(),
        "unique": {
            ix["name"] for ix in insp.get_indexes("ticket_outbox") if ix["unique"]
        } if "ticket_outbox" in insp.get_table_names() else set(),
    }  # fmt: skip


def _head() -> str:
    """The newest revision: later migrations (0004 samples...) stack on top of 0003."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None and head >= "0003"
    return head


def _migrate(conn: Connection, action: str, target: str) -> None:
    config = alembic_config()
    config.attributes["connection"] = conn
    getattr(command, action)(config, target)


async def test_0003_matches_the_declared_tables_and_downgrades(store: Store) -> None:
    assert {"ticket_outbox", "tickets"} <= set(metadata.tables)
    assert ticket_outbox.metadata is metadata and tickets.metadata is metadata
    async with store.engine.begin() as conn:
        state = await conn.run_sync(_state)
    assert {"ticket_outbox", "tickets"} <= state["tables"]
    assert state["diff"] == []
    assert state["version"] == _head()
    assert state["unique"] == {"uq_ticket_outbox_idempotency"}

    async with store.engine.begin() as conn:
        await conn.run_sync(_migrate, "downgrade", "0002")
        tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
    assert not {"ticket_outbox", "tickets"} & tables

    async with store.engine.begin() as conn:
        await conn.run_sync(_migrate, "upgrade", "head")
        state = await conn.run_sync(_state)
    assert state["diff"] == [] and state["version"] == _head()
