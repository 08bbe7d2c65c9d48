"""Rollout deadlines: per (user pool, rule, user), when the service first saw the user in the rule's scope, the
grace deadline fixed then, and the deadline and state the last decision found.

A rule with a rollout (``enforce_from``, ``waves``, ``grace``: ``service.policy.rollout``) writes nothing for
a user before their deadline. The grace part of it must not move: a user's row is inserted once, the first
time a rule with a rollout matches them (``first_seen``), and ``grace_until`` is set once, the first time the
rule has a grace period then (``sightings``). Later events, restarts and a user leaving scope and coming back
change neither; only an operator's ``reset`` (``mfa-enforcer rollout reset``, recorded in the audit trail)
deletes the row, so the next sighting starts afresh. Dates are ISO text (``2027-01-15``): they compare the
same on SQLite and PostgreSQL.

``deadline``, ``source`` and ``state`` say what the latest decision found (``note``): ``pending`` before the
deadline, ``reached`` from it on. Nothing else writes for a pending user, so something must bring them back
when the day comes without an event: the worker asks for the rows ``due`` (pending, deadline reached) and
queues them, and queues every pending row again when the policy changes (an edited date takes effect without
a restart; ``pending_users``). ``deadlines_between`` lists users' deadlines per rule between two days, for
notices ahead of a deadline.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from service.store import audit
from service.store.queue import enqueue
from service.store.subjects import Subject
from service.store.tables import metadata

rollout_deadlines = sa.Table(
    "rollout_deadlines",
    metadata,
    sa.Column("userpool_id", sa.String(64), nullable=False),
    sa.Column("rule", sa.String(64), nullable=False),
    sa.Column("user_id", sa.String(128), nullable=False),
    sa.Column("first_seen", sa.String(10), nullable=False),
    sa.Column("first_seen_at", sa.Float, nullable=False),
    sa.Column("grace_until", sa.String(10), nullable=True),
    sa.Column("deadline", sa.String(10), nullable=True),
    sa.Column("source", sa.String(200), nullable=True),
    sa.Column("state", sa.String(10), nullable=False, server_default="pending"),
    sa.Column("decided_at", sa.Float, nullable=True),
    sa.PrimaryKeyConstraint("userpool_id", "rule", "user_id", name="rollout_deadlines_pk"),
    sa.Index("rollout_deadlines_due", "state", "deadline"),
    sa.Index("rollout_deadlines_user", "user_id"),
)
"""One row per user a rule with a rollout has matched (see the module docstring)."""

PENDING = "pending"
"""Before the deadline: the rule writes nothing for the user yet."""
QUEUED = "queued"
"""The deadline came (or the policy changed): the user is on the queue to be decided again."""
REACHED = "reached"
"""The deadline has passed: the rule is enforced for the user."""
DUE_REASON = "rollout-due"
"""The work rows' reason (the decision's trigger) for a user whose deadline came."""
POLICY_REASON = "rollout-policy-changed"
"""The work rows' reason for a pending user queued again because the policy changed."""
ROLLOUT_RESET = "rollout-reset"
"""The audit action of ``reset``."""


@dataclass(frozen=True)
class Sighted:
    """What the store holds of a user under one rule."""

    first_seen: date
    grace_until: date | None


@dataclass(frozen=True)
class UserDeadline:
    """A user's deadline under one rule, as the latest decision found it."""

    userpool_id: str
    rule: str
    user_id: str
    deadline: date
    source: str
    state: str
    first_seen: date


def sightings(
    connection: sa.Connection,
    userpool_id: str,
    user_id: str,
    graces: Mapping[str, timedelta | None],
    *,
    today: date,
    now: float,
    record: bool = True,
) -> dict[str, Sighted]:
    """Per rule of ``graces`` (rule -> its grace period, None: none), what is stored of the user. ``record``:
    first insert the rows not there yet (first seen ``today``, grace deadline ``today + grace``) and set a
    grace deadline not set before; never change one that is. Without ``record`` (explain, dry runs), read only:
    a rule missing from the result has never seen the user."""
    if not graces:
        return {}
    if record:
        rows = [
            {
                "userpool_id": userpool_id,
                "rule": rule,
                "user_id": user_id,
                "first_seen": today.isoformat(),
                "first_seen_at": now,
                "grace_until": (today + grace).isoformat() if grace is not None else None,
                "state": PENDING,
            }
            for rule, grace in graces.items()
        ]
        insert = postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert
        connection.execute(insert(rollout_deadlines).on_conflict_do_nothing(), rows)
        for rule, grace in graces.items():
            if grace is not None:
                connection.execute(
                    sa.update(rollout_deadlines)
                    .where(_key(userpool_id, rule, user_id), rollout_deadlines.c.grace_until.is_(None))
                    .values(grace_until=(today + grace).isoformat())
                )
    found = connection.execute(
        sa.select(rollout_deadlines.c.rule, rollout_deadlines.c.first_seen, rollout_deadlines.c.grace_until).where(
            rollout_deadlines.c.user_id == user_id,
            rollout_deadlines.c.rule.in_(list(graces)),
            *((rollout_deadlines.c.userpool_id == userpool_id,) if record else ()),
        )
    )
    return {
        rule: Sighted(date.fromisoformat(first), date.fromisoformat(until) if until else None)
        for rule, first, until in found
    }


