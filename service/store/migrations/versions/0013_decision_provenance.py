"""Decisions record the digest of the policy file and the version of the service they were made under, so
"which policy made this change?" has an answer (``decisions.policy_digest``, ``decisions.service_version``).
Rows recorded before this revision keep NULL in both: nobody knows.

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("decisions") as decisions:
        decisions.add_column(sa.Column("policy_digest", sa.String(64), nullable=True))
        decisions.add_column(sa.Column("service_version", sa.String(50), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("decisions") as decisions:
        decisions.drop_column("service_version")
        decisions.drop_column("policy_digest")
