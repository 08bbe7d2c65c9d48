"""Decisions may record the factors before and after as "not read" (NULL): a user no rule matches, whose MFA
data was never read, a removed user, and a write whose outcome is not known yet.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("decisions") as decisions:
        decisions.alter_column("before", existing_type=sa.JSON, nullable=True)
        decisions.alter_column("after", existing_type=sa.JSON, nullable=True)


def downgrade() -> None:
    # "Not read" has no place in the old schema: it reads as "no factors" again.
    op.execute(sa.text('UPDATE decisions SET "before" = \'[]\' WHERE "before" IS NULL'))
    op.execute(sa.text('UPDATE decisions SET "after" = \'[]\' WHERE "after" IS NULL'))
    with op.batch_alter_table("decisions") as decisions:
        decisions.alter_column("before", existing_type=sa.JSON, nullable=False)
        decisions.alter_column("after", existing_type=sa.JSON, nullable=False)
