"""Revert: each write's decision records exactly what it changed (``decisions.changes``), and
``reverted_writes`` records which writes an operator's ``revert`` claimed and how each ended. Writes recorded
before this revision have no ``changes`` and cannot be reverted (``revert`` lists them as such).

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("decisions") as decisions:
        decisions.add_column(sa.Column("changes", sa.JSON(none_as_null=True), nullable=True))
    op.create_table(
        "reverted_writes",
        sa.Column("decision_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("userpool_id", sa.String(64), nullable=False),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("requested_at", sa.Float, nullable=False),
        sa.Column("reason", sa.String(500), nullable=False),
        sa.Column("state", sa.String(10), nullable=False, server_default="pending"),
        sa.Column("finished_at", sa.Float, nullable=True),
        sa.Column("left_alone", sa.JSON(none_as_null=True), nullable=True),
    )
    op.create_index("reverted_writes_user", "reverted_writes", ["userpool_id", "user_id", "state"])


def downgrade() -> None:
    op.drop_index("reverted_writes_user", table_name="reverted_writes")
    op.drop_table("reverted_writes")
    with op.batch_alter_table("decisions") as decisions:
        decisions.drop_column("changes")
