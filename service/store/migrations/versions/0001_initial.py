"""The first schema: events, work and decisions, as the first release created them.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("received_at", sa.Float, nullable=False),
        sa.Column("event_name", sa.String(100), nullable=False),
        sa.Column("userpool_id", sa.String(64), nullable=False),
        sa.Column("subject_ids", sa.JSON, nullable=False),
        sa.Column("subject_count", sa.Integer, nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("content_type", sa.String(60), nullable=False),
        sa.Column("outcome", sa.String(20), nullable=False),
    )
    op.create_index("ix_events_received_at", "events", ["received_at"])
    op.create_index("ix_events_digest", "events", ["digest"])
    op.create_table(
        "work",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("userpool_id", sa.String(64), nullable=False),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("state", sa.String(10), nullable=False, server_default="pending"),
        sa.Column("version", sa.Integer, nullable=False, server_default="1"),
        sa.Column("reason", sa.String(100), nullable=False),
        sa.Column("event_id", sa.BigInteger, nullable=True),
        sa.Column("first_enqueued_at", sa.Float, nullable=False),
        sa.Column("enqueued_at", sa.Float, nullable=False),
        sa.Column("due_at", sa.Float, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("leased_until", sa.Float, nullable=True),
        sa.Column("lease_owner", sa.String(100), nullable=True),
        sa.Column("last_error", sa.String(500), nullable=True),
        sa.UniqueConstraint("userpool_id", "user_id", name="work_user_unique"),
    )
    op.create_index("work_due", "work", ["state", "due_at"])
    op.create_table(
        "decisions",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("decided_at", sa.Float, nullable=False),
        sa.Column("userpool_id", sa.String(64), nullable=False),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("trigger", sa.String(100), nullable=False),
        sa.Column("mode", sa.String(10), nullable=False),
        sa.Column("action", sa.String(20), nullable=False),
        sa.Column("rules", sa.JSON, nullable=False),
        sa.Column("required", sa.JSON, nullable=False),
        sa.Column("before", sa.JSON, nullable=False),
        sa.Column("after", sa.JSON, nullable=False),
        sa.Column("reason", sa.String(1000), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
    )
    op.create_index("ix_decisions_decided_at", "decisions", ["decided_at"])
    op.create_index("decisions_user", "decisions", ["userpool_id", "user_id", "decided_at"])


def downgrade() -> None:
    op.drop_table("decisions")
    op.drop_table("work")
    op.drop_table("events")
