"""Tickets: the durable outbox of ticket requests and the tickets they produced.

Revision ID: 0003
Revises: 0002
Create Date: 2026-05-11
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None

# Written out, not imported from monitor.tickets.ledger: a migration must keep meaning
# what it meant.
_SERIAL = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _instant() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "ticket_outbox",
        sa.Column("id", _SERIAL, primary_key=True, autoincrement=True),
        sa.Column("ticket_key", sa.String(64), nullable=False),
        sa.Column("sink", sa.String(200), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("idempotency_key", sa.String(64), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("created_at", _instant(), nullable=False),
        sa.Column("due_at", _instant(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_attempt_at", _instant(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("finished_at", _instant(), nullable=True),
    )
    op.create_index("ix_ticket_outbox_status_due", "ticket_outbox", ["status", "due_at"])
    op.create_index("ix_ticket_outbox_key_sink", "ticket_outbox", ["ticket_key", "sink"])
    op.create_index(
        "uq_ticket_outbox_idempotency", "ticket_outbox", ["idempotency_key"], unique=True
    )

    op.create_table(
        "tickets",
        sa.Column("outage_id", sa.String(36), primary_key=True),
        sa.Column("sink", sa.String(200), primary_key=True),
        sa.Column("ticket_key", sa.String(64), nullable=False),
        sa.Column("trunk", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("ref", sa.String(32), nullable=False),
        sa.Column("external_id", sa.String(200), nullable=True),
        sa.Column("number", sa.String(200), nullable=True),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("requested_at", _instant(), nullable=False),
        sa.Column("first_sent_at", _instant(), nullable=True),
        sa.Column("acknowledged_at", _instant(), nullable=True),
        sa.Column("sink_created_at", _instant(), nullable=True),
        sa.Column("number_captured_at", _instant(), nullable=True),
        sa.Column("resolved_at", _instant(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("data", sa.Text(), nullable=True),
    )
    op.create_index("ix_tickets_ticket_key", "tickets", ["ticket_key"])
    op.create_index("ix_tickets_requested_at", "tickets", ["requested_at"])


def downgrade() -> None:
    op.drop_index("ix_tickets_requested_at", table_name="tickets")
    op.drop_index("ix_tickets_ticket_key", table_name="tickets")
    op.drop_table("tickets")
    op.drop_index("uq_ticket_outbox_idempotency", table_name="ticket_outbox")
    op.drop_index("ix_ticket_outbox_key_sink", table_name="ticket_outbox")
    op.drop_index("ix_ticket_outbox_status_due", table_name="ticket_outbox")
    op.drop_table("ticket_outbox")
