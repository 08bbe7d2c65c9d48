"""Reconcile sweeps in the database: their progress (so a stopped sweep resumes), who was seen, and the lock.

``service.worker.sweeping`` drives these for ``mfa-enforcer reconcile`` and the worker's periodic sweep.

- ``sweeps``: one row per sweep of a scope (``*`` for every rule, or one rule's name), ``running`` until
  ``finished`` or ``abandoned`` (restarted, or the plan changed). A running sweep of the same scope and plan
  is resumed; a finished one never is.
- ``sweep_sources``: per listing (a department or the pool), the next page to read and the totals.
- ``sweep_members``: (sweep, user, rule) for users seen, so users in several listings are enqueued once and
  counted once, even across a resume. Dropped when the sweep ends; the counts stay on the sweep row.
- ``sweep_locks``: a named lock row with an owner and an expiry the holder renews, on SQLite and PostgreSQL
  alike. Each page is recorded, its new users enqueued and the lock renewed in ONE transaction, so a sweep
  that lost its lock cannot record anything more.

The tables live on ``service.store.tables.metadata``, so ``prepare_database`` creates them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from service.store.queue import enqueue
from service.store.tables import Id, metadata

SWEEP_LOCK = "reconcile"
ALL_RULES = "*"
KEEP_SWEEPS = 20
RECONCILE_REASON = "reconcile"

sweeps = sa.Table(
    "sweeps",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("scope", sa.String(100), nullable=False),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("state", sa.String(12), nullable=False),
    sa.Column("started_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("finished_at", sa.Float, nullable=True),
    sa.Column("owner", sa.String(100), nullable=True),
    sa.Column("in_scope", sa.Integer, nullable=True),
    sa.Column("rule_counts", sa.JSON, nullable=True),
    sa.Index("sweeps_scope_state", "scope", "state"),
)
"""One row per sweep: its scope, the plan it follows, and once finished how many users were in scope."""

sweep_sources = sa.Table(
    "sweep_sources",
    metadata,
    sa.Column("sweep_id", sa.BigInteger, nullable=False),
    sa.Column("source_key", sa.String(300), nullable=False),
    sa.Column("next_page", sa.Integer, nullable=False),
    sa.Column("total", sa.Integer, nullable=True),
    sa.Column("listed", sa.Integer, nullable=False),
    sa.Column("done", sa.Boolean, nullable=False),
    sa.PrimaryKeyConstraint("sweep_id", "source_key", name="sweep_sources_pk"),
)
"""Per listing of a sweep: the next page to read, GenAuth's total, users listed so far, whether it is done."""

sweep_members = sa.Table(
    "sweep_members",
    metadata,
    sa.Column("sweep_id", sa.BigInteger, nullable=False),
    sa.Column("user_id", sa.String(128), nullable=False),
    sa.Column("rule", sa.String(100), nullable=False),
    sa.PrimaryKeyConstraint("sweep_id", "user_id", "rule", name="sweep_members_pk"),
)
"""Who a running sweep has seen, per rule whose scope they are in."""

