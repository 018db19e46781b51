"""Samples: OPTIONS results around each transition, and every test call's figures.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None

# Written out, not imported from monitor.store.schema: a migration must keep meaning
# what it meant.
_SERIAL = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _instant() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "probe_samples",
        sa.Column("id", _SERIAL, primary_key=True, autoincrement=True),
        sa.Column("agent", sa.String(200), nullable=False),
        sa.Column("trunk", sa.String(200), nullable=False),
        sa.Column("transition_kind", sa.String(32), nullable=False),
        sa.Column("transition_at", _instant(), nullable=False),
        sa.Column("at", _instant(), nullable=False),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("rtt_s", sa.Float(), nullable=True),
        sa.Column("status", sa.Integer(), nullable=True),
    )
    op.create_index("ix_probe_samples_trunk_at", "probe_samples", ["trunk", "at"])
    op.create_index("ix_probe_samples_at", "probe_samples", ["at"])

    op.create_table(
        "call_samples",
        sa.Column("id", _SERIAL, primary_key=True, autoincrement=True),
        sa.Column("agent", sa.String(200), nullable=False),
        sa.Column("trunk", sa.String(200), nullable=False),
        sa.Column("at", _instant(), nullable=False),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("mos", sa.Float(), nullable=True),
        sa.Column("rx_jitter_s", sa.Float(), nullable=True),
        sa.Column("tx_jitter_s", sa.Float(), nullable=True),
        sa.Column("loss_ratio", sa.Float(), nullable=True),
        sa.Column("burst_loss_ratio", sa.Float(), nullable=True),
        sa.Column("rtt_s", sa.Float(), nullable=True),
        sa.Column("one_way_latency_s", sa.Float(), nullable=True),
        sa.Column("violations", sa.Text(), nullable=False),
        sa.Column("profile", sa.String(200), nullable=True),
        sa.Column("limits", sa.Text(), nullable=False),
    )
    op.create_index("ix_call_samples_trunk_at", "call_samples", ["trunk", "at"])
    op.create_index("ix_call_samples_at", "call_samples", ["at"])


def downgrade() -> None:
    op.drop_index("ix_call_samples_at", table_name="call_samples")
    op.drop_index("ix_call_samples_trunk_at", table_name="call_samples")
    op.drop_table("call_samples")
    op.drop_index("ix_probe_samples_at", table_name="probe_samples")
    op.drop_index("ix_probe_samples_trunk_at", table_name="probe_samples")
    op.drop_table("probe_samples")
