"""Rollout deadlines: when each user was first seen in scope of a rule with a rollout, the grace deadline fixed
then, and the deadline and state the latest decision found (``service.store.deadlines``).

Revision ID: 0016
Revises: 0015
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rollout_deadlines",
        sa.Column("userpool_id", sa.String(64), nullable=False),
        sa.Column("rule", sa.String(64), nullable=False),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("first_seen", sa.String(10), nullable=False),
        sa.Column("first_seen_at", sa.Float, nullable=False),
        sa.Column("grace_until", sa.String(10), nullable=True),
        sa.Column("deadline", sa.String(10), nullable=True),
        sa.Column("source", sa.String(200), nullable=True),
        sa.Column("state", sa.String(10), nullable=False, server_default="pending"),
        sa.Column("decided_at", sa.Float, nullable=True),
        sa.PrimaryKeyConstraint("userpool_id", "rule", "user_id", name="rollout_deadlines_pk"),
        sa.Index("rollout_deadlines_due", "state", "deadline"),
        sa.Index("rollout_deadlines_user", "user_id"),
    )


def downgrade() -> None:
    op.drop_table("rollout_deadlines")
