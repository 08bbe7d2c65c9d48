"""The outbox: every notice (the admin digest, a user's notice) is a row before anything is sent, so a notice
survives restarts, is sent once, and a channel that is down costs a retry, never enforcement's time.

A row's ``key`` says what the notice is about (``user:<id>|<rule>|<kind>|<period>`` or
``admins|-|digest|<day>``, with the channel): adding a row whose key exists does nothing, so a notice is queued
once however often the service decides it is due. Sending claims rows under a lease, like the work queue
(``service.store.queue``): PostgreSQL takes them ``FOR UPDATE SKIP LOCKED`` and SQLite serialises writers, so
two processes sending at once never take the same row. A sent row keeps its ``sent_at`` (the record that the
person was told); a failed one keeps its attempts and last error and is due again after a backoff, and after
``MAX_ATTEMPTS`` it stays ``failed`` for the digest to report. A process killed between sending and marking
a row sent sends it again after the lease: at least once, never lost.

``fields`` holds only what a template may show: the user's name, the rule's description and factors, the
dates (or, for the digest, its sections). ``recipient`` is the address (or the channel's target).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from service.store.tables import Id, metadata

outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("key", sa.String(400), nullable=False, unique=True),
    sa.Column("kind", sa.String(30), nullable=False),
    sa.Column("channel", sa.String(10), nullable=False),
    sa.Column("recipient", sa.String(1000), nullable=False),
    sa.Column("fields", sa.JSON, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("due_at", sa.Float, nullable=False),
    sa.Column("state", sa.String(10), nullable=False, server_default="pending"),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_error", sa.String(500), nullable=True),
    sa.Column("leased_until", sa.Float, nullable=True),
    sa.Column("lease_owner", sa.String(100), nullable=True),
    sa.Column("sent_at", sa.Float, nullable=True),
    sa.Index("outbox_due", "state", "due_at"),
)
"""One row per notice and channel (made by migration 0015)."""

PENDING = "pending"
SENT = "sent"
FAILED = "failed"
EMAIL = "email"
WEBHOOK = "webhook"
MAX_ATTEMPTS = 12
"""Attempts before a notice is given up (``failed``); with the backoff below, about 16 hours of trying."""
BACKOFF_BASE = 60.0
BACKOFF_MAX = 4 * 3600.0
ERROR_MAX = 500


@dataclass(frozen=True)
class Notice:
    """A notice to queue: what it is about (``key``), how and to whom it goes, and what its template shows."""

    key: str
    kind: str
    channel: str
    recipient: str
    fields: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Claimed:
    """A notice leased for sending."""

    id: int
    key: str
    kind: str
    channel: str
    recipient: str
    fields: Mapping[str, Any]
    attempts: int


def add(connection: sa.Connection, notices: Iterable[Notice], *, now: float) -> int:
    """Queue the notices whose key is not in the outbox yet (due now); returns how many were new."""
    rows = [
        {
            "key": n.key[:400],
            "kind": n.kind,
            "channel": n.channel,
            "recipient": n.recipient[:1000],
            "fields": dict(n.fields),
            "created_at": now,
            "due_at": now,
            "state": PENDING,
            "attempts": 0,
        }
        for n in {n.key: n for n in notices}.values()
    ]
    if not rows:
        return 0
    insert = postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert
    added = 0
    for row in rows:  # one by one, each answering with its id when it was new (rowcount is not kept by every driver)
        statement = insert(outbox).values(**row).on_conflict_do_nothing(index_elements=["key"])
        added += len(connection.execute(statement.returning(outbox.c.id)).all())
    return added


def known_keys(connection: sa.Connection, keys: Iterable[str]) -> set[str]:
    """Which of ``keys`` are in the outbox already, in any state."""
    wanted = list(dict.fromkeys(keys))
    found: set[str] = set()
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        found.update(connection.execute(sa.select(outbox.c.key).where(outbox.c.key.in_(chunk))).scalars())
    return found


_CLAIMED = ("id", "key", "kind", "channel", "recipient", "fields", "attempts")


def claim(engine: sa.Engine, *, owner: str, limit: int, lease_seconds: float, now: float) -> list[Claimed]:
    """Lease up to ``limit`` due notices to ``owner``, oldest first; each claim counts as an attempt."""
    candidates = (
        sa.select(outbox.c.id)
        .where(
            outbox.c.state == PENDING,
            outbox.c.due_at <= now,
            sa.or_(outbox.c.leased_until.is_(None), outbox.c.leased_until < now),
        )
        .order_by(outbox.c.due_at, outbox.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    statement = (
        sa.update(outbox)
        .where(outbox.c.id.in_(candidates.scalar_subquery()))
        .values(leased_until=now + lease_seconds, lease_owner=owner, attempts=outbox.c.attempts + 1)
        .returning(*(outbox.c[name] for name in _CLAIMED))
    )
    with engine.begin() as connection:
        rows = connection.execute(statement).all()
    return sorted((Claimed(*row) for row in rows), key=lambda claimed: claimed.id)


def mark_sent(engine: sa.Engine, notice: Claimed, *, owner: str, now: float) -> bool:
    """The notice went out; False when this owner no longer held it."""
    with engine.begin() as connection:
        return bool(
            connection.execute(
                sa.update(outbox)
                .where(outbox.c.id == notice.id, outbox.c.lease_owner == owner)
                .values(state=SENT, sent_at=now, leased_until=None, lease_owner=None, last_error=None)
            ).rowcount
        )


def mark_failed(engine: sa.Engine, notice: Claimed, *, owner: str, error: str, due_at: float) -> str:
    """The notice could not be sent: due again at ``due_at``, or ``failed`` after ``MAX_ATTEMPTS``; returns the
    row's new state."""
    state = FAILED if notice.attempts >= MAX_ATTEMPTS else PENDING
    with engine.begin() as connection:
        connection.execute(
            sa.update(outbox)
            .where(outbox.c.id == notice.id, outbox.c.lease_owner == owner)
            .values(state=state, due_at=due_at, leased_until=None, lease_owner=None, last_error=error[:ERROR_MAX])
        )
    return state


