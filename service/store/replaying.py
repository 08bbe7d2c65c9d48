"""Dead letters and replay: what operators use after an outage or a bug.

``dead_letters`` lists parked rows; ``replay_targets`` picks users to put back on the queue (every dead letter,
named users, or every user named by a delivery received in a time range) and ``replay`` enqueues them through
the same upsert webhooks use, with a fresh attempt budget.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from service.store.queue import enqueue
from service.store.tables import events, work

REPLAY_REASON = "replay"


@dataclass(frozen=True)
class Target:
    """One user to reconcile again, and why they were picked."""

    userpool_id: str
    user_id: str
    source: str
    """``dead-letter``, ``user`` or ``event``."""


def dead_letters(engine: sa.Engine, *, limit: int = 1000) -> list[dict[str, Any]]:
    """Dead-lettered rows, oldest first."""
    statement = (
        sa.select(
            work.c.userpool_id,
            work.c.user_id,
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
        return [dict(row._mapping) for row in connection.execute(statement)]


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
    found: dict[tuple[str, str], Target] = {}

    def add(pool: str, user: str, source: str) -> None:
        found.setdefault((pool, user), Target(pool, user, source))

    with engine.connect() as connection:
        if all_dead or since is not None or until is not None:
            dead = sa.select(work.c.userpool_id, work.c.user_id).where(work.c.state == "dead")
            if since is not None:
                dead = dead.where(work.c.enqueued_at >= since)
            if until is not None:
                dead = dead.where(work.c.enqueued_at < until)
            for pool, user in connection.execute(dead.order_by(work.c.id)):
                add(pool, user, "dead-letter")
        if since is not None or until is not None:
            received = sa.select(events.c.userpool_id, events.c.subject_ids).where(events.c.subject_count > 0)
            if since is not None:
                received = received.where(events.c.received_at >= since)
            if until is not None:
                received = received.where(events.c.received_at < until)
            for pool, subjects in connection.execute(received.order_by(events.c.id)):
                for user in subjects or []:
                    add(pool, str(user), "event")
        for user in user_ids:
            known = connection.execute(sa.select(work.c.userpool_id).where(work.c.user_id == user)).first()
            add(known[0] if known else userpool_id, user, "user")
    return list(found.values())


def replay(engine: sa.Engine, targets: Iterable[Target], *, now: float) -> int:
    """Enqueue ``targets`` now with a fresh budget; returns how many users."""
    by_pool: dict[str, list[str]] = {}
    for target in targets:
        by_pool.setdefault(target.userpool_id, []).append(target.user_id)
    total = 0
    with engine.begin() as connection:
        for pool, users in by_pool.items():
            total += enqueue(connection, pool, users, reason=REPLAY_REASON, now=now, reset=True)
    return total
