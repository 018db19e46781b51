"""The tables, as SQLAlchemy Core metadata; migrations/versions create exactly these."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, MetaData, String, Table, Text

from monitor.store.types import UtcDateTime

# Identifier lengths: trunk and agent names come from config; outcomes are short enum values.
NAME_LENGTH = 200
KIND_LENGTH = 32
UUID_LENGTH = 36
REASON_LENGTH = 200

# BIGINT keys on PostgreSQL; on SQLite only "INTEGER PRIMARY KEY" autoincrements (rowid).
SERIAL = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData()

journal = Table(
    "journal",
    metadata,
    Column("seq", SERIAL, primary_key=True, autoincrement=True),
    Column("ts", UtcDateTime(), nullable=False),
    Column("agent", String(NAME_LENGTH), nullable=False),
    Column("trunk", String(NAME_LENGTH), nullable=True),
    Column("kind", String(KIND_LENGTH), nullable=False),
    Column("payload", Text(), nullable=False),
    Index("ix_journal_agent_seq", "agent", "seq"),
    Index("ix_journal_trunk_ts", "trunk", "ts"),
)

outages = Table(
    "outages",
    metadata,
    Column("id", String(UUID_LENGTH), primary_key=True),
    Column("trunk", String(NAME_LENGTH), nullable=False),
    Column("kind", String(KIND_LENGTH), nullable=False),
    Column("first_failure_at", UtcDateTime(), nullable=False),
    Column("confirmed_at", UtcDateTime(), nullable=False),
    Column("restored_at", UtcDateTime(), nullable=True),
    Column("closed_at", UtcDateTime(), nullable=True),
    Column("first_outcome", String(KIND_LENGTH), nullable=False),
    Column("detail", Text(), nullable=True),
    Column("agent", String(NAME_LENGTH), nullable=False),
    Index("ix_outages_trunk_first_failure", "trunk", "first_failure_at"),
    Index("ix_outages_closed_at", "closed_at"),
)

monitor_gaps = Table(
    "monitor_gaps",
    metadata,
    Column("id", SERIAL, primary_key=True, autoincrement=True),
    Column("agent", String(NAME_LENGTH), nullable=False),
    Column("start_at", UtcDateTime(), nullable=False),
    Column("end_at", UtcDateTime(), nullable=False),
    Column("reason", String(REASON_LENGTH), nullable=False),
    Index("ix_monitor_gaps_agent_start", "agent", "start_at"),
)

heartbeats = Table(
    "heartbeats",
    metadata,
    Column("agent", String(NAME_LENGTH), primary_key=True),
    Column("last_seen_at", UtcDateTime(), nullable=False),
)
