"""Held users: the writes the change budget or a pause stopped, with the change each would have made
(docs/operations.md, "Brakes").

One row per user (the latest plan wins): its rules, the factors before and the ones the write would add, the
per-rule outcomes, never a payload or a contact. ``cause`` is ``budget`` or ``paused``. ``release`` marks rows
``released`` and puts those users on the queue in one transaction: the worker then re-plans each against
GenAuth as it is now, and the gate lets a released user's write through outside the budget. Two releases at
once release each user once: the rows are locked as they are chosen (``FOR UPDATE SKIP LOCKED`` on
PostgreSQL; SQLite's write lock on SQLite) and each is flipped only while still ``held``. A user's row goes
when a decision other than ``held`` is recorded for them (``clear``, in the worker's transaction).

A held ``revert`` (trigger ``revert``: ``service.store.reverts``) is released, resumed and cleared as a revert:
it goes back on the queue as a ``revert`` row, only the revert's own decision clears it, and a reconcile held
after it does not replace it (the revert would otherwise wait for nobody).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from service.store.queue import enqueue
from service.store.subjects import REVERT, Subject
from service.store.tables import metadata

holds = sa.Table(
    "holds",
    metadata,
    sa.Column("userpool_id", sa.String(64), nullable=False),
    sa.Column("user_id", sa.String(128), nullable=False),
    sa.Column("held_at", sa.Float, nullable=False),
    sa.Column("cause", sa.String(10), nullable=False),
    sa.Column("reason", sa.String(500), nullable=False),
    sa.Column("trigger", sa.String(100), nullable=False),
    sa.Column("rules", sa.JSON, nullable=False),
    sa.Column("plan", sa.JSON, nullable=False),
    sa.Column("username", sa.String(128), nullable=True),
    sa.Column("state", sa.String(10), nullable=False, server_default="held"),
    sa.Column("released_at", sa.Float, nullable=True),
    sa.Column("release_reason", sa.String(500), nullable=True),
    sa.PrimaryKeyConstraint("userpool_id", "user_id", name="holds_pk"),
    sa.Index("holds_state", "state", "held_at"),
)
"""A user whose write was held; ``plan``: ``{"before": [...], "add": [...], "outcomes": {rule: label}}``."""

HELD = "held"
RELEASED = "released"
BUDGET = "budget"
PAUSED = "paused"
RELEASE_REASON = "release"
"""The work rows' reason for a released user (the decision's trigger)."""
SAMPLE = 20


@dataclass(frozen=True)
class Hold:
    """What a held write would have done."""

    userpool_id: str
    user_id: str
    cause: str
    reason: str
    trigger: str
    rules: tuple[str, ...]
    before: tuple[str, ...]
    add: tuple[str, ...]
    outcomes: Mapping[str, str] = field(default_factory=dict)
    username: str | None = None


def hold(engine: sa.Engine, entry: Hold, *, now: float) -> None:
    """Record (or refresh) the user's hold; a row already ``released`` stays released."""
    values: dict[str, Any] = {
        "userpool_id": entry.userpool_id,
        "user_id": entry.user_id,
        "held_at": now,
        "cause": entry.cause,
        "reason": entry.reason[:500],
        "trigger": entry.trigger[:100],
        "rules": list(entry.rules),
        "plan": {"before": list(entry.before), "add": list(entry.add), "outcomes": dict(entry.outcomes)},
        "username": entry.username,
        "state": HELD,
    }
    refreshed = {key: values[key] for key in ("held_at", "cause", "reason", "trigger", "rules", "plan", "username")}
    with engine.begin() as connection:
        insert = postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert
        statement = insert(holds).values(**values)
        keeps_revert = None if entry.trigger == REVERT else holds.c.trigger != REVERT
        connection.execute(
            statement.on_conflict_do_update(
                index_elements=["userpool_id", "user_id"], set_=refreshed, where=keeps_revert
            )
        )


def is_released(engine: sa.Engine, userpool_id: str, user_id: str) -> bool:
    """Whether an operator released this user's held write (it then goes through outside the budget)."""
    with engine.connect() as connection:
        state = connection.execute(
            sa.select(holds.c.state).where(holds.c.userpool_id == userpool_id, holds.c.user_id == user_id)
        ).scalar()
    return state == RELEASED


def clear(connection: sa.Connection, userpool_id: str, user_id: str, *, revert: bool = False) -> None:
    """The user's hold is over: a decision other than ``held`` was recorded for them (by a revert or not:
    each clears only its own kind of hold)."""
    kind = holds.c.trigger == REVERT if revert else holds.c.trigger != REVERT
    connection.execute(sa.delete(holds).where(holds.c.userpool_id == userpool_id, holds.c.user_id == user_id, kind))


