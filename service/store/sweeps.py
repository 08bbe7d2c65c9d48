"""Reconcile sweeps in the database: one ``sweeps`` row each, and its listing pages as rows of the work queue.

A sweep of a scope (``*`` for every rule, or one rule's name) stores its plan (the listings,
``service.enforcement.scoping.ScopePlan``) and starts with page 1 of every listing on the queue, each a
``page`` subject ``<sweep>:<listing>:<page>``. The worker that claims a page puts the next page of that
listing on the queue (``advance``), reconciles the page's users, and records the page (``record_page``) in
the transaction that completes its row. Lease, backoff, dead letters, ``SKIP LOCKED`` and resume after a
crash are the queue's; what the row adds is what operators read:

- ``state``: ``running`` until ``finished`` (every page recorded) or ``abandoned`` (``--restart``).
  ``active`` is 1 while running and NULL after, under a unique index: at most one sweep runs at a time,
  on SQLite and PostgreSQL alike, with no lock to renew.
- ``pages``: per listing, the next page put on the queue (0 once its last page was read), so a page read
  twice (a crash before its row was completed) never enqueues its successor twice.
- ``listed``, ``totals``, ``in_scope``, ``rule_counts``: the counts ``reconcile --wait`` and ``/metrics`` show.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from service.store.queue import enqueue
from service.store.subjects import PAGE, USER, Subject
from service.store.tables import Id, decisions, metadata, work

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
    sa.Column("plan", sa.JSON, nullable=True),
    sa.Column("active", sa.Integer, nullable=True),
    sa.Column("pages", sa.JSON, nullable=True),
    sa.Column("totals", sa.JSON, nullable=True),
    sa.Column("listed", sa.Integer, nullable=True),
    sa.Index("sweeps_scope_state", "scope", "state"),
    sa.Index("sweeps_one_running", "active", unique=True),
)
"""One row per sweep: its scope, plan, progress and counts; ``active`` keeps it the only one running."""


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
    owner: str | None
    in_scope: int
    rule_counts: dict[str, int]
    plan: dict[str, Any]
    pages: dict[str, int]
    totals: dict[str, int | None]
    listed: int

    @property
    def expected(self) -> int | None:
        """Users the listings hold (a user in two listings twice), once every listing's total is known."""
        if len(self.totals) < len(self.pages) or any(total is None for total in self.totals.values()):
            return None
        return max(self.listed, sum(total or 0 for total in self.totals.values()))


def _row(row: Any) -> SweepRow:
    return SweepRow(
        id=int(row.id),
        scope=row.scope,
        fingerprint=row.fingerprint,
        state=row.state,
        started_at=row.started_at,
        updated_at=row.updated_at,
        finished_at=row.finished_at,
        owner=row.owner,
        in_scope=int(row.in_scope or 0),
        rule_counts=dict(row.rule_counts or {}),
        plan=dict(row.plan or {"rules": [], "sources": []}),
        pages=dict(row.pages or {}),
        totals=dict(row.totals or {}),
        listed=int(row.listed or 0),
    )


class SweepRunningError(Exception):
    """Another sweep is running (``running`` is it); the caller decides what that means."""

    def __init__(self, running: SweepRow) -> None:
        self.running = running
        super().__init__(f"sweep {running.id} of {running.scope} is running")


def page_subject(sweep_id: int, listing: int, number: int) -> Subject:
    return Subject(PAGE, f"{sweep_id}:{listing}:{number}")


def page_of(subject: Subject) -> tuple[int, int, int]:
    """(sweep, listing, page) of a ``page`` subject."""
    sweep_id, listing, number = subject.id.split(":")
    return int(sweep_id), int(listing), int(number)


def _page_rows(sweep_ids: Iterable[int]) -> sa.ColumnElement[bool]:
    prefixes = [work.c.user_id.startswith(f"{sweep_id}:") for sweep_id in sweep_ids]
    return sa.and_(work.c.kind == PAGE, sa.or_(*prefixes))


