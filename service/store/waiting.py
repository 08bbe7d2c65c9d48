"""What ``mfa-enforcer reconcile --wait`` reads while it follows a sweep: how many users the sweep handed to the
queue are still waiting, and, once it is over, each user's latest decision the sweep triggered."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TypeVar

import sqlalchemy as sa

from service.store.decisions import read_decision
from service.store.subjects import USER
from service.store.sweeps import RECONCILE_REASON
from service.store.tables import decisions, work

_Decision = TypeVar("_Decision")


def users_waiting(engine: sa.Engine) -> int:
    """Users a sweep put on the queue as ordinary rows (they failed on their page) still waiting to be decided."""
    statement = sa.select(sa.func.count()).where(
        work.c.kind == USER, work.c.reason == RECONCILE_REASON, work.c.state == "pending"
    )
    with engine.connect() as connection:
        return int(connection.execute(statement).scalar_one())


def sweep_decisions(engine: sa.Engine, since: float, *, into: Callable[..., _Decision]) -> Iterator[_Decision]:
    """Each user's latest ``reconcile`` decision made since ``since`` (as ``into(**fields)``), streamed."""
    latest = (
        sa.select(sa.func.max(decisions.c.id))
        .where(decisions.c.trigger == RECONCILE_REASON, decisions.c.decided_at >= since)
        .group_by(decisions.c.user_id)
    )
    with engine.connect() as connection:
        rows = connection.execution_options(yield_per=1000).execute(
            sa.select(decisions).where(decisions.c.id.in_(latest))
        )
        for row in rows:
            yield read_decision(row, into=into)
