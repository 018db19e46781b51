"""Several agents: each agent's site beside its heartbeat, and leases (leader election with
a fencing token) for the work one agent does for all (the ticket outbox).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("heartbeats") as batch:
        batch.add_column(sa.Column("site", sa.String(200), nullable=True))
    op.create_table(
        "leases",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("holder", sa.String(200), nullable=False),
        sa.Column("token", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "agent_outages",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("trunk", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("first_failure_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("restored_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("first_outcome", sa.String(32), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("agent", sa.String(200), nullable=False),
    )
    op.create_index(
        "ix_agent_outages_trunk_first_failure", "agent_outages", ["trunk", "first_failure_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_agent_outages_trunk_first_failure", table_name="agent_outages")
    op.drop_table("agent_outages")
    op.drop_table("leases")
    with op.batch_alter_table("heartbeats") as batch:
        batch.drop_column("site")