def start_sweep(
    engine: sa.Engine,
    *,
    scope: str,
    plan: dict[str, Any],
    fingerprint: str,
    userpool_id: str,
    owner: str,
    now: float,
    restart: bool = False,
) -> tuple[SweepRow, bool]:
    """Start a sweep of ``scope`` (page 1 of every listing on the queue), or join the running one if it has
    the same scope and plan. Returns the sweep and whether it was joined (its dead pages are revived).

    ``restart`` abandons the running sweep first; ``SweepRunningError`` when another sweep is running.
    """
    with engine.begin() as connection:
        found = connection.execute(sa.select(sweeps).where(sweeps.c.active == 1)).first()
        running = None if found is None else _row(found)
        if running is not None and restart:
            _abandon(connection, running.id, now=now)
        elif running is not None and (running.scope, running.fingerprint) == (scope, fingerprint):
            _revive(connection, running, userpool_id, now=now)
            return running, True
        elif running is not None:
            raise SweepRunningError(running)
        listings = range(len(plan["sources"]))
        sweep_id = connection.execute(
            sa.insert(sweeps)
            .values(
                scope=scope,
                fingerprint=fingerprint,
                state="running" if listings else "finished",
                started_at=now,
                updated_at=now,
                finished_at=None if listings else now,
                owner=owner,
                in_scope=0,
                rule_counts={},
                plan=plan,
                active=1 if listings else None,
                pages={str(listing): 2 for listing in listings},
                totals={},
                listed=0,
            )
            .returning(sweeps.c.id)
        ).scalar_one()
        enqueue(
            connection,
            userpool_id,
            (page_subject(sweep_id, listing, 1) for listing in listings),
            reason=RECONCILE_REASON,
            now=now,
        )
        _prune(connection)
        row = connection.execute(sa.select(sweeps).where(sweeps.c.id == sweep_id)).one()
    return _row(row), False


def _abandon(connection: sa.Connection, sweep_id: int, *, now: float) -> None:
    connection.execute(sa.delete(work).where(_page_rows([sweep_id])))
    connection.execute(
        sa.update(sweeps).where(sweeps.c.id == sweep_id).values(state="abandoned", active=None, updated_at=now)
    )


def _revive(connection: sa.Connection, sweep: SweepRow, userpool_id: str, *, now: float) -> None:
    """Put the sweep's dead-lettered pages back on the queue with a fresh attempt budget."""
    dead = connection.execute(sa.select(work.c.user_id).where(_page_rows([sweep.id]), work.c.state == "dead"))
    subjects = [Subject(PAGE, str(subject_id)) for subject_id in dead.scalars()]
    enqueue(connection, userpool_id, subjects, reason=RECONCILE_REASON, now=now, reset=True)


def revive(engine: sa.Engine, sweep: SweepRow, userpool_id: str, *, now: float) -> None:
    with engine.begin() as connection:
        _revive(connection, sweep, userpool_id, now=now)


def load(connection: sa.Connection, sweep_id: int, *, lock: bool = False) -> SweepRow | None:
    """The sweep (locked for this transaction with ``lock``: PostgreSQL row lock; SQLite writes are serial)."""
    statement = sa.select(sweeps).where(sweeps.c.id == sweep_id)
    row = connection.execute(statement.with_for_update() if lock else statement).first()
    return None if row is None else _row(row)


def advance(
    connection: sa.Connection, sweep_id: int, listing: int, number: int, *, is_last: bool, userpool_id: str, now: float
) -> None:
    """Page ``number`` of ``listing`` was read: put the next one on the queue, once, unless it was the last."""
    sweep = load(connection, sweep_id, lock=True)
    if sweep is None or sweep.state != "running" or sweep.pages.get(str(listing)) != number + 1:
        return  # read before (a crash before its row was completed): its successor is on its way already
    pages = {**sweep.pages, str(listing): 0 if is_last else number + 2}
    connection.execute(sa.update(sweeps).where(sweeps.c.id == sweep_id).values(pages=pages, updated_at=now))
    if not is_last:
        following = [page_subject(sweep_id, listing, number + 1)]
        enqueue(connection, userpool_id, following, reason=RECONCILE_REASON, now=now)


