"""Test calls say where their RTT came from: `rtt_source` on call_samples ("rtp_echo": our
own RTP reflected by the far end; "rtcp": RTCP reports; NULL: no RTT).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("call_samples") as batch:
        batch.add_column(sa.Column("rtt_source", sa.String(32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("call_samples") as batch:
        batch.drop_column("rtt_source")
