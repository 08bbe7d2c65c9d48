"""Gap recovery remembers how far it has read GenAuth's delivery log of each webhook (``webhook_log_reads``), so
each read starts where the last one stopped and two processes never read one log at once.

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "webhook_log_reads",
        sa.Column("webhook_id", sa.String(64), primary_key=True),
        sa.Column("position", sa.Float, nullable=True),
        sa.Column("read_at", sa.Float, nullable=True),
        sa.Column("recovered", sa.Integer, nullable=False, server_default="0"),
        sa.Column("lease_until", sa.Float, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("webhook_log_reads")
