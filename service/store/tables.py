"""The schema. Times are UNIX seconds (float) so SQLite and PostgreSQL compare them the same way.

Nothing here holds a webhook payload: events keep ids and a digest
(docs/architecture.md, principle 3: "keep ids, not payloads").
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
    sa.Column("subjects_digest", sa.String(64), nullable=True),
    sa.Index("events_name", "event_name", "id"),
)
"""One row per accepted delivery: what it was about, never what it carried.

``digest`` is a keyed HMAC of the body (``service.store.keys``). ``subject_ids`` lists the subjects of a
delivery that names at most ``service.store.inbox.MAX_LISTED_SUBJECTS``; a longer list is kept as its count
(``subject_count``) and ``subjects_digest`` (SHA-256 of the JSON array the list would have been), and
``subject_ids`` is then empty.
"""

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
    sa.Column("priority", sa.Integer, nullable=False, server_default="1"),
    sa.UniqueConstraint("userpool_id", "kind", "user_id", name="work_subject_unique"),
    sa.Index("work_due", "state", "due_at"),
    sa.Index("work_claim", "state", "priority", "due_at"),
)
"""One row per (user pool, subject) that needs looking at; deliveries for a pending subject coalesce into it.

``kind`` is ``user`` for a user to reconcile, or ``department`` / ``group`` for a set of users that the worker
first expands into user rows (a moved department, a group granted a role): the webhook cannot list them.
``priority``: rows are claimed lowest first (``service.store.queue``): 0 for a delivery about one user, 1 for
everything else (lists, expansions, sweeps, replays).
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
    sa.Column("before", sa.JSON(none_as_null=True), nullable=True),
    sa.Column("after", sa.JSON(none_as_null=True), nullable=True),
    sa.Column("reason", sa.String(1000), nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("outcomes", sa.JSON, nullable=True),
    sa.Column("username", sa.String(128), nullable=True),
    sa.Column("email", sa.String(320), nullable=True),
    sa.Column("status", sa.String(32), nullable=True),
    sa.Column("not_effective", sa.JSON(none_as_null=True), nullable=True),
    sa.Column("policy_digest", sa.String(64), nullable=True),
    sa.Column("service_version", sa.String(50), nullable=True),
    sa.Column("changes", sa.JSON(none_as_null=True), nullable=True),
    sa.Index("decisions_user", "userpool_id", "user_id", "decided_at"),
    sa.Index("decisions_user_latest", "user_id", "id"),
)
"""Every evaluation: who, which rules, which factors before and after, what was done and why.

``before``/``after`` are NULL when the MFA data was not read (no rule matched, the user is removed) or its
state after a write is not known (``unknown``): "not read" is not "no factors". ``username``, ``email`` and
``status`` are the user as GenAuth showed them at that evaluation (None when it was not read): listings show
the name next to the id, and the report counts removed and inactive accounts apart. ``not_effective`` lists
the required factors GenAuth will not challenge the user for (factor, rules, app, why, fix); NULL: none.
``policy_digest`` (SHA-256 of the policy file) and ``service_version`` say which policy and which release of
the service made the decision; NULL in rows recorded before revision 0013 (and the digest when no policy was
read). ``changes`` is the exact diff a write made (entries added, statuses changed with their old value,
contacts filled, as keyed digests: never the phone or email), what ``revert`` undoes; NULL when nothing was
written, and in writes recorded before revision 0015 (which ``revert`` lists as not revertible).
"""

policy_snapshots = sa.Table(
    "policy_snapshots",
    metadata,
    sa.Column("name", sa.String(50), primary_key=True),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("source", sa.String(1000), nullable=False),
    sa.Column("loaded_at", sa.Float, nullable=False),
)
"""The last policy file that validated (one row): a process that starts while the file is bad uses it."""

deployment_keys = sa.Table(
    "deployment_keys",
    metadata,
    sa.Column("name", sa.String(50), primary_key=True),
    sa.Column("value", sa.String(128), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)
"""Random keys made once per database, such as the key of the body digests (``service.store.keys``)."""

health_probes = sa.Table(
    "health_probes",
    metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("written_at", sa.Float, nullable=False),
)
"""The row ``/readyz`` writes to prove that the database accepts a committed write."""

audit = sa.Table(
    "audit",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("at", sa.Float, nullable=False, index=True),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("action", sa.String(40), nullable=False),
    sa.Column("reason", sa.String(1000), nullable=False),
    sa.Column("scope", sa.JSON, nullable=False),
    sa.Column("counts", sa.JSON, nullable=False),
)
"""Append-only: one row per operator action or change of what the service enforces (``service.store.audit``).
Nothing updates or deletes it, retention included."""

webhook_log_reads = sa.Table(
    "webhook_log_reads",
    metadata,
    sa.Column("webhook_id", sa.String(64), primary_key=True),
    sa.Column("position", sa.Float, nullable=True),
    sa.Column("read_at", sa.Float, nullable=True),
    sa.Column("recovered", sa.Integer, nullable=False, server_default="0"),
    sa.Column("lease_until", sa.Float, nullable=True),
)
"""How far gap recovery has read GenAuth's delivery log of one webhook (``service.store.webhook_log``): the time
of the newest entry read (``position``), when the log was last read to the end, how many deliveries the last read
recovered, and the lease of the process reading it now. Nothing of the log itself."""
