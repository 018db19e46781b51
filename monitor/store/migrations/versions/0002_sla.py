"""SLA: hash-chained journal, maintenance windows, exclusions, manual outages, ticket-time
corrections and the audit log.

Revision ID: 0002
Revises: 0001
Create Date: 2026-05-10
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

# Written out, not imported: a migration must keep meaning what it meant.
_SERIAL = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_GENESIS = "0" * 64


def _instant() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _hash(prev: str, ts: datetime, agent: str, trunk: str | None, kind: str, payload: str) -> str:
    # Same definition as monitor.journal_chain.event_hash (a test keeps them equal).
    aware = ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)
    body = json.dumps(
        [
            prev,
            aware.astimezone(UTC).isoformat(timespec="microseconds"),
            agent,
            trunk,
            kind,
            payload,
        ],
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def _audit_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("created_at", _instant(), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
    ]


def upgrade() -> None:
    with op.batch_alter_table("journal") as batch:
        batch.add_column(sa.Column("prev_hash", sa.String(64), nullable=True))
        batch.add_column(sa.Column("hash", sa.String(64), nullable=True))
    _backfill_chain()

    op.create_table(
        "audit_log",
        sa.Column("id", _SERIAL, primary_key=True, autoincrement=True),
        sa.Column("at", _instant(), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("entity", sa.String(32), nullable=False),
        sa.Column("entity_id", sa.String(200), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
    )
    op.create_index("ix_audit_log_entity", "audit_log", ["entity", "entity_id"])

    op.create_table(
        "maintenance_windows",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("services", sa.Text(), nullable=False),  # JSON list of names; ["*"] = all
        sa.Column("origin", sa.String(32), nullable=False),  # carrier, customer, vendor
        sa.Column("start_at", _instant(), nullable=False),  # first occurrence start
        sa.Column("end_at", _instant(), nullable=False),  # first occurrence end
        sa.Column("tz", sa.String(64), nullable=False),  # zone the RRULE repeats in
        sa.Column("rrule", sa.Text(), nullable=True),  # RFC 5545 §3.3.10 RECUR, None = one-off
        sa.Column("exdates", sa.Text(), nullable=False),  # JSON list of excluded starts (UTC)
        sa.Column("notice_ref", sa.Text(), nullable=False),
        sa.Column("ical_uid", sa.String(255), nullable=True),
        sa.Column("ical_sequence", sa.Integer(), nullable=True),
        *_audit_columns(),
        sa.Column("updated_at", _instant(), nullable=True),
        sa.Column("updated_by", sa.String(200), nullable=True),
        sa.Column("cancelled_at", _instant(), nullable=True),
        sa.Column("cancelled_by", sa.String(200), nullable=True),
        sa.Column("cancel_reason", sa.Text(), nullable=True),
    )
    op.create_index("ix_maintenance_windows_start", "maintenance_windows", ["start_at"])
    op.create_index("ix_maintenance_windows_ical_uid", "maintenance_windows", ["ical_uid"])

    op.create_table(
        "exclusions",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("outage_id", sa.String(200), nullable=False),
        sa.Column("service", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("reference", sa.Text(), nullable=False),
        *_audit_columns(),
        sa.Column("revoked_at", _instant(), nullable=True),
        sa.Column("revoked_by", sa.String(200), nullable=True),
        sa.Column("revoked_reason", sa.Text(), nullable=True),
    )
    op.create_index("ix_exclusions_outage", "exclusions", ["outage_id"])

    op.create_table(
        "manual_outages",
        sa.Column("id", sa.String(200), primary_key=True),
        sa.Column("service", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("first_failure_at", _instant(), nullable=False),
        sa.Column("ticket_opened_at", _instant(), nullable=True),
        sa.Column("carrier_ticket", sa.Text(), nullable=False),
        sa.Column("restored_at", _instant(), nullable=True),
        sa.Column("evidence_ref", sa.Text(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        *_audit_columns(),
        sa.Column("withdrawn_at", _instant(), nullable=True),
        sa.Column("withdrawn_by", sa.String(200), nullable=True),
        sa.Column("withdrawn_reason", sa.Text(), nullable=True),
    )
    op.create_index("ix_manual_outages_service", "manual_outages", ["service", "first_failure_at"])

    op.create_table(
        "ticket_corrections",
        sa.Column("id", _SERIAL, primary_key=True, autoincrement=True),
        sa.Column("outage_id", sa.String(200), nullable=False),
        sa.Column("field", sa.String(32), nullable=False),
        sa.Column("value", _instant(), nullable=False),
        sa.Column("previous", _instant(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("reference", sa.Text(), nullable=False),
        *_audit_columns(),
    )
    op.create_index("ix_ticket_corrections_outage", "ticket_corrections", ["outage_id"])


def _backfill_chain() -> None:
    """Chain the events journaled before this revision, per agent in seq order."""
    bind = op.get_bind()
    journal = sa.table(
        "journal",
        sa.column("seq", sa.Integer()),
        sa.column("ts", _instant()),
        sa.column("agent", sa.String()),
        sa.column("trunk", sa.String()),
        sa.column("kind", sa.String()),
        sa.column("payload", sa.Text()),
        sa.column("prev_hash", sa.String()),
        sa.column("hash", sa.String()),
    )
    rows = bind.execute(
        sa.select(
            journal.c.seq,
            journal.c.ts,
            journal.c.agent,
            journal.c.trunk,
            journal.c.kind,
            journal.c.payload,
        ).order_by(journal.c.agent, journal.c.seq)
    ).all()
    heads: dict[str, str] = {}
    for seq, ts, agent, trunk, kind, payload in rows:
        if isinstance(ts, str):  # SQLite through a plain column type: stored text
            ts = datetime.fromisoformat(ts)
        prev = heads.get(agent, _GENESIS)
        digest = _hash(prev, ts, agent, trunk, kind, payload)
        bind.execute(
            sa.update(journal).where(journal.c.seq == seq).values(prev_hash=prev, hash=digest)
        )
        heads[agent] = digest


def downgrade() -> None:
    op.drop_index("ix_ticket_corrections_outage", table_name="ticket_corrections")
    op.drop_table("ticket_corrections")
    op.drop_index("ix_manual_outages_service", table_name="manual_outages")
    op.drop_table("manual_outages")
    op.drop_index("ix_exclusions_outage", table_name="exclusions")
    op.drop_table("exclusions")
    op.drop_index("ix_maintenance_windows_ical_uid", table_name="maintenance_windows")
    op.drop_index("ix_maintenance_windows_start", table_name="maintenance_windows")
    op.drop_table("maintenance_windows")
    op.drop_index("ix_audit_log_entity", table_name="audit_log")
    op.drop_table("audit_log")
    with op.batch_alter_table("journal") as batch:
        batch.drop_column("hash")
        batch.drop_column("prev_hash")