sweep_locks = sa.Table(
    "sweep_locks",
    metadata,
    sa.Column("name", sa.String(50), primary_key=True),
    sa.Column("owner", sa.String(100), nullable=False),
    sa.Column("acquired_at", sa.Float, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
)
"""At most one holder per name; a holder that stops renewing loses it at ``expires_at``."""


class SweepLockLostError(Exception):
    """Another process holds the sweep lock now (ours expired); this sweep must stop."""


@dataclass(frozen=True)
class LockHolder:
    owner: str
    acquired_at: float
    expires_at: float


@dataclass(frozen=True)
class Lease:
    """A held lock, renewed for ``ttl`` seconds with every page."""

    name: str
    owner: str
    ttl: float


def _insert(connection: sa.Connection, table: sa.Table) -> Any:
    return postgresql.insert(table) if connection.dialect.name == "postgresql" else sqlite.insert(table)


def acquire_lock(engine: sa.Engine, lease: Lease, *, now: float) -> LockHolder | None:
    """Take (or renew) the lock; None on success, else who holds it."""
    with engine.begin() as connection:
        # RETURNING, not rowcount: psycopg reports no row count for INSERT … ON CONFLICT DO NOTHING.
        inserted = connection.execute(
            _insert(connection, sweep_locks)
            .values(name=lease.name, owner=lease.owner, acquired_at=now, expires_at=now + lease.ttl)
            .on_conflict_do_nothing(index_elements=[sweep_locks.c.name])
            .returning(sweep_locks.c.name)
        ).first()
        if inserted is not None:
            return None
        taken = connection.execute(
            sa.update(sweep_locks)
            .where(
                sweep_locks.c.name == lease.name,
                sa.or_(sweep_locks.c.owner == lease.owner, sweep_locks.c.expires_at < now),
            )
            .values(
                owner=lease.owner,
                acquired_at=sa.case((sweep_locks.c.owner == lease.owner, sweep_locks.c.acquired_at), else_=now),
                expires_at=now + lease.ttl,
            )
        ).rowcount
        if taken:
            return None
        row = connection.execute(
            sa.select(sweep_locks.c.owner, sweep_locks.c.acquired_at, sweep_locks.c.expires_at).where(
                sweep_locks.c.name == lease.name
            )
        ).one()
        return LockHolder(owner=row.owner, acquired_at=row.acquired_at, expires_at=row.expires_at)


def renew_lock(connection: sa.Connection, lease: Lease, *, now: float) -> None:
    """Extend the lock inside the caller's transaction; ``SweepLockLostError`` if it is no longer ours."""
    renewed = connection.execute(
        sa.update(sweep_locks)
        .where(sweep_locks.c.name == lease.name, sweep_locks.c.owner == lease.owner)
        .values(expires_at=now + lease.ttl)
    ).rowcount
    if not renewed:
        raise SweepLockLostError(f"the {lease.name} lock is no longer held by {lease.owner}")


def release_lock(engine: sa.Engine, lease: Lease) -> None:
    """Give the lock up (no-op if it is not ours)."""
    with engine.begin() as connection:
        connection.execute(
            sa.delete(sweep_locks).where(sweep_locks.c.name == lease.name, sweep_locks.c.owner == lease.owner)
        )


@dataclass(frozen=True)
class SweepRow:
    """A sweep as stored."""

    id: int
    scope: str
    fingerprint: str
    state: str
    started_at: float
    updated_at: float
    finished_at: float | None
    in_scope: int | None
    rule_counts: dict[str, int] | None


def _sweep_row(row: Any) -> SweepRow:
    return SweepRow(
        id=int(row.id),
        scope=row.scope,
        fingerprint=row.fingerprint,
        state=row.state,
        started_at=row.started_at,
        updated_at=row.updated_at,
        finished_at=row.finished_at,
        in_scope=row.in_scope,
        rule_counts=row.rule_counts,
    )


@dataclass(frozen=True)
class SourceRow:
    """How far one listing of a sweep got."""

    next_page: int = 1
    total: int | None = None
    listed: int = 0
    done: bool = False


def record_page(
    engine: sa.Engine,
    sweep_id: int,
    *,
    lease: Lease,
    source_key: str,
    rules: Sequence[str],
    user_ids: Sequence[str],
    progress: SourceRow,
    userpool_id: str,
    now: float,
) -> list[str]:
    """Record one page in ONE transaction: renew the lock, mark the users seen for ``rules``, enqueue those the
    sweep had not seen, and store the listing's ``progress``. Returns the users enqueued, in page order.

    ``SweepLockLostError`` (and nothing recorded) when the lock is no longer ours.
    """
    unique = list(dict.fromkeys(user_ids))
    with engine.begin() as connection:
        renew_lock(connection, lease, now=now)
        seen: set[str] = set()
        if unique:
            seen = set(
                connection.execute(
                    sa.select(sweep_members.c.user_id)
                    .distinct()
                    .where(sweep_members.c.sweep_id == sweep_id, sweep_members.c.user_id.in_(unique))
                ).scalars()
            )
            rows = [{"sweep_id": sweep_id, "user_id": user_id, "rule": rule} for user_id in unique for rule in rules]
            if rows:
                connection.execute(_insert(connection, sweep_members).values(rows).on_conflict_do_nothing())
        new = [user_id for user_id in unique if user_id not in seen]
        enqueue(connection, userpool_id, new, reason=RECONCILE_REASON, now=now)
        connection.execute(
            sa.update(sweep_sources)
            .where(sweep_sources.c.sweep_id == sweep_id, sweep_sources.c.source_key == source_key)
            .values(next_page=progress.next_page, total=progress.total, listed=progress.listed, done=progress.done)
        )
        connection.execute(sa.update(sweeps).where(sweeps.c.id == sweep_id).values(updated_at=now))
    return new


def seen_count(engine: sa.Engine, sweep_id: int) -> int:
    """Distinct users the running sweep has seen."""
    statement = sa.select(sa.func.count(sa.distinct(sweep_members.c.user_id))).where(
        sweep_members.c.sweep_id == sweep_id
    )
    with engine.connect() as connection:
        return int(connection.execute(statement).scalar_one())


def rule_counts(engine: sa.Engine, sweep_id: int) -> dict[str, int]:
    """Distinct users the running sweep has seen, per rule."""
    statement = (
        sa.select(sweep_members.c.rule, sa.func.count())
        .where(sweep_members.c.sweep_id == sweep_id)
        .group_by(sweep_members.c.rule)
    )
    with engine.connect() as connection:
        return {rule: int(count) for rule, count in connection.execute(statement)}


def open_sweep(
    engine: sa.Engine,
    *,
    scope: str,
    fingerprint: str,
    source_keys: Sequence[str],
    owner: str,
    now: float,
    restart: bool = False,
) -> tuple[SweepRow, dict[str, SourceRow], bool]:
    """Resume the running sweep of ``scope`` that follows the same plan, or start a new one.

    Returns the sweep, its listings' progress and whether it was resumed. Other running sweeps of the scope
    (another plan, or ``restart``) are abandoned. The caller holds the sweep lock.
    """
    with engine.begin() as connection:
        running = [
            _sweep_row(row)
            for row in connection.execute(
                sa.select(sweeps).where(sweeps.c.scope == scope, sweeps.c.state == "running").order_by(sweeps.c.id)
            )
        ]
        resumable = next((row for row in reversed(running) if row.fingerprint == fingerprint), None)
        if restart:
            resumable = None
        stale = [row.id for row in running if resumable is None or row.id != resumable.id]
        if stale:
            connection.execute(
                sa.update(sweeps).where(sweeps.c.id.in_(stale)).values(state="abandoned", updated_at=now)
            )
            _drop_details(connection, stale)
        if resumable is not None:
            connection.execute(sa.update(sweeps).where(sweeps.c.id == resumable.id).values(owner=owner, updated_at=now))
            progress = {
                row.source_key: SourceRow(
                    next_page=row.next_page, total=row.total, listed=row.listed, done=bool(row.done)
                )
                for row in connection.execute(sa.select(sweep_sources).where(sweep_sources.c.sweep_id == resumable.id))
            }
            return resumable, progress, True
        sweep_id = connection.execute(
            sa.insert(sweeps)
            .values(scope=scope, fingerprint=fingerprint, state="running", started_at=now, updated_at=now, owner=owner)
            .returning(sweeps.c.id)
        ).scalar_one()
        if source_keys:
            connection.execute(
                sa.insert(sweep_sources).values(
                    [
                        {"sweep_id": sweep_id, "source_key": key, "next_page": 1, "listed": 0, "done": False}
                        for key in source_keys
                    ]
                )
            )
        _prune(connection)
        row = connection.execute(sa.select(sweeps).where(sweeps.c.id == sweep_id)).one()
    return _sweep_row(row), {key: SourceRow() for key in source_keys}, False


def finish_sweep(engine: sa.Engine, sweep_id: int, *, now: float) -> SweepRow:
    """Mark the sweep finished with its counts, and drop who-was-seen (a finished sweep is never resumed)."""
    counts = rule_counts(engine, sweep_id)
    in_scope = seen_count(engine, sweep_id)
    with engine.begin() as connection:
        connection.execute(
            sa.update(sweeps)
            .where(sweeps.c.id == sweep_id)
            .values(state="finished", finished_at=now, updated_at=now, in_scope=in_scope, rule_counts=counts)
        )
        connection.execute(sa.delete(sweep_members).where(sweep_members.c.sweep_id == sweep_id))
        row = connection.execute(sa.select(sweeps).where(sweeps.c.id == sweep_id)).one()
    return _sweep_row(row)


def latest_sweep(engine: sa.Engine, scope: str, *, state: str | None = None) -> SweepRow | None:
    """The newest sweep of ``scope`` (in ``state``, if given)."""
    statement = sa.select(sweeps).where(sweeps.c.scope == scope)
    if state is not None:
        statement = statement.where(sweeps.c.state == state)
    with engine.connect() as connection:
        row = connection.execute(statement.order_by(sweeps.c.id.desc()).limit(1)).first()
    return None if row is None else _sweep_row(row)


def _drop_details(connection: sa.Connection, sweep_ids: list[int]) -> None:
    connection.execute(sa.delete(sweep_members).where(sweep_members.c.sweep_id.in_(sweep_ids)))
    connection.execute(sa.delete(sweep_sources).where(sweep_sources.c.sweep_id.in_(sweep_ids)))


def _prune(connection: sa.Connection) -> None:
    """Keep the newest ``KEEP_SWEEPS`` sweeps that are over; older ones go with their details."""
    old = list(
        connection.execute(
            sa.select(sweeps.c.id).where(sweeps.c.state != "running").order_by(sweeps.c.id.desc()).offset(KEEP_SWEEPS)
        ).scalars()
    )
    if old:
        _drop_details(connection, old)
        connection.execute(sa.delete(sweeps).where(sweeps.c.id.in_(old)))


def sweep_gauges(engine: sa.Engine) -> dict[str, float | None]:
    """For /metrics: when the last sweep finished, and how many users the one running now has seen."""
    with engine.connect() as connection:
        finished = connection.execute(
            sa.select(sa.func.max(sweeps.c.finished_at)).where(sweeps.c.state == "finished")
        ).scalar_one()
        running = connection.execute(
            sa.select(sa.func.count(sa.distinct(sweep_members.c.user_id)))
            .select_from(sweep_members.join(sweeps, sweeps.c.id == sweep_members.c.sweep_id))
            .where(sweeps.c.state == "running")
        ).scalar_one()
    return {
        "reconcile_last_success_timestamp_seconds": finished,
        "reconcile_progress_users": float(running or 0),
    }
