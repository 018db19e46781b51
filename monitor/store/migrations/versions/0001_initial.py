"""Initial schema: journal, outages, monitor_gaps, heartbeats.

Revision ID: 0001
Revises:
Create Date: 2026-05-09
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

# Written out, not imported from schema.py: a migration must keep meaning what it meant.
_SERIAL = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _instant() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "journal",
        sa.Column("seq", _SERIAL, primary_key=True, autoincrement=True),
        sa.Column("ts", _instant(), nullable=False),
        sa.Column("agent", sa.String(200), nullable=False),
        sa.Column("trunk", sa.String(200), nullable=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
    )
    op.create_index("ix_journal_agent_seq", "journal", ["agent", "seq"])
    op.create_index("ix_journal_trunk_ts", "journal", ["trunk", "ts"])

    op.create_table(
        "outages",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("trunk", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("first_failure_at", _instant(), nullable=False),
        sa.Column("confirmed_at", _instant(), nullable=False),
        sa.Column("restored_at", _instant(), nullable=True),
        sa.Column("closed_at", _instant(), nullable=True),
        sa.Column("first_outcome", sa.String(32), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("agent", sa.String(200), nullable=False),
    )
    op.create_index("ix_outages_trunk_first_failure", "outages", ["trunk", "first_failure_at"])
    op.create_index("ix_outages_closed_at", "outages", ["closed_at"])

    op.create_table(
        "monitor_gaps",
        sa.Column("id", _SERIAL, primary_key=True, autoincrement=True),
        sa.Column("agent", sa.String(200), nullable=False),
        sa.Column("start_at", _instant(), nullable=False),
        sa.Column("end_at", _instant(), nullable=False),
        sa.Column("reason", sa.String(200), nullable=False),
    )
    op.create_index("ix_monitor_gaps_agent_start", "monitor_gaps", ["agent", "start_at"])

    op.create_table(
        "heartbeats",
        sa.Column("agent", sa.String(200), primary_key=True),
        sa.Column("last_seen_at", _instant(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("heartbeats")
    op.drop_index("ix_monitor_gaps_agent_start", table_name="monitor_gaps")
    op.drop_table("monitor_gaps")
    op.drop_index("ix_outages_closed_at", table_name="outages")
    op.drop_index("ix_outages_trunk_first_failure", table_name="outages")
    op.drop_table("outages")
    op.drop_index("ix_journal_trunk_ts", table_name="journal")
    op.drop_index("ix_journal_agent_seq", table_name="journal")
    op.drop_table("journal")
