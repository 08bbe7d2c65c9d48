"""History retention: event records and superseded decisions older than ENFORCER_RETENTION_DAYS are deleted.

Every delivery leaves an event row and every reconcile a decision row; kept forever they fill the volume
(about 234 B per delivery and 167 B per decision). The worker calls ``prune_history`` now and then
(``service.worker.pruning``). It deletes in small batches, each its own short transaction, so neither intake
nor the worker waits behind it, and it always keeps each user's latest decision: the report counts users by
their latest decision, so it reads the same before and after a prune. The exception is a user GenAuth
confirmed removed: once their ``removed`` decision is itself older than the retention, it goes too, and the
user leaves the report.

Work rows are never pruned here: a dead letter stays until it is replayed.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from service.store.tables import decisions, events

DAY = 86400.0
BATCH_SIZE = 500


@dataclass(frozen=True)
class Pruned:
    """Rows one prune deleted, per table; ``is_complete`` is False when it stopped at its batch limit."""

    events: int = 0
    decisions: int = 0
    is_complete: bool = True


def prune_history(
    engine: sa.Engine, *, older_than: float, batch_size: int = BATCH_SIZE, max_batches: int = 20
) -> Pruned:
    """Delete event records received, and superseded decisions made, before ``older_than`` (UNIX time).

    At most ``max_batches`` batches of ``batch_size`` rows per table; call again while not ``is_complete``.
    """
    pruned_events, events_done = _in_batches(engine, _events_batch(older_than, batch_size), batch_size, max_batches)
    pruned_decisions, decisions_done = _in_batches(
        engine, _decisions_batch(older_than, batch_size), batch_size, max_batches
    )
    return Pruned(events=pruned_events, decisions=pruned_decisions, is_complete=events_done and decisions_done)


def _in_batches(engine: sa.Engine, statement: sa.Delete, batch_size: int, max_batches: int) -> tuple[int, bool]:
    total = 0
    for _ in range(max_batches):
        with engine.begin() as connection:
            deleted = connection.execute(statement).rowcount
        total += deleted
        if deleted < batch_size:
            return total, True
    return total, False


def _events_batch(older_than: float, batch_size: int) -> sa.Delete:
    oldest = sa.select(events.c.id).where(events.c.received_at < older_than).order_by(events.c.id).limit(batch_size)
    return sa.delete(events).where(events.c.id.in_(oldest.scalar_subquery()))


def _decisions_batch(older_than: float, batch_size: int) -> sa.Delete:
    old, newer = decisions.alias("old"), decisions.alias("newer")
    is_superseded = (
        sa.select(newer.c.id)
        .where(newer.c.userpool_id == old.c.userpool_id, newer.c.user_id == old.c.user_id, newer.c.id > old.c.id)
        .exists()
    )
    prunable = (
        sa.select(old.c.id)
        .where(old.c.decided_at < older_than, sa.or_(is_superseded, old.c.action == "removed"))
        .order_by(old.c.id)
        .limit(batch_size)
    )
    return sa.delete(decisions).where(decisions.c.id.in_(prunable.scalar_subquery()))
