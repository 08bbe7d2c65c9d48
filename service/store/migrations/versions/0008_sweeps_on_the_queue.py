"""Sweeps on the work queue: their pages are work rows, so the lock, the listing progress and the members go.

A sweep's row now holds its plan, each listing's next page and the counts; ``active`` (1 while running, under a
unique index) keeps a second sweep from starting. A sweep still running when this runs loses its progress
(it lived in the dropped tables): it is marked abandoned, and the next ``reconcile`` starts over.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

COLUMNS = ("plan", "active", "pages", "totals", "listed")


def upgrade() -> None:
    op.execute("UPDATE sweeps SET state = 'abandoned' WHERE state = 'running'")
    for table in ("sweep_locks", "sweep_members", "sweep_sources"):
        op.drop_table(table)
    with op.batch_alter_table("sweeps") as sweeps:
        sweeps.add_column(sa.Column("plan", sa.JSON, nullable=True))
        sweeps.add_column(sa.Column("active", sa.Integer, nullable=True))
        sweeps.add_column(sa.Column("pages", sa.JSON, nullable=True))
        sweeps.add_column(sa.Column("totals", sa.JSON, nullable=True))
        sweeps.add_column(sa.Column("listed", sa.Integer, nullable=True))
    op.create_index("sweeps_one_running", "sweeps", ["active"], unique=True)


def downgrade() -> None:
    op.execute("DELETE FROM work WHERE kind = 'page'")
    op.execute("UPDATE sweeps SET state = 'abandoned' WHERE state = 'running'")
    op.drop_index("sweeps_one_running", table_name="sweeps")
    with op.batch_alter_table("sweeps") as sweeps:
        for column in reversed(COLUMNS):
            sweeps.drop_column(column)
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
