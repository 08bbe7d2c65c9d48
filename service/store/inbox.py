"""The delivery inbox: records an accepted webhook and its consequences for the queue in ONE transaction.

Called by the webhook view before it answers 2xx (ARCHITECTURE.md, "durable before 2xx"). If the commit
fails, the exception reaches the view, which answers 5xx so GenAuth may send again.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from service.store.decisions import Decision, record_decision
from service.store.queue import drop_pending, enqueue
from service.store.tables import events

EXPANSION_KINDS = ("department", "group")

# Built once, values bound per call: SQLAlchemy then reuses the compiled statement (see queue._UPSERT).
_INSERT_EVENT = sa.insert(events).returning(events.c.id)


@dataclass(frozen=True)
class Delivery:
    """What the service keeps of one webhook: ids and a digest, never the payload."""

    event_name: str
    userpool_id: str
    user_ids: tuple[str, ...]
    digest: str
    content_type: str
    outcome: str
    """``queued`` (the queue changed), ``ignored`` (an event the service does not act on) or ``test``."""
    departments: tuple[str, ...] = ()
    """Department ids to expand into their members (sub-departments included)."""
    groups: tuple[str, ...] = ()
    """Group ids to expand into their members."""
    removed_user_ids: tuple[str, ...] = ()
    """Users deleted or archived in GenAuth: their pending work is dropped."""

    @property
    def subject_ids(self) -> list[str]:
        """Every subject, expansions prefixed with their kind (``department:<id>``), for the event record."""
        return [
            *self.user_ids,
            *(f"department:{d}" for d in self.departments),
            *(f"group:{g}" for g in self.groups),
            *self.removed_user_ids,
        ]


def record_delivery(engine: sa.Engine, delivery: Delivery, *, now: float) -> int:
    """Store the event record, the work rows and any dropped work; returns the event id."""
    reason = delivery.event_name[:100]
    with engine.begin() as connection:
        subjects = delivery.subject_ids
        event_id = connection.execute(
            _INSERT_EVENT,
            {
                "received_at": now,
                "event_name": reason,
                "userpool_id": delivery.userpool_id,
                "subject_ids": subjects,
                "subject_count": len(subjects),
                "digest": delivery.digest,
                "content_type": delivery.content_type[:60],
                "outcome": delivery.outcome,
            },
        ).scalar_one()
        pool = delivery.userpool_id
        enqueue(connection, pool, delivery.user_ids, reason=reason, now=now, event_id=event_id)
        enqueue(connection, pool, delivery.departments, reason=reason, now=now, event_id=event_id, kind="department")
        enqueue(connection, pool, delivery.groups, reason=reason, now=now, event_id=event_id, kind="group")
        if delivery.removed_user_ids:
            drop_pending(connection, pool, delivery.removed_user_ids, now=now)
            for user_id in delivery.removed_user_ids:
                decision = Decision(
                    userpool_id=pool,
                    user_id=user_id,
                    trigger=reason,
                    mode="enforce",
                    action="none",
                    rules=(),
                    required=(),
                    before=(),
                    after=(),
                    reason=f"{reason}: the user left the pool's active users; pending work dropped",
                )
                record_decision(connection, decision, now=now)
    return int(event_id)
