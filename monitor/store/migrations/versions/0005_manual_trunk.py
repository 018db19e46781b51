"""Manual outages per trunk: a composed service (all/any) is corrected trunk by trunk.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    # batch: SQLite alters a table by copying it; NULL = a service-level manual outage.
    with op.batch_alter_table("manual_outages") as batch:
        batch.add_column(sa.Column("trunk", sa.String(200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("manual_outages") as batch:
        batch.drop_column("trunk")
