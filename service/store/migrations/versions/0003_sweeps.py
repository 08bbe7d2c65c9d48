"""Reconcile sweeps: their progress per listing, who they have seen, and the lock that keeps them single.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "sweeps",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("scope", sa.String(100), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("finished_at", sa.Float, nullable=True),
        sa.Column("owner", sa.String(100), nullable=True),
        sa.Column("in_scope", sa.Integer, nullable=True),
        sa.Column("rule_counts", sa.JSON, nullable=True),
    )
    op.create_index("sweeps_scope_state", "sweeps", ["scope", "state"])
    op.create_table(
        "sweep_sources",
        sa.Column("sweep_id", sa.BigInteger, nullable=False),
        sa.Column("source_key", sa.String(300), nullable=False),
        sa.Column("next_page", sa.Integer, nullable=False),
        sa.Column("total", sa.Integer, nullable=True),
        sa.Column("listed", sa.Integer, nullable=False),
        sa.Column("done", sa.Boolean, nullable=False),
        sa.PrimaryKeyConstraint("sweep_id", "source_key", name="sweep_sources_pk"),
    )
    op.create_table(
        "sweep_members",
        sa.Column("sweep_id", sa.BigInteger, nullable=False),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("rule", sa.String(100), nullable=False),
        sa.PrimaryKeyConstraint("sweep_id", "user_id", "rule", name="sweep_members_pk"),
    )
    op.create_table(
        "sweep_locks",
        sa.Column("name", sa.String(50), primary_key=True),
        sa.Column("owner", sa.String(100), nullable=False),
        sa.Column("acquired_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    for table in ("sweep_locks", "sweep_members", "sweep_sources", "sweeps"):
        op.drop_table(table)
