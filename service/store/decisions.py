"""Decision records: the trail every evaluation leaves (docs/architecture.md, principle 7).

A decision is enforcement's (``service.enforcement.decisions.Decision``); this module stores one, its fields
as the columns of ``decisions``, and reads one back into it, without importing it (the store sits below
enforcement). Written by the worker in the same transaction that finishes the job; read by logs, reports and
explain. Old decisions are pruned by ``service.store.retention``, which always keeps each user's latest one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, TypeVar

import sqlalchemy as sa

from service.store.tables import decisions

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

_Decision = TypeVar("_Decision")
_ADDED = ("id", "decided_at", "started_at")
"""The columns the store adds to a decision's fields."""
_LISTS = ("rules", "required", "before", "after")
"""Tuples in a decision, JSON lists in its row (``before`` and ``after`` may be None: not read)."""


def record_decision(
    connection: sa.Connection, decision: DataclassInstance, *, now: float, started_at: float | None = None
) -> None:
    """Insert ``decision``, a dataclass whose fields are the table's columns."""
    values: dict[str, Any] = asdict(decision)
    for key in _LISTS:
        values[key] = None if values[key] is None else list(values[key])
    values["reason"] = values["reason"][:1000]
    values["not_effective"] = list(values["not_effective"]) or None
    connection.execute(sa.insert(decisions).values(decided_at=now, started_at=started_at, **values))


def latest_decision(
    connection: sa.Connection, userpool_id: str, user_id: str, *, into: Callable[..., _Decision]
) -> _Decision | None:
    """The user's latest decision (see ``read_decision``), or None."""
    row = connection.execute(
        sa.select(decisions)
        .where(decisions.c.userpool_id == userpool_id, decisions.c.user_id == user_id)
        .order_by(decisions.c.id.desc())
        .limit(1)
    ).first()
    return None if row is None else read_decision(row, into=into)


def read_decision(row: sa.Row[Any], *, into: Callable[..., _Decision]) -> _Decision:
    """A whole ``decisions`` row as ``into(**fields)``, the fields ``record_decision`` stored."""
    values = {key: value for key, value in row._mapping.items() if key not in _ADDED}
    for key in _LISTS:
        values[key] = None if values[key] is None else tuple(values[key])
    values["outcomes"] = dict(values["outcomes"] or {})
    values["not_effective"] = tuple(values.get("not_effective") or ())
    return into(**values)


def decisions_for_user(engine: sa.Engine, user_id: str, *, limit: int = 50) -> list[dict[str, Any]]:
    """The user's latest decisions, newest first."""
    statement = sa.select(decisions).where(decisions.c.user_id == user_id).order_by(decisions.c.id.desc()).limit(limit)
    with engine.connect() as connection:
        return [dict(row._mapping) for row in connection.execute(statement)]