def note(
    connection: sa.Connection,
    userpool_id: str,
    user_id: str,
    found: Mapping[str, tuple[date, str, bool]],
    *,
    now: float,
) -> None:
    """Record what a decision found per rule: (deadline, where it came from, still pending)."""
    for rule, (deadline, source, pending) in found.items():
        connection.execute(
            sa.update(rollout_deadlines)
            .where(_key(userpool_id, rule, user_id))
            .values(
                deadline=deadline.isoformat(),
                source=source[:200],
                state=PENDING if pending else REACHED,
                decided_at=now,
            )
        )


def due(connection: sa.Connection, *, today: date) -> list[tuple[str, str]]:
    """The (user pool, user) of pending rows whose deadline is ``today`` or earlier, marked queued (the caller
    queues them in the same transaction)."""
    where = sa.and_(rollout_deadlines.c.state == PENDING, rollout_deadlines.c.deadline <= today.isoformat())
    return _take(connection, where)


def pending_users(connection: sa.Connection) -> list[tuple[str, str]]:
    """The (user pool, user) of every pending row, marked queued: the policy changed, so their dates may have."""
    return _take(connection, rollout_deadlines.c.state == PENDING)


def queue_due(engine: sa.Engine, *, today: date, now: float, every_pending: bool = False) -> int:
    """Queue the users whose deadline came (``every_pending``: every pending user); returns how many users."""
    with engine.begin() as connection:
        users = pending_users(connection) if every_pending else due(connection, today=today)
        pools: dict[str, list[Subject]] = {}
        for userpool_id, user_id in users:
            pools.setdefault(userpool_id, []).append(Subject.user(user_id))
        reason = POLICY_REASON if every_pending else DUE_REASON
        return sum(enqueue(connection, pool, subjects, reason=reason, now=now) for pool, subjects in pools.items())


def _take(connection: sa.Connection, where: sa.ColumnElement[bool]) -> list[tuple[str, str]]:
    rows = connection.execute(
        sa.update(rollout_deadlines)
        .where(where)
        .values(state=QUEUED)
        .returning(rollout_deadlines.c.userpool_id, rollout_deadlines.c.user_id)
    ).all()
    return sorted({(pool, user) for pool, user in rows})


def deadlines_between(
    engine: sa.Engine, start: date, end: date, *, rule: str | None = None, states: Iterable[str] | None = None
) -> list[UserDeadline]:
    """Users' deadlines per rule with ``start <= deadline < end``, ordered by deadline, rule and user; only
    ``rule`` when given, only rows in ``states`` when given (``PENDING``: not reached yet). What a deadline is
    and where it came from is what the user's latest decision found (``source``: ``enforce_from``,
    ``wave <name>``, ``grace 14d from first seen <date>``)."""
    query = sa.select(rollout_deadlines).where(
        rollout_deadlines.c.deadline >= start.isoformat(), rollout_deadlines.c.deadline < end.isoformat()
    )
    if rule is not None:
        query = query.where(rollout_deadlines.c.rule == rule)
    if states is not None:
        query = query.where(rollout_deadlines.c.state.in_(list(states)))
    query = query.order_by(rollout_deadlines.c.deadline, rollout_deadlines.c.rule, rollout_deadlines.c.user_id)
    with engine.connect() as connection:
        return [_deadline(row) for row in connection.execute(query)]


def of_user(engine: sa.Engine, user_id: str) -> list[UserDeadline]:
    """Every row of one user (any pool), by rule."""
    query = (
        sa.select(rollout_deadlines).where(rollout_deadlines.c.user_id == user_id).order_by(rollout_deadlines.c.rule)
    )
    with engine.connect() as connection:
        return [_deadline(row) for row in connection.execute(query) if row.deadline is not None]


def reset(engine: sa.Engine, *, rule: str, user_id: str, reason: str, actor: str, now: float) -> bool:
    """Forget the user's first sighting under ``rule`` (every pool), so the next decision starts their grace
    afresh, queue them, and record it in the audit trail, in one transaction. False when there was none."""
    with engine.begin() as connection:
        rows = connection.execute(
            sa.delete(rollout_deadlines)
            .where(rollout_deadlines.c.rule == rule, rollout_deadlines.c.user_id == user_id)
            .returning(rollout_deadlines.c.userpool_id, rollout_deadlines.c.first_seen, rollout_deadlines.c.grace_until)
        ).all()
        if not rows:
            return False
        for pool in {row.userpool_id for row in rows}:
            enqueue(connection, pool, [Subject.user(user_id)], reason=ROLLOUT_RESET, now=now)
        scope: dict[str, Any] = {
            "rule": rule,
            "user_id": user_id,
            "first_seen": rows[0].first_seen,
            "grace_until": rows[0].grace_until,
        }
        entry = audit.record(
            connection, ROLLOUT_RESET, reason=reason, actor=actor, scope=scope, counts={"users": 1}, at=now, log=False
        )
    audit.log_record(entry)
    return True


def _key(userpool_id: str, rule: str, user_id: str) -> sa.ColumnElement[bool]:
    return sa.and_(
        rollout_deadlines.c.userpool_id == userpool_id,
        rollout_deadlines.c.rule == rule,
        rollout_deadlines.c.user_id == user_id,
    )


def _deadline(row: Any) -> UserDeadline:
    return UserDeadline(
        userpool_id=row.userpool_id,
        rule=row.rule,
        user_id=row.user_id,
        deadline=date.fromisoformat(row.deadline),
        source=row.source or "",
        state=row.state,
        first_seen=date.fromisoformat(row.first_seen),
    )
