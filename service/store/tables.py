"""The schema. Times are UNIX seconds (float) so SQLite and PostgreSQL compare them the same way.

Nothing here holds a webhook payload: events keep ids and a digest
(ARCHITECTURE.md, "keep ids, not payloads").
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

# SQLite only autoincrements INTEGER PRIMARY KEY; PostgreSQL gets a 64-bit identity.
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

events = sa.Table(
    "events",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("received_at", sa.Float, nullable=False, index=True),
    sa.Column("event_name", sa.String(100), nullable=False),
    sa.Column("userpool_id", sa.String(64), nullable=False),
    sa.Column("subject_ids", sa.JSON, nullable=False),
    sa.Column("subject_count", sa.Integer, nullable=False),
    sa.Column("digest", sa.String(64), nullable=False, index=True),
    sa.Column("content_type", sa.String(60), nullable=False),
    sa.Column("outcome", sa.String(20), nullable=False),
)
"""One row per accepted delivery: what it was about, never what it carried."""

work = sa.Table(
    "work",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("userpool_id", sa.String(64), nullable=False),
    sa.Column("user_id", sa.String(128), nullable=False),
    sa.Column("kind", sa.String(12), nullable=False, server_default="user"),
    sa.Column("state", sa.String(10), nullable=False, server_default="pending"),
    sa.Column("version", sa.Integer, nullable=False, server_default="1"),
    sa.Column("reason", sa.String(100), nullable=False),
    sa.Column("event_id", sa.BigInteger, nullable=True),
    sa.Column("first_enqueued_at", sa.Float, nullable=False),
    sa.Column("enqueued_at", sa.Float, nullable=False),
    sa.Column("due_at", sa.Float, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("leased_until", sa.Float, nullable=True),
    sa.Column("lease_owner", sa.String(100), nullable=True),
    sa.Column("last_error", sa.String(500), nullable=True),
    sa.UniqueConstraint("userpool_id", "kind", "user_id", name="work_subject_unique"),
    sa.Index("work_due", "state", "due_at"),
)
"""One row per (user pool, subject) that needs looking at; deliveries for a pending subject coalesce into it.

``kind`` is ``user`` for a user to reconcile, or ``department`` / ``group`` for a set of users that the worker
first expands into user rows (a moved department, a group granted a role): the webhook cannot list them.
"""

decisions = sa.Table(
    "decisions",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("decided_at", sa.Float, nullable=False, index=True),
    sa.Column("started_at", sa.Float, nullable=True),
    sa.Column("userpool_id", sa.String(64), nullable=False),
    sa.Column("user_id", sa.String(128), nullable=False),
    sa.Column("trigger", sa.String(100), nullable=False),
    sa.Column("mode", sa.String(10), nullable=False),
    sa.Column("action", sa.String(20), nullable=False),
    sa.Column("rules", sa.JSON, nullable=False),
    sa.Column("required", sa.JSON, nullable=False),
    sa.Column("before", sa.JSON, nullable=False),
    sa.Column("after", sa.JSON, nullable=False),
    sa.Column("reason", sa.String(1000), nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("outcomes", sa.JSON, nullable=True),
    sa.Index("decisions_user", "userpool_id", "user_id", "decided_at"),
)
"""Every evaluation: who, which rules, which factors before and after, what was done and why."""
