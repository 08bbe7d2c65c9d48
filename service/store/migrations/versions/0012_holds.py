"""Brakes: the change budget's slots, held users and the pause switch (docs/operations.md, "Brakes").

``change_slots`` counts the users written in the budget's sliding window, for every process at once;
``holds`` keeps, per user, the change a write beyond the budget (or during a pause) would have made;
``brakes`` holds the pause switch and the row every budget check locks on PostgreSQL.

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "change_slots",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("taken_at", sa.Float, nullable=False, index=True),
        sa.Column("userpool_id", sa.String(64), nullable=False),
        sa.Column("user_id", sa.String(128), nullable=False),
    )
    op.create_table(
        "holds",
        sa.Column("userpool_id", sa.String(64), nullable=False),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("held_at", sa.Float, nullable=False),
        sa.Column("cause", sa.String(10), nullable=False),
        sa.Column("reason", sa.String(500), nullable=False),
        sa.Column("trigger", sa.String(100), nullable=False),
        sa.Column("rules", sa.JSON, nullable=False),
        sa.Column("plan", sa.JSON, nullable=False),
        sa.Column("username", sa.String(128), nullable=True),
        sa.Column("state", sa.String(10), nullable=False, server_default="held"),
        sa.Column("released_at", sa.Float, nullable=True),
        sa.Column("release_reason", sa.String(500), nullable=True),
        sa.PrimaryKeyConstraint("userpool_id", "user_id", name="holds_pk"),
        sa.Index("holds_state", "state", "held_at"),
    )
    op.create_table(
        "brakes",
        sa.Column("name", sa.String(20), primary_key=True),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("reason", sa.String(500), nullable=True),
        sa.Column("actor", sa.String(200), nullable=True),
        sa.Column("changed_at", sa.Float, nullable=False),
    )
    op.execute("INSERT INTO brakes (name, state, changed_at) VALUES ('budget', 'on', 0), ('pause', 'running', 0)")


def downgrade() -> None:
    op.drop_table("brakes")
    op.drop_table("holds")
    op.drop_table("change_slots")
