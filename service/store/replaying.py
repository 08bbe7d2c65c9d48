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

from service.store.inbox import EXPANSION_KINDS
from service.store.queue import enqueue
from service.store.tables import events, work

REPLAY_REASON = "replay"


@dataclass(frozen=True)
class Target:
    """One subject to look at again (a user, or a department or group to expand), and why it was picked."""

    userpool_id: str
    user_id: str
    source: str
    """``dead-letter``, ``user`` or ``event``."""
    kind: str = "user"


# Deliveries whose subjects were removed from the pool: replaying them would only look for users who are gone.
REMOVAL_EVENTS = ("user:deleted", "user:archived")


def _subject(entry: str) -> tuple[str, str]:
    """An ``events.subject_ids`` entry as (kind, id): expansions are stored as ``department:<id>``."""
    for kind in EXPANSION_KINDS:
        if entry.startswith(f"{kind}:"):
            return kind, entry[len(kind) + 1 :]
    return "user", entry


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
    found: dict[tuple[str, str, str], Target] = {}

    def add(pool: str, user: str, source: str, kind: str = "user") -> None:
        found.setdefault((pool, kind, user), Target(pool, user, source, kind))

    with engine.connect() as connection:
        if all_dead or since is not None or until is not None:
            dead = sa.select(work.c.userpool_id, work.c.user_id, work.c.kind).where(work.c.state == "dead")
            if since is not None:
                dead = dead.where(work.c.enqueued_at >= since)
            if until is not None:
                dead = dead.where(work.c.enqueued_at < until)
            for pool, user, kind in connection.execute(dead.order_by(work.c.id)):
                add(pool, user, "dead-letter", kind)
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
                    kind, subject = _subject(str(entry))
                    add(pool, subject, "event", kind)
        for user in user_ids:
            known = connection.execute(
                sa.select(work.c.userpool_id).where(work.c.user_id == user, work.c.kind == "user")
            ).first()
            add(known[0] if known else userpool_id, user, "user")
    return list(found.values())


def replay(engine: sa.Engine, targets: Iterable[Target], *, now: float) -> int:
    """Enqueue ``targets`` now with a fresh budget; returns how many subjects."""
    grouped: dict[tuple[str, str], list[str]] = {}
    for target in targets:
        grouped.setdefault((target.userpool_id, target.kind), []).append(target.user_id)
    total = 0
    with engine.begin() as connection:
        for (pool, kind), subjects in grouped.items():
            total += enqueue(connection, pool, subjects, reason=REPLAY_REASON, now=now, reset=True, kind=kind)
    return total
