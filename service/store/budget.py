"""The change budget and the pause switch, shared by every process through the database (docs/operations.md,
"Brakes").

``take_slot`` is the budget's one check: in one transaction it counts the users written in the sliding window
(``change_slots``) and, when the count is under the limit, records this one. Two workers must never both take
the last slot, so the transaction first locks the ``brakes`` row named ``budget`` (``SELECT … FOR UPDATE`` on
PostgreSQL; on SQLite every transaction already begins with ``BEGIN IMMEDIATE``, the database's one write
lock, ``service.store.engine``). Slots older than the longest window are deleted as it goes.

The pause switch is the ``brakes`` row named ``pause``: ``running`` or ``paused``, with who set it and why.
Each process caches it for a moment (``service.enforcement.brakes``); the store only reads and writes it.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from service.settings import BUDGET_WINDOWS, ChangeBudget
from service.store import holds
from service.store.sweeps import sweeps
from service.store.tables import Id, metadata

change_slots = sa.Table(
    "change_slots",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("taken_at", sa.Float, nullable=False, index=True),
    sa.Column("userpool_id", sa.String(64), nullable=False),
    sa.Column("user_id", sa.String(128), nullable=False),
)
"""One row per user written to GenAuth within the budget, kept for the longest window."""

brakes = sa.Table(
    "brakes",
    metadata,
    sa.Column("name", sa.String(20), primary_key=True),
    sa.Column("state", sa.String(10), nullable=False),
    sa.Column("reason", sa.String(500), nullable=True),
    sa.Column("actor", sa.String(200), nullable=True),
    sa.Column("changed_at", sa.Float, nullable=False),
)
"""``budget`` (the row budget checks lock) and ``pause`` (``running`` or ``paused``), made by migration 0012."""

BUDGET = "budget"
PAUSE = "pause"
PAUSED = "paused"
RUNNING = "running"
LONGEST_WINDOW = max(BUDGET_WINDOWS.values())


@dataclass(frozen=True)
class Slot:
    """The answer of one budget check: whether the write may go, and the window's count and limit."""

    taken: bool
    used: int
    limit: int | None


def take_slot(engine: sa.Engine, budget: ChangeBudget, userpool_id: str, user_id: str, *, now: float) -> Slot:
    """One slot of ``budget`` for writing ``user_id``, if the window has one left (see the module docstring)."""
    with engine.begin() as connection:
        connection.execute(sa.select(brakes.c.name).where(brakes.c.name == BUDGET).with_for_update()).first()
        limit = budget.limit(_in_scope(connection))
        used = _used(connection, budget.window, now=now)
        if limit is not None and used >= limit:
            return Slot(taken=False, used=used, limit=limit)
        connection.execute(sa.delete(change_slots).where(change_slots.c.taken_at < now - LONGEST_WINDOW))
        connection.execute(sa.insert(change_slots).values(taken_at=now, userpool_id=userpool_id, user_id=user_id))
        return Slot(taken=True, used=used + 1, limit=limit)


def used_slots(engine: sa.Engine, budget: ChangeBudget, *, now: float) -> Slot:
    """The window's count and limit, for ``holds`` and ``report`` (takes nothing)."""
    with engine.connect() as connection:
        limit = None if budget.is_off else budget.limit(_in_scope(connection))
        return Slot(taken=False, used=_used(connection, budget.window, now=now), limit=limit)


def _used(connection: sa.Connection, window: float, *, now: float) -> int:
    count = sa.select(sa.func.count()).select_from(change_slots).where(change_slots.c.taken_at > now - window)
    return int(connection.execute(count).scalar_one())


def _in_scope(connection: sa.Connection) -> int:
    """Users in scope of the rules: as the latest sweep (running or finished) counted them; 0 before any."""
    latest = sa.select(sweeps.c.in_scope).where(sweeps.c.in_scope.is_not(None)).order_by(sweeps.c.id.desc()).limit(1)
    return int(connection.execute(latest).scalar() or 0)


@dataclass(frozen=True)
class PauseState:
    """The pause switch as stored."""

    paused: bool
    reason: str | None = None
    actor: str | None = None
    changed_at: float = 0.0


def pause_state(connection: sa.Connection) -> PauseState:
    row = connection.execute(sa.select(brakes).where(brakes.c.name == PAUSE)).first()
    if row is None:
        return PauseState(paused=False)
    return PauseState(paused=row.state == PAUSED, reason=row.reason, actor=row.actor, changed_at=row.changed_at)


def set_paused(engine: sa.Engine, paused: bool, *, reason: str, actor: str, now: float) -> bool:
    """Set the pause switch; False when it was already in that state (nothing changed)."""
    state = PAUSED if paused else RUNNING
    with engine.begin() as connection:
        result = connection.execute(
            sa.update(brakes)
            .where(brakes.c.name == PAUSE, brakes.c.state != state)
            .values(state=state, reason=reason[:500], actor=actor[:200], changed_at=now)
        )
        return result.rowcount == 1


def brake_gauges(engine: sa.Engine) -> dict[str, float | None]:
    """For ``/metrics``: users held, and whether writes are paused."""
    with engine.connect() as connection:
        return {"held_users": holds.held_count(connection), "writes_paused": float(pause_state(connection).paused)}


def brake_readiness(engine: sa.Engine) -> dict[str, object]:
    """For ``/readyz`` (never a reason to be unready): ``holding`` (users held), ``paused`` and, while paused,
    ``paused_reason``."""
    with engine.connect() as connection:
        pause = pause_state(connection)
        shown: dict[str, object] = {"holding": holds.held_count(connection), "paused": pause.paused}
    if pause.paused:
        shown["paused_reason"] = pause.reason or ""
    return shown
