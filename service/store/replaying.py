"""Dead letters and replay: what operators use after an outage or a bug.

``dead_letters`` lists parked rows; ``replay_targets`` picks users to put back on the queue (every dead letter,
named users, or every user named by a delivery received in a time range) and ``replay`` enqueues them through
the same upsert webhooks use, with a fresh attempt budget, under the same user-pool key as everything else
about that user (``_pool_of``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from service.store.people import names_of
from service.store.queue import enqueue
from service.store.subjects import USER, Subject
from service.store.tables import decisions, events, work

REPLAY_REASON = "replay"


@dataclass(frozen=True)
class Target:
    """One subject to look at again (a user, or a department or group to expand), and why it was picked."""

    userpool_id: str
    subject: Subject
    source: str
    """``dead-letter``, ``user`` or ``event``."""


# Deliveries whose subjects were removed from the pool: replaying them would only look for users who are gone.
REMOVAL_EVENTS = ("user:deleted", "user:archived")


def dead_letters(engine: sa.Engine, *, limit: int = 1000) -> list[dict[str, Any]]:
    """Dead-lettered rows, oldest first, each with the user's recorded ``username`` and ``email`` (or None)."""
    statement = (
        sa.select(
            work.c.userpool_id,
            work.c.user_id,
            work.c.kind,
            work.c.reason,
            work.c.attempts,
            work.c.first_enqueued_at,
            work.c.enqueued_at,
            work.c.last_error,
        )
        .where(work.c.state == "dead")
        .order_by(work.c.first_enqueued_at)
        .limit(limit)
    )
    with engine.connect() as connection:
        rows = [dict(row._mapping) for row in connection.execute(statement)]
    names = names_of(engine, [row["user_id"] for row in rows if row["kind"] == USER])
    for row in rows:
        name = names.get(row["user_id"]) if row["kind"] == USER else None
        row["username"], row["email"] = (name.username, name.email) if name else (None, None)
    return rows


def replay_targets(
    engine: sa.Engine,
    *,
    all_dead: bool = False,
    user_ids: Iterable[str] = (),
    userpool_id: str = "",
    since: float | None = None,
    until: float | None = None,
) -> list[Target]:
    """The users a replay would enqueue, without duplicates."""
    found: dict[tuple[str, Subject], Target] = {}

    def add(pool: str, subject: Subject, source: str) -> None:
        found.setdefault((pool, subject), Target(pool, subject, source))

    with engine.connect() as connection:
        if all_dead or since is not None or until is not None:
            dead = sa.select(work.c.userpool_id, work.c.user_id, work.c.kind).where(work.c.state == "dead")
            if since is not None:
                dead = dead.where(work.c.enqueued_at >= since)
            if until is not None:
                dead = dead.where(work.c.enqueued_at < until)
            for pool, user, kind in connection.execute(dead.order_by(work.c.id)):
                add(pool, Subject(kind, user), "dead-letter")
        if since is not None or until is not None:
            received = sa.select(events.c.userpool_id, events.c.subject_ids).where(
                events.c.subject_count > 0, events.c.event_name.not_in(REMOVAL_EVENTS)
            )
            if since is not None:
                received = received.where(events.c.received_at >= since)
            if until is not None:
                received = received.where(events.c.received_at < until)
            for pool, subjects in connection.execute(received.order_by(events.c.id)):
                for entry in subjects or []:
                    add(pool, Subject.decode(str(entry)), "event")
        for user in user_ids:
            add(_pool_of(connection, user, default=userpool_id), Subject.user(user), "user")
    return list(found.values())


def _pool_of(connection: sa.Connection, user_id: str, *, default: str) -> str:
    """The user-pool key to enqueue ``user_id`` under: its existing work row's (so a dead row is the one
    revived), else that of its latest decision, else the deployment's key (``Settings.pool_key``). Enqueued
    under any other key, the user would get a second row and a second line in the report."""
    for statement in (
        sa.select(work.c.userpool_id).where(work.c.user_id == user_id, work.c.kind == USER).limit(1),
        sa.select(decisions.c.userpool_id)
        .where(decisions.c.user_id == user_id)
        .order_by(decisions.c.id.desc())
        .limit(1),
    ):
        row = connection.execute(statement).first()
        if row is not None:
            return str(row[0])
    return default


def replay(engine: sa.Engine, targets: Iterable[Target], *, now: float) -> int:
    """Enqueue ``targets`` now with a fresh budget; returns how many subjects."""
    grouped: dict[str, list[Subject]] = {}
    for target in targets:
        grouped.setdefault(target.userpool_id, []).append(target.subject)
    with engine.begin() as connection:
        return sum(
            enqueue(connection, pool, subjects, reason=REPLAY_REASON, now=now, reset=True)
            for pool, subjects in grouped.items()
        )
