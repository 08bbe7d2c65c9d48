"""The work queue: one row per (user pool, user), claimed under a lease.

Enqueueing upserts, so a user touched many times while pending is reconciled once. Each enqueue bumps the
row's ``version``; a worker that finishes a job deletes the row only if the version is the one it claimed, and
otherwise makes it due again at once, so a change that arrived mid-reconcile is never lost. Claims take rows
whose due time has come and whose lease is free or expired; PostgreSQL uses ``FOR UPDATE SKIP LOCKED`` so any
number of workers never take the same user, SQLite serialises writers with ``BEGIN IMMEDIATE``.

Claims take the lowest ``priority`` first, then the earliest due: a delivery about one user (a login) is
``PRIORITY_EVENT`` and never waits behind bulk work (``PRIORITY_BULK``: the users of a list event, department
and group expansions, sweeps, replays), however much of it is queued. A row keeps the best priority anything
enqueued it with while it waits.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from service.store.driver import driver_cursor, driver_sql
from service.store.subjects import Subject
from service.store.tables import work
from service.store.wakeup import NOTIFY_SQL

ERROR_MAX = 500
PRIORITY_EVENT = 0
"""A real event about one user: claimed before anything else."""
PRIORITY_BULK = 1
"""Everything else: all that ``enqueue`` adds (sweeps, replays, expansions)."""


@dataclass(frozen=True)
class Job:
    """A claimed work row."""

    id: int
    userpool_id: str
    subject: Subject
    version: int
    attempts: int
    reason: str
    first_enqueued_at: float


# The upsert in SQL that SQLite (3.24+) and PostgreSQL both speak, run as plain driver SQL: built with the
# dialects' insert().on_conflict_do_update() it could not be cached and cost most of a delivery's CPU
# (docs/benchmarks.md). A dead row (or any row, on replay) starts over; a waiting row keeps its
# place in line (the earlier due time), so a user with a stream of events is not pushed back forever; a row in
# retry backoff keeps its backoff; every enqueue bumps the version so a worker holding the row looks again.
_UPSERT_SQL = """
INSERT INTO work (userpool_id, user_id, kind, state, version, reason, event_id, first_enqueued_at, enqueued_at,
                  due_at, attempts, priority)
VALUES (:userpool_id, :user_id, :kind, 'pending', 1, :reason, :event_id, :now, :now, :now, 0, :priority)
ON CONFLICT (userpool_id, kind, user_id) DO UPDATE SET
    version = work.version + 1,
    priority = CASE WHEN excluded.priority < work.priority THEN excluded.priority ELSE work.priority END,
    reason = excluded.reason,
    event_id = excluded.event_id,
    enqueued_at = excluded.enqueued_at,
    first_enqueued_at = CASE WHEN {revived} THEN excluded.first_enqueued_at ELSE work.first_enqueued_at END,
    attempts = CASE WHEN {revived} THEN 0 ELSE work.attempts END,
    due_at = CASE WHEN {revived} THEN excluded.due_at
                  WHEN work.attempts = 0 AND work.due_at < excluded.due_at THEN work.due_at
                  WHEN work.attempts = 0 THEN excluded.due_at
                  ELSE work.due_at END,
    state = 'pending'
