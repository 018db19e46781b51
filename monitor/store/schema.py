"""The tables, as SQLAlchemy Core metadata; migrations/versions create exactly these."""

from __future__ import annotations

from typing import Any

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


def _outage_columns() -> list[Column[Any]]:
    return [
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
        # NULL: restored (migration 0007); "removed": its trunk left the config (a reload).
        Column("end_cause", String(KIND_LENGTH), nullable=True),
    ]


# The outages the contract counts: one agent's own (alone), or the quorum's (several agents).
outages = Table(
    "outages",
    metadata,
    *_outage_columns(),
    Index("ix_outages_trunk_first_failure", "trunk", "first_failure_at"),
    Index("ix_outages_closed_at", "closed_at"),
)

# With several agents (migration 0006): each agent's own view of its outages, from which
# the leader derives the quorum's (monitor/quorum.py). Never counted by the SLA directly.
agent_outages = Table(
    "agent_outages",
    metadata,
    *_outage_columns(),
    Index("ix_agent_outages_trunk_first_failure", "trunk", "first_failure_at"),
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
    Column("site", String(NAME_LENGTH), nullable=True),  # migration 0006
)

# One row per lease (migration 0006; monitor/store/lease.py): who holds it until when, and
# the fencing token, which grows by one every time the lease changes hands.
leases = Table(
    "leases",
    metadata,
    Column("name", String(NAME_LENGTH), primary_key=True),
    Column("holder", String(NAME_LENGTH), nullable=False),
    Column("token", BigInteger(), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False),
)

# --- SLA records (migration 0002; written by monitor/sla/ledger.py) ------------------
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
    Column("trunk", String(NAME_LENGTH), nullable=True),  # 0005; NULL: the whole service
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
    Column("rtt_source", String(KIND_LENGTH), nullable=True),  # migration 0008
    Index("ix_call_samples_trunk_at", "trunk", "at"),
    Index("ix_call_samples_at", "at"),
)


# --- tickets (migration 0003): the outbox and one row per (outage, sink) ---------------------

# Group keys are "grp-" + a UUID (40 characters); room to spare.
KEY_LENGTH = 64
IDEMPOTENCY_LENGTH = 64
REF_LENGTH = 32
STATUS_LENGTH = 16
EXTERNAL_LENGTH = 200


class OutboxStatus:
    PENDING = "pending"  # due at due_at (first try, or a retry)
    HELD = "held"  # an open inside a maintenance window: re-checked until the window ends
    DONE = "done"
    FAILED = "failed"  # the sink refused for good (4xx other than 408/429)
    CANCELLED = "cancelled"  # nothing to deliver (the open failed, or was suppressed)
    MERGED = "merged"  # an open that became part of a grouped ticket


class TicketState:
    REQUESTED = "requested"  # queued, not yet acknowledged by the sink
    HELD = "held"  # inside a maintenance window
    OPEN = "open"  # the sink acknowledged it
    RESOLVED = "resolved"
    FAILED = "failed"  # the sink refused the open for good
    SUPPRESSED = "suppressed"  # the outage ended inside the maintenance window: no ticket


ticket_outbox = Table(
    "ticket_outbox",
    metadata,
    Column("id", SERIAL, primary_key=True, autoincrement=True),
    Column("ticket_key", String(KEY_LENGTH), nullable=False),
    Column("sink", String(NAME_LENGTH), nullable=False),
    Column("action", String(KIND_LENGTH), nullable=False),
    Column("idempotency_key", String(IDEMPOTENCY_LENGTH), nullable=False),
    Column("payload", Text(), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("due_at", UtcDateTime(), nullable=False),
    Column("attempts", Integer(), nullable=False),
    Column("last_attempt_at", UtcDateTime(), nullable=True),
    Column("last_error", Text(), nullable=True),
    Column("status", String(STATUS_LENGTH), nullable=False),
    Column("finished_at", UtcDateTime(), nullable=True),
    Index("ix_ticket_outbox_status_due", "status", "due_at"),
    Index("ix_ticket_outbox_key_sink", "ticket_key", "sink"),
    Index("uq_ticket_outbox_idempotency", "idempotency_key", unique=True),
)

tickets = Table(
    "tickets",
    metadata,
    Column("outage_id", String(UUID_LENGTH), primary_key=True),
    Column("sink", String(NAME_LENGTH), primary_key=True),
    Column("ticket_key", String(KEY_LENGTH), nullable=False),
    Column("trunk", String(NAME_LENGTH), nullable=False),
    Column("kind", String(KIND_LENGTH), nullable=False),
    Column("state", String(STATUS_LENGTH), nullable=False),
    Column("ref", String(REF_LENGTH), nullable=False),
    Column("external_id", String(EXTERNAL_LENGTH), nullable=True),
    Column("number", String(EXTERNAL_LENGTH), nullable=True),
    Column("url", Text(), nullable=True),
    Column("requested_at", UtcDateTime(), nullable=False),
    Column("first_sent_at", UtcDateTime(), nullable=True),
    Column("acknowledged_at", UtcDateTime(), nullable=True),
    Column("sink_created_at", UtcDateTime(), nullable=True),
    Column("number_captured_at", UtcDateTime(), nullable=True),
    Column("resolved_at", UtcDateTime(), nullable=True),
    Column("last_error", Text(), nullable=True),
    Column("data", Text(), nullable=True),
    Index("ix_tickets_ticket_key", "ticket_key"),
    Index("ix_tickets_requested_at", "requested_at"),
)
