"""Decision records: the trail every evaluation leaves (ARCHITECTURE.md, principle 7).

Written by the worker in the same transaction that finishes the job; read by logs, reports and explain.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import sqlalchemy as sa

from service.store.tables import decisions

ACTIONS = ("none", "enforced", "would-enforce", "unsatisfiable", "failed")


@dataclass(frozen=True)
class Decision:
    """The outcome of reconciling one user once."""

    userpool_id: str
    user_id: str
    trigger: str
    mode: str
    action: str
    rules: tuple[str, ...]
    required: tuple[str, ...]
    before: tuple[str, ...]
    after: tuple[str, ...]
    reason: str
    attempt: int = 1
    outcomes: dict[str, str] = field(default_factory=dict)
    """Rule -> its outcome for this user (``enforce [SMS]``, ``compliant``, ``exempt`` …), matching rules only."""


def record_decision(
    connection: sa.Connection, decision: Decision, *, now: float, started_at: float | None = None
) -> None:
    values: dict[str, Any] = asdict(decision)
    for key in ("rules", "required", "before", "after"):
        values[key] = list(values[key])
    values["reason"] = decision.reason[:1000]
    connection.execute(sa.insert(decisions).values(decided_at=now, started_at=started_at, **values))


def decisions_for_user(engine: sa.Engine, user_id: str, *, limit: int = 50) -> list[dict[str, Any]]:
    """The user's latest decisions, newest first."""
    statement = sa.select(decisions).where(decisions.c.user_id == user_id).order_by(decisions.c.id.desc()).limit(limit)
    with engine.connect() as connection:
        return [dict(row._mapping) for row in connection.execute(statement)]