"""
_UPSERT_PLAIN_SQL = _UPSERT_SQL.format(revived="work.state = 'dead'")
_UPSERT_RESET_SQL = _UPSERT_SQL.format(revived="1 = 1")


def enqueue(
    connection: sa.Connection,
    userpool_id: str,
    subjects: Iterable[Subject],
    *,
    reason: str,
    now: float,
    reset: bool = False,
) -> int:
    """Put subjects on the queue (or refresh their pending row) as bulk work; returns how many distinct ones.

    ``reset`` (replay) also makes a row in retry backoff due now with a fresh attempt budget.
    """
    rows = [work_row(userpool_id, subject, reason=reason, now=now) for subject in dict.fromkeys(subjects)]
    upsert_work(connection, rows, reset=reset)
    return len(rows)


def work_row(
    userpool_id: str,
    subject: Subject,
    *,
    reason: str,
    now: float,
    event_id: int | None = None,
    priority: int = PRIORITY_BULK,
) -> dict[str, object]:
    """The SQL parameters of one subject's upsert (see ``upsert_work``); a delivery's carry its event id."""
    return {
        "userpool_id": userpool_id,
        "user_id": subject.id,
        "kind": subject.kind,
        "reason": reason,
        "event_id": event_id,
        "now": now,
        "priority": priority,
    }


def upsert_work(connection: sa.Connection, rows: Sequence[dict[str, object]], *, reset: bool = False) -> None:
    """Upsert work rows built by ``work_row``, in order (one statement, executed once per row, on the driver's
    cursor: this runs for every webhook, see ``service.store.driver``). On PostgreSQL the same round trip sends the
    NOTIFY that wakes the workers when this transaction commits (``service.store.wakeup``)."""
    if not rows:
        return
    sql = driver_sql(_UPSERT_RESET_SQL if reset else _UPSERT_PLAIN_SQL, connection.dialect.name)
    with driver_cursor(connection) as cursor:
        if connection.dialect.name != "postgresql":
            cursor.executemany(sql, rows)
            return
        with cursor.connection.pipeline():
            cursor.executemany(sql, rows)
            cursor.execute(NOTIFY_SQL)


_CLAIMED = ("id", "userpool_id", "kind", "user_id", "version", "attempts", "reason", "first_enqueued_at")
"""The columns a claim returns, in the order ``Job`` takes them (``kind`` and ``user_id`` make its subject)."""


def claim(engine: sa.Engine, *, owner: str, limit: int, lease_seconds: float, now: float) -> list[Job]:
    """Lease up to ``limit`` due rows to ``owner``, lowest priority first; each claim counts as an attempt."""
    candidates = (
        sa.select(work.c.id)
        .where(
            work.c.state == "pending",
            work.c.due_at <= now,
            sa.or_(work.c.leased_until.is_(None), work.c.leased_until < now),
        )
        .order_by(work.c.priority, work.c.due_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    statement = (
        sa.update(work)
        .where(work.c.id.in_(candidates.scalar_subquery()))
        .values(leased_until=now + lease_seconds, lease_owner=owner, attempts=work.c.attempts + 1)
        .returning(*(work.c[name] for name in _CLAIMED))
    )
    with engine.begin() as connection:
        rows = connection.execute(statement).all()
    jobs = (Job(row_id, pool, Subject(kind, subject_id), *rest) for row_id, pool, kind, subject_id, *rest in rows)
    return sorted(jobs, key=lambda job: job.id)


def complete(connection: sa.Connection, job: Job, *, owner: str, now: float) -> bool:
    """Finish a job: delete its row, or, if it was enqueued again meanwhile, make it due now.

    Returns True when the row was deleted.
    """
    deleted = connection.execute(
        sa.delete(work).where(work.c.id == job.id, work.c.version == job.version, work.c.lease_owner == owner)
    ).rowcount
    if deleted:
        return True
    connection.execute(_unleased(job, owner, attempts=0, due_at=now, last_error=None))
    return False


def renew_lease(engine: sa.Engine, job: Job, *, owner: str, lease_seconds: float, now: float) -> bool:
    """Extend the lease of a job still being worked on; False when the row is no longer this owner's."""
    with engine.begin() as connection:
        renewed = connection.execute(
            sa.update(work)
            .where(work.c.id == job.id, work.c.lease_owner == owner)
            .values(leased_until=now + lease_seconds)
        ).rowcount
    return bool(renewed)


def retry_later(connection: sa.Connection, job: Job, *, owner: str, due_at: float, error: str) -> None:
    """Release a job to be tried again at ``due_at``."""
    connection.execute(_unleased(job, owner, due_at=due_at, last_error=error[:ERROR_MAX]))


def dead_letter(connection: sa.Connection, job: Job, *, owner: str, error: str, now: float) -> bool:
    """Park a job that ran out of attempts; it stays visible and can be replayed.

    If a delivery for the subject arrived during this last attempt, the row starts over instead (due now,
    fresh budget), as a new delivery for a dead row would. Returns True when the row was parked.
    """
    parked = connection.execute(
        sa.update(work)
        .where(work.c.id == job.id, work.c.lease_owner == owner, work.c.version == job.version)
        .values(state="dead", leased_until=None, lease_owner=None, last_error=error[:ERROR_MAX])
    ).rowcount
    if not parked:
        fresh = {"attempts": 0, "due_at": now, "first_enqueued_at": now, "last_error": error[:ERROR_MAX]}
        connection.execute(_unleased(job, owner, **fresh))
    return bool(parked)


def _unleased(job: Job, owner: str, **values: object) -> sa.Update:
    """The update that frees the job's row of its lease and sets ``values``, if ``owner`` still holds it."""
    update = sa.update(work).where(work.c.id == job.id, work.c.lease_owner == owner)
    return update.values(leased_until=None, lease_owner=None, **values)


def release(engine: sa.Engine, jobs: Iterable[Job], *, owner: str, now: float) -> None:
    """Give back jobs a stopping worker did not start, without counting the attempt."""
    ids = [job.id for job in jobs]
    if not ids:
        return
    with engine.begin() as connection:
        connection.execute(
            sa.update(work)
            .where(work.c.id.in_(ids), work.c.lease_owner == owner)
            .values(
                leased_until=None,
                lease_owner=None,
                due_at=now,
                attempts=sa.case((work.c.attempts > 0, work.c.attempts - 1), else_=0),
            )
        )


@dataclass(frozen=True)
class QueueStats:
    """How much work is waiting."""

    pending: int
    leased: int
    dead: int
    oldest_due_at: float | None


def queue_stats(engine: sa.Engine, *, now: float) -> QueueStats:
    is_leased = sa.and_(work.c.leased_until.is_not(None), work.c.leased_until >= now)
    statement = sa.select(
        sa.func.count().filter(sa.and_(work.c.state == "pending", sa.not_(is_leased))),
        sa.func.count().filter(sa.and_(work.c.state == "pending", is_leased)),
        sa.func.count().filter(work.c.state == "dead"),
        sa.func.min(work.c.due_at).filter(work.c.state == "pending"),
    )
    with engine.connect() as connection:
        pending, leased, dead, oldest = connection.execute(statement).one()
    return QueueStats(pending=pending, leased=leased, dead=dead, oldest_due_at=oldest)
