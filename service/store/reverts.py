"""Reverts: which of the service's own writes an operator asked to undo, and whether each was (docs/operations.md,
"Revert").

A revert request picks the ``enforced`` decisions in its scope (``writes_in_scope``: a time range, a rule, a
user, a sweep) and claims each write once in ``reverted_writes`` (one row per decision, inserted with
``ON CONFLICT DO NOTHING``): two reverts at once, or the same revert twice, undo each write once. The users
whose writes it claimed go on the queue as ``revert`` work rows, so a worker undoes them with the queue's lease,
backoff and dead letters, through the write gate (``service.enforcement.reverting``). When the worker is done
it settles the user's claimed rows (``settle``, in the transaction that records its decision): ``reverted``,
or ``left`` with why (the account is protected, or nothing the service wrote is still as it wrote it).

Only a decision with ``changes`` (revision 0015 on) says exactly what its write changed; an older write is
listed as not revertible and never claimed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from service.store.queue import enqueue
from service.store.subjects import REVERT, Subject
from service.store.sweeps import RECONCILE_REASON, sweeps
from service.store.tables import decisions, metadata

reverted_writes = sa.Table(
    "reverted_writes",
    metadata,
    sa.Column("decision_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("userpool_id", sa.String(64), nullable=False),
    sa.Column("user_id", sa.String(128), nullable=False),
    sa.Column("requested_at", sa.Float, nullable=False),
    sa.Column("reason", sa.String(500), nullable=False),
    sa.Column("state", sa.String(10), nullable=False, server_default="pending"),
    sa.Column("finished_at", sa.Float, nullable=True),
    sa.Column("left_alone", sa.JSON(none_as_null=True), nullable=True),
    sa.Index("reverted_writes_user", "userpool_id", "user_id", "state"),
)
"""One row per write a revert claimed; ``state``: ``pending``, ``reverted`` or ``left`` (``left_alone``: why)."""

PENDING = "pending"
REVERTED = "reverted"
LEFT = "left"
REVERT_REASON = REVERT
"""The work rows' reason for a revert (the revert decision's trigger), and a held revert's trigger."""


@dataclass(frozen=True)
class RevertScope:
    """Which writes of the service a revert covers; every given part must hold (all of them: ``and``)."""

    since: float | None = None
    until: float | None = None
    rule: str | None = None
    user_id: str | None = None
    sweep: int | None = None

    @property
    def is_empty(self) -> bool:
        return all(value is None for value in (self.since, self.until, self.rule, self.user_id, self.sweep))

    def as_scope(self) -> dict[str, Any]:
        return {"since": self.since, "until": self.until, "rule": self.rule, "user": self.user_id, "sweep": self.sweep}


@dataclass(frozen=True)
class Write:
    """One write of the service, as its decision recorded it."""

    decision_id: int
    userpool_id: str
    user_id: str
    username: str | None
    decided_at: float
    rules: tuple[str, ...]
    outcomes: dict[str, str]
    changes: dict[str, Any] | None
    """What the write changed (None: recorded before revision 0015, not revertible)."""
    claimed: str | None = None
    """The state of an earlier revert's claim on it (None: none)."""


def writes_in_scope(engine: sa.Engine, scope: RevertScope) -> list[Write]:
    """The service's writes in ``scope``, oldest first, each with any earlier revert's claim on it."""
    statement = (
        sa.select(decisions, reverted_writes.c.state.label("claimed"))
        .outerjoin(reverted_writes, reverted_writes.c.decision_id == decisions.c.id)
        .where(decisions.c.action == "enforced")
        .order_by(decisions.c.id)
    )
    with engine.connect() as connection:
        if scope.sweep is not None:
            sweep = connection.execute(sa.select(sweeps).where(sweeps.c.id == scope.sweep)).first()
            if sweep is None:
                return []
            statement = statement.where(
                decisions.c.trigger == RECONCILE_REASON, decisions.c.decided_at >= sweep.started_at
            )
            if sweep.finished_at is not None:
                statement = statement.where(decisions.c.decided_at <= sweep.finished_at)
        if scope.since is not None:
            statement = statement.where(decisions.c.decided_at >= scope.since)
        if scope.until is not None:
            statement = statement.where(decisions.c.decided_at < scope.until)
        if scope.user_id is not None:
            statement = statement.where(decisions.c.user_id == scope.user_id)
        rows = list(connection.execute(statement))
    found = [_write(row, row.claimed) for row in rows]
    return [write for write in found if scope.rule is None or scope.rule in write.rules]


