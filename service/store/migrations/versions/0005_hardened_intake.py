"""Hardened intake: queue priorities, long subject lists kept as a digest, the last good policy, digest keys
and the readiness write probe.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("work") as work:
        work.add_column(sa.Column("priority", sa.Integer, nullable=False, server_default="1"))
        work.create_index("work_claim", ["state", "priority", "due_at"])
    with op.batch_alter_table("events") as events:
        events.add_column(sa.Column("subjects_digest", sa.String(64), nullable=True))
    op.create_table(
        "policy_snapshots",
        sa.Column("name", sa.String(50), primary_key=True),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("source", sa.String(1000), nullable=False),
        sa.Column("loaded_at", sa.Float, nullable=False),
    )
    op.create_table(
        "deployment_keys",
        sa.Column("name", sa.String(50), primary_key=True),
        sa.Column("value", sa.String(128), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "health_probes",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("written_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("health_probes")
    op.drop_table("deployment_keys")
    op.drop_table("policy_snapshots")
    with op.batch_alter_table("events") as events:
        events.drop_column("subjects_digest")
    with op.batch_alter_table("work") as work:
        work.drop_index("work_claim")
        work.drop_column("priority")
