"""The delivery inbox: records an accepted webhook and enqueues its users in ONE transaction.

Called by the webhook view before it answers 2xx (ARCHITECTURE.md, "durable before 2xx"). If the commit
fails, the exception reaches the view, which answers 5xx so GenAuth may send again.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from service.store.queue import enqueue
from service.store.tables import events


@dataclass(frozen=True)
class Delivery:
    """What the service keeps of one webhook: ids and a digest, never the payload."""

    event_name: str
    userpool_id: str
    user_ids: tuple[str, ...]
    digest: str
    content_type: str
    outcome: str
    """``queued`` (users were enqueued), ``ignored`` (an event the service does not act on) or ``test``."""


def record_delivery(engine: sa.Engine, delivery: Delivery, *, now: float) -> int:
    """Store the event record and the work rows; returns the event id."""
    with engine.begin() as connection:
        event_id = connection.execute(
            sa.insert(events)
            .values(
                received_at=now,
                event_name=delivery.event_name[:100],
                userpool_id=delivery.userpool_id,
                subject_ids=list(delivery.user_ids),
                subject_count=len(delivery.user_ids),
                digest=delivery.digest,
                content_type=delivery.content_type[:60],
                outcome=delivery.outcome,
            )
            .returning(events.c.id)
        ).scalar_one()
        enqueue(
            connection,
            delivery.userpool_id,
            delivery.user_ids,
            reason=delivery.event_name[:100],
            now=now,
            event_id=event_id,
        )
    return int(event_id)
