"""Decisions record the required factors GenAuth will not challenge (``not_effective``), and the events table
gets an index on (event_name, id) so each process can find the latest ``application:mfa:*`` event with one
indexed read (``service.store.reporting.latest_event_id``).

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("decisions") as decisions:
        decisions.add_column(sa.Column("not_effective", sa.JSON(none_as_null=True), nullable=True))
    op.create_index("events_name", "events", ["event_name", "id"])


def downgrade() -> None:
    op.drop_index("events_name", table_name="events")
    with op.batch_alter_table("decisions") as decisions:
        decisions.drop_column("not_effective")
