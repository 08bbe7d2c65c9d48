"""Decisions record who the user is to an admin (username, email) and their account status.

Listings (report users, dead letters, replay, the dry-run plan) show a name next to each id, ``replay --user``
and the admin API accept a username or email the service has seen, and the report leaves suspended accounts
out of its compliance figures (archived ones count as removed). Phone numbers are never stored. The index on
(user_id, id) lets the report find every user's latest decision, and the history of those still
non-compliant, without scanning the table once per user.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("decisions") as decisions:
        decisions.add_column(sa.Column("username", sa.String(128), nullable=True))
        decisions.add_column(sa.Column("email", sa.String(320), nullable=True))
        decisions.add_column(sa.Column("status", sa.String(32), nullable=True))
    op.create_index("decisions_user_latest", "decisions", ["user_id", "id"])


def downgrade() -> None:
    op.drop_index("decisions_user_latest", table_name="decisions")
    with op.batch_alter_table("decisions") as decisions:
        for column in ("status", "email", "username"):
            decisions.drop_column(column)
