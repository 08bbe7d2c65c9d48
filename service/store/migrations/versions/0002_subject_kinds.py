"""Work rows name a kind of subject (user, department, group); decisions record when reconciling started.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("work") as work:
        work.add_column(sa.Column("kind", sa.String(12), nullable=False, server_default="user"))
        work.drop_constraint("work_user_unique", type_="unique")
        work.create_unique_constraint("work_subject_unique", ["userpool_id", "kind", "user_id"])
    with op.batch_alter_table("decisions") as decisions:
        decisions.add_column(sa.Column("started_at", sa.Float, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("decisions") as decisions:
        decisions.drop_column("started_at")
    op.execute("DELETE FROM work WHERE kind <> 'user'")
    with op.batch_alter_table("work") as work:
        work.drop_constraint("work_subject_unique", type_="unique")
        work.create_unique_constraint("work_user_unique", ["userpool_id", "user_id"])
        work.drop_column("kind")