@dataclass(frozen=True)
class Summary:
    """``holds``: how many users are held, per rule and cause, and a sample with their planned change."""

    held: int
    released: int
    per_rule: dict[str, int]
    per_cause: dict[str, int]
    sample: list[dict[str, Any]]


def summary(engine: sa.Engine, *, sample: int = SAMPLE) -> Summary:
    with engine.connect() as connection:
        rows = list(connection.execute(sa.select(holds).order_by(holds.c.held_at, holds.c.user_id)))
    held = [row for row in rows if row.state == HELD]
    per_rule = Counter(rule for row in held for rule in row.rules)
    return Summary(
        held=len(held),
        released=len(rows) - len(held),
        per_rule=dict(sorted(per_rule.items())),
        per_cause=dict(sorted(Counter(row.cause for row in held).items())),
        sample=[_shown(row) for row in held[:sample]],
    )


def held_count(connection: sa.Connection) -> int:
    """Users held now (released ones not counted), for ``/readyz`` and ``/metrics``."""
    count = sa.select(sa.func.count()).select_from(holds).where(holds.c.state == HELD)
    return int(connection.execute(count).scalar_one())


def release(
    engine: sa.Engine, *, reason: str, now: float, rule: str | None = None, limit: int | None = None
) -> list[str]:
    """Mark held users released and enqueue them (see the module docstring); the ids this call released."""
    with engine.begin() as connection:
        chosen = _chosen(connection, rule=rule, limit=limit)
        released: list[tuple[str, str, str]] = []
        for userpool_id, user_id, trigger in chosen:
            flipped = connection.execute(
                sa.update(holds)
                .where(holds.c.userpool_id == userpool_id, holds.c.user_id == user_id, holds.c.state == HELD)
                .values(state=RELEASED, released_at=now, release_reason=reason[:500])
            )
            if flipped.rowcount == 1:
                released.append((userpool_id, user_id, trigger))
        _enqueue(connection, released, now=now)
    return [user_id for _, user_id, _ in released]


def discard(engine: sa.Engine, *, rule: str | None = None) -> list[str]:
    """Drop held users' holds (the next event or sweep plans them again); the ids dropped."""
    with engine.begin() as connection:
        chosen = _chosen(connection, rule=rule, limit=None)
        for userpool_id, user_id, trigger in chosen:
            clear(connection, userpool_id, user_id, revert=trigger == REVERT)
    return [user_id for _, user_id, _ in chosen]


def requeue_paused(engine: sa.Engine, *, now: float) -> int:
    """After a resume: put every user held by the pause (and every released one) back on the queue, where the
    budget decides again."""
    with engine.begin() as connection:
        rows = connection.execute(
            sa.select(holds.c.userpool_id, holds.c.user_id, holds.c.trigger).where(
                sa.or_(holds.c.cause == PAUSED, holds.c.state == RELEASED)
            )
        )
        chosen = [(row.userpool_id, row.user_id, row.trigger) for row in rows]
        _enqueue(connection, chosen, now=now)
    return len(chosen)


def _chosen(connection: sa.Connection, *, rule: str | None, limit: int | None) -> list[tuple[str, str, str]]:
    """Held rows (pool, user, trigger), oldest first, locked for this transaction (rows another release holds
    are skipped)."""
    query = (
        sa.select(holds.c.userpool_id, holds.c.user_id, holds.c.rules, holds.c.trigger)
        .where(holds.c.state == HELD)
        .order_by(holds.c.held_at, holds.c.user_id)
        .with_for_update(skip_locked=True)
    )
    rows = [row for row in connection.execute(query) if rule is None or rule in row.rules]
    return [(row.userpool_id, row.user_id, row.trigger) for row in rows[:limit]]


def _enqueue(connection: sa.Connection, users: Sequence[tuple[str, str, str]], *, now: float) -> None:
    """Put the users back on the queue: a held revert as a revert, anything else to be reconciled."""
    pools: dict[str, list[Subject]] = {}
    for userpool_id, user_id, trigger in users:
        subject = Subject(REVERT, user_id) if trigger == REVERT else Subject.user(user_id)
        pools.setdefault(userpool_id, []).append(subject)
    for userpool_id, subjects in pools.items():
        enqueue(connection, userpool_id, subjects, reason=RELEASE_REASON, now=now, reset=True)


def _shown(row: Any) -> dict[str, Any]:
    plan = row.plan or {}
    return {
        "user_id": row.user_id,
        "username": row.username,
        "held_at": row.held_at,
        "trigger": row.trigger,
        "cause": row.cause,
        "reason": row.reason,
        "rules": list(row.rules),
        "before": plan.get("before", []),
        "add": plan.get("add", []),
        "outcomes": plan.get("outcomes", {}),
    }