def seen(connection: sa.Connection, sweep: SweepRow, user_ids: Sequence[str]) -> set[str]:
    """Of ``user_ids``, those this sweep handled already (through another listing): decided since it started,
    or waiting on the queue as a user it could not reconcile on its page."""
    if not user_ids:
        return set()
    decided = sa.select(decisions.c.user_id).where(
        decisions.c.user_id.in_(user_ids),
        decisions.c.decided_at >= sweep.started_at,
        decisions.c.trigger == RECONCILE_REASON,
    )
    queued = sa.select(work.c.user_id).where(
        work.c.kind == USER, work.c.user_id.in_(user_ids), work.c.reason == RECONCILE_REASON, work.c.state == "pending"
    )
    return {str(user_id) for user_id in connection.execute(sa.union(decided, queued)).scalars()}


def record_page(
    connection: sa.Connection,
    sweep_id: int,
    listing: int,
    *,
    total: int | None,
    listed: int,
    in_scope: int,
    rule_counts: dict[str, int],
    now: float,
) -> SweepRow | None:
    """Add a page's counts to the sweep, in the transaction that completed the page's row; the last page
    finishes the sweep. Returns the sweep if this page finished it."""
    sweep = load(connection, sweep_id, lock=True)
    if sweep is None or sweep.state != "running":
        return None
    counts = dict(sweep.rule_counts)
    for rule, count in rule_counts.items():
        counts[rule] = counts.get(rule, 0) + count
    values: dict[str, Any] = {
        "listed": sweep.listed + listed,
        "in_scope": sweep.in_scope + in_scope,
        "rule_counts": counts,
        "totals": {**sweep.totals, str(listing): total},
        "updated_at": now,
    }
    is_listed = all(page == 0 for page in sweep.pages.values())
    is_over = is_listed and not connection.execute(sa.select(work.c.id).where(_page_rows([sweep_id])).limit(1)).first()
    if is_over:
        values.update(state="finished", finished_at=now, active=None)
    connection.execute(sa.update(sweeps).where(sweeps.c.id == sweep_id).values(**values))
    return load(connection, sweep_id) if is_over else None


def get_sweep(engine: sa.Engine, sweep_id: int) -> SweepRow | None:
    with engine.connect() as connection:
        return load(connection, sweep_id)


def latest_sweep(engine: sa.Engine, scope: str | None = None, *, state: str | None = None) -> SweepRow | None:
    """The newest sweep (of ``scope``, in ``state``, if given)."""
    statement = sa.select(sweeps)
    if scope is not None:
        statement = statement.where(sweeps.c.scope == scope)
    if state is not None:
        statement = statement.where(sweeps.c.state == state)
    with engine.connect() as connection:
        row = connection.execute(statement.order_by(sweeps.c.id.desc()).limit(1)).first()
    return None if row is None else _row(row)


def _prune(connection: sa.Connection) -> None:
    """Keep the newest ``KEEP_SWEEPS`` sweeps that are over."""
    old = list(
        connection.execute(
            sa.select(sweeps.c.id).where(sweeps.c.state != "running").order_by(sweeps.c.id.desc()).offset(KEEP_SWEEPS)
        ).scalars()
    )
    if old:
        connection.execute(sa.delete(sweeps).where(sweeps.c.id.in_(old)))


def sweep_gauges(engine: sa.Engine) -> dict[str, float | None]:
    """For /metrics: when the last sweep finished, and how many users the one running now has handled."""
    with engine.connect() as connection:
        finished = connection.execute(
            sa.select(sa.func.max(sweeps.c.finished_at)).where(sweeps.c.state == "finished")
        ).scalar_one()
        running = connection.execute(sa.select(sweeps.c.in_scope).where(sweeps.c.active == 1)).scalar()
    return {
        "reconcile_last_success_timestamp_seconds": finished,
        "reconcile_progress_users": float(running or 0),
    }
