"""A generation per pool that the intake moves when an event changes the organisation tree.

``organisation_changes`` (``service.store.organisation_changes``): one row per pool, bumped in the transaction
that records the event, read every few seconds by each process's cached tree so that every process loads it
again, not only the one that received the event.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "organisation_changes",
        sa.Column("userpool_id", sa.String(64), nullable=False),
        sa.Column("generation", sa.BigInteger, nullable=False),
        sa.Column("changed_at", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("userpool_id", name="organisation_changes_pk"),
    )


def downgrade() -> None:
    op.drop_table("organisation_changes")