def latest_rules(engine: sa.Engine, user_ids: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """Each user's rules at their latest decision (the rules that matched them last)."""
    wanted = list(dict.fromkeys(user_ids))
    latest: dict[str, tuple[str, ...]] = {}
    with engine.connect() as connection:
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            newest = (
                sa.select(sa.func.max(decisions.c.id))
                .where(decisions.c.user_id.in_(chunk))
                .group_by(decisions.c.user_id)
            )
            rows = connection.execute(
                sa.select(decisions.c.user_id, decisions.c.rules).where(decisions.c.id.in_(newest.scalar_subquery()))
            )
            latest.update((row.user_id, tuple(row.rules or ())) for row in rows)
    return latest


def claim(engine: sa.Engine, writes: Sequence[Write], *, reason: str, now: float) -> list[Write]:
    """Claim ``writes`` for this revert and put their users on the queue, in one transaction; the writes this
    call claimed (one another revert claimed first is not among them)."""
    claimed: list[Write] = []
    with engine.begin() as connection:
        insert = postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert
        for write in writes:
            statement = insert(reverted_writes).values(
                decision_id=write.decision_id,
                userpool_id=write.userpool_id,
                user_id=write.user_id,
                requested_at=now,
                reason=reason[:500],
                state=PENDING,
            )
            inserted = statement.on_conflict_do_nothing(index_elements=["decision_id"]).returning(
                reverted_writes.c.decision_id
            )
            if connection.execute(inserted).first() is not None:  # rowcount is not reliable here on psycopg
                claimed.append(write)
        pools: dict[str, list[Subject]] = {}
        for write in claimed:
            pools.setdefault(write.userpool_id, []).append(Subject(REVERT, write.user_id))
        for userpool_id, subjects in pools.items():
            enqueue(connection, userpool_id, subjects, reason=REVERT_REASON, now=now, reset=True)
    return claimed


def pending(engine: sa.Engine, userpool_id: str, user_id: str) -> list[Write]:
    """The user's claimed writes not yet undone, newest first (the order they are undone in)."""
    statement = (
        sa.select(decisions)
        .join(reverted_writes, reverted_writes.c.decision_id == decisions.c.id)
        .where(
            reverted_writes.c.userpool_id == userpool_id,
            reverted_writes.c.user_id == user_id,
            reverted_writes.c.state == PENDING,
        )
        .order_by(decisions.c.id.desc())
    )
    with engine.connect() as connection:
        rows = list(connection.execute(statement))
    return [_write(row, PENDING) for row in rows]


def outcome(engine: sa.Engine, decision_ids: Sequence[int]) -> list[dict[str, Any]]:
    """How each claimed write ended (``state``, ``left_alone``), in the order of ``decision_ids``."""
    with engine.connect() as connection:
        rows = {
            row.decision_id: row
            for row in connection.execute(
                sa.select(reverted_writes).where(reverted_writes.c.decision_id.in_(list(decision_ids)))
            )
        }
    return [
        {
            "decision_id": decision_id,
            "user_id": rows[decision_id].user_id,
            "state": rows[decision_id].state,
            "left_alone": list(rows[decision_id].left_alone or ()),
        }
        for decision_id in decision_ids
        if decision_id in rows
    ]


def settle(
    connection: sa.Connection, decision_ids: Sequence[int], *, state: str, left_alone: Sequence[str], now: float
) -> None:
    """The claimed writes are done with: ``reverted`` (``left_alone``: what was changed since and kept) or
    ``left`` (nothing written: why)."""
    if not decision_ids:
        return
    connection.execute(
        sa.update(reverted_writes)
        .where(reverted_writes.c.decision_id.in_(list(decision_ids)), reverted_writes.c.state == PENDING)
        .values(state=state, finished_at=now, left_alone=list(left_alone) or None)
    )


def describe(changes: dict[str, Any] | None) -> list[str]:
    """What undoing a write with these recorded ``changes`` would do, in words (``revert --dry-run``)."""
    if changes is None:
        return []
    said = [
        f"remove the {entry['factor']} entry the service added"
        if "was" not in entry
        else f"set {entry['factor']} back to status {entry['was']!r}"
        for entry in changes.get("entries", ())
    ]
    said.extend(f"clear {key}, which the service filled" for key in changes.get("fields", {}))
    return said


def _write(row: Any, claimed: str | None) -> Write:
    return Write(
        decision_id=int(row.id),
        userpool_id=row.userpool_id,
        user_id=row.user_id,
        username=row.username,
        decided_at=float(row.decided_at),
        rules=tuple(row.rules or ()),
        outcomes=dict(row.outcomes or {}),
        changes=row.changes,
        claimed=claimed,
    )
