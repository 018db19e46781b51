"""The tables, as SQLAlchemy Core metadata; migrations/versions create exactly these."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Float, Index, Integer, MetaData, String, Table, Text

from monitor.store.types import UtcDateTime

# Identifier lengths: trunk and agent names come from config; outcomes are short enum values.
NAME_LENGTH = 200
KIND_LENGTH = 32
UUID_LENGTH = 36
REASON_LENGTH = 200
HASH_LENGTH = 64  # SHA-256 in hex

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
    # Hash chain (monitor/journal_chain.py): nullable only for rows a foreign writer adds.
    Column("prev_hash", String(HASH_LENGTH), nullable=True),
    Column("hash", String(HASH_LENGTH), nullable=True),
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

# --- SLA records (migration 0002; written by monitor/store/sla_store.py) ------------------
# Nothing here is ever deleted: withdrawals, cancellations and revocations are columns, and
# every change is also a row of audit_log.

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", SERIAL, primary_key=True, autoincrement=True),
    Column("at", UtcDateTime(), nullable=False),
    Column("actor", String(NAME_LENGTH), nullable=False),
    Column("action", String(64), nullable=False),
    Column("entity", String(KIND_LENGTH), nullable=False),
    Column("entity_id", String(NAME_LENGTH), nullable=False),
    Column("detail", Text(), nullable=False),
    Index("ix_audit_log_entity", "entity", "entity_id"),
)

maintenance_windows = Table(
    "maintenance_windows",
    metadata,
    Column("id", String(UUID_LENGTH), primary_key=True),
    Column("title", Text(), nullable=False),
    Column("services", Text(), nullable=False),
    Column("origin", String(KIND_LENGTH), nullable=False),
    Column("start_at", UtcDateTime(), nullable=False),
    Column("end_at", UtcDateTime(), nullable=False),
    Column("tz", String(64), nullable=False),
    Column("rrule", Text(), nullable=True),
    Column("exdates", Text(), nullable=False),
    Column("notice_ref", Text(), nullable=False),
    Column("ical_uid", String(255), nullable=True),
    Column("ical_sequence", Integer(), nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("created_by", String(NAME_LENGTH), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=True),
    Column("updated_by", String(NAME_LENGTH), nullable=True),
    Column("cancelled_at", UtcDateTime(), nullable=True),
    Column("cancelled_by", String(NAME_LENGTH), nullable=True),
    Column("cancel_reason", Text(), nullable=True),
    Index("ix_maintenance_windows_start", "start_at"),
    Index("ix_maintenance_windows_ical_uid", "ical_uid"),
)

exclusions = Table(
    "exclusions",
    metadata,
    Column("id", String(UUID_LENGTH), primary_key=True),
    Column("outage_id", String(NAME_LENGTH), nullable=False),
    Column("service", String(NAME_LENGTH), nullable=False),
    Column("kind", String(KIND_LENGTH), nullable=False),
    Column("reason", Text(), nullable=False),
    Column("reference", Text(), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("created_by", String(NAME_LENGTH), nullable=False),
    Column("revoked_at", UtcDateTime(), nullable=True),
    Column("revoked_by", String(NAME_LENGTH), nullable=True),
    Column("revoked_reason", Text(), nullable=True),
    Index("ix_exclusions_outage", "outage_id"),
)

manual_outages = Table(
    "manual_outages",
    metadata,
    Column("id", String(NAME_LENGTH), primary_key=True),
    Column("service", String(NAME_LENGTH), nullable=False),
    Column("kind", String(KIND_LENGTH), nullable=False),
    Column("first_failure_at", UtcDateTime(), nullable=False),
    Column("ticket_opened_at", UtcDateTime(), nullable=True),
    Column("carrier_ticket", Text(), nullable=False),
    Column("restored_at", UtcDateTime(), nullable=True),
    Column("evidence_ref", Text(), nullable=False),
    Column("note", Text(), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("created_by", String(NAME_LENGTH), nullable=False),
    Column("withdrawn_at", UtcDateTime(), nullable=True),
    Column("withdrawn_by", String(NAME_LENGTH), nullable=True),
    Column("withdrawn_reason", Text(), nullable=True),
    Index("ix_manual_outages_service", "service", "first_failure_at"),
)

ticket_corrections = Table(
    "ticket_corrections",
    metadata,
    Column("id", SERIAL, primary_key=True, autoincrement=True),
    Column("outage_id", String(NAME_LENGTH), nullable=False),
    Column("field", String(KIND_LENGTH), nullable=False),
    Column("value", UtcDateTime(), nullable=False),
    Column("previous", UtcDateTime(), nullable=True),
    Column("reason", Text(), nullable=False),
    Column("reference", Text(), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("created_by", String(NAME_LENGTH), nullable=False),
    Index("ix_ticket_corrections_outage", "outage_id"),
)

# --- Samples (migration 0004; written by monitor/store/samples.py) ------------------------
# OPTIONS results are kept only around transitions (the ring before, the results after);
# test calls are rare, so every one is kept.

probe_samples = Table(
    "probe_samples",
    metadata,
    Column("id", SERIAL, primary_key=True, autoincrement=True),
    Column("agent", String(NAME_LENGTH), nullable=False),
    Column("trunk", String(NAME_LENGTH), nullable=False),
    Column("transition_kind", String(KIND_LENGTH), nullable=False),
    Column("transition_at", UtcDateTime(), nullable=False),
    Column("at", UtcDateTime(), nullable=False),
    Column("outcome", String(KIND_LENGTH), nullable=False),
    Column("rtt_s", Float(), nullable=True),
    Column("status", Integer(), nullable=True),
    Index("ix_probe_samples_trunk_at", "trunk", "at"),
    Index("ix_probe_samples_at", "at"),
)

call_samples = Table(
    "call_samples",
    metadata,
    Column("id", SERIAL, primary_key=True, autoincrement=True),
    Column("agent", String(NAME_LENGTH), nullable=False),
    Column("trunk", String(NAME_LENGTH), nullable=False),
    Column("at", UtcDateTime(), nullable=False),
    Column("outcome", String(KIND_LENGTH), nullable=False),
    Column("mos", Float(), nullable=True),
    Column("rx_jitter_s", Float(), nullable=True),
    Column("tx_jitter_s", Float(), nullable=True),
    Column("loss_ratio", Float(), nullable=True),
    Column("burst_loss_ratio", Float(), nullable=True),
    Column("rtt_s", Float(), nullable=True),
    Column("one_way_latency_s", Float(), nullable=True),
    Column("violations", Text(), nullable=False),
    Column("profile", String(NAME_LENGTH), nullable=True),
    Column("limits", Text(), nullable=False),
    Index("ix_call_samples_trunk_at", "trunk", "at"),
    Index("ix_call_samples_at", "at"),
)