def retry_delay(attempts: int) -> float:
    """Seconds before a notice that failed ``attempts`` times is tried again: doubling from a minute, at most
    four hours (a mail server down for the night is tried a few times, not hammered)."""
    return float(min(BACKOFF_MAX, BACKOFF_BASE * 2 ** max(0, attempts - 1)))


def due(engine: sa.Engine, *, now: float, limit: int = 1000) -> list[dict[str, Any]]:
    """The pending notices due now, oldest first (what ``notify --dry-run`` shows besides the new ones)."""
    statement = (
        sa.select(outbox.c.key, outbox.c.kind, outbox.c.channel, outbox.c.recipient, outbox.c.attempts)
        .where(outbox.c.state == PENDING, outbox.c.due_at <= now)
        .order_by(outbox.c.due_at, outbox.c.id)
        .limit(limit)
    )
    with engine.connect() as connection:
        return [dict(row._mapping) for row in connection.execute(statement)]


def unsent(engine: sa.Engine, *, limit: int = 20) -> tuple[int, list[dict[str, Any]]]:
    """Notices that failed at least once and are not sent (waiting for a retry, or given up): how many, and the
    latest few with their channel, attempts and last error (the digest's "not sent" section)."""
    trouble = sa.and_(outbox.c.state != SENT, outbox.c.last_error.is_not(None))
    with engine.connect() as connection:
        count = connection.execute(sa.select(sa.func.count()).where(trouble)).scalar_one()
        rows = connection.execute(
            sa.select(outbox.c.kind, outbox.c.channel, outbox.c.state, outbox.c.attempts, outbox.c.last_error)
            .where(trouble)
            .order_by(outbox.c.id.desc())
            .limit(limit)
        ).all()
    return int(count), [dict(row._mapping) for row in rows]


def rows(engine: sa.Engine, *, keys: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Every row (or those with ``keys``), by id: what tests and ``notify`` report on."""
    statement = sa.select(outbox).order_by(outbox.c.id)
    if keys is not None:
        statement = statement.where(outbox.c.key.in_(list(keys)))
    with engine.connect() as connection:
        return [dict(row._mapping) for row in connection.execute(statement)]
