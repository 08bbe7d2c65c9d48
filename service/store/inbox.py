"""The delivery inbox: records an accepted webhook and its consequences for the queue in ONE transaction.

Called by the webhook view before it answers 2xx (docs/architecture.md, principle 2: "durable before
2xx"). If the commit fails, the exception reaches the view, which answers 5xx so GenAuth may send again.
Deliveries that arrive together share a transaction (``Inbox``, group commit): each is answered only
after that commit, but the flush and the lock are paid once per batch instead of once per delivery.

A delivery about one user makes its row ``PRIORITY_EVENT`` (claimed first); the users of a list event and
the departments and groups to expand are ``PRIORITY_BULK``. The event record lists the subjects of a delivery
that names at most ``MAX_LISTED_SUBJECTS`` (``replay --since`` reads them); a longer list is kept as its count
and a SHA-256 digest, so one delivery cannot make a large event row. A delivery that says the organisation
tree changed also moves the pool's tree generation in that transaction (``service.store.organisation_changes``),
so the processes that cache the tree see the change as soon as the event is answered.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from service.store import organisation_changes
from service.store.committing import GroupCommit
from service.store.driver import driver_cursor, driver_sql
from service.store.queue import PRIORITY_BULK, PRIORITY_EVENT, upsert_work, work_row
from service.store.subjects import Subject
from service.store.wakeup import Wakeup

MAX_LISTED_SUBJECTS = 100
"""Longest subject list an event record keeps; a longer one is kept as its count and digest."""

# Plain driver SQL (see service.store.driver): this runs once per webhook. Columns as in tables.events.
_INSERT_EVENT_TEMPLATE = """
INSERT INTO events (received_at, event_name, userpool_id, subject_ids, subject_count, digest, content_type, outcome,
                    subjects_digest)
VALUES (:received_at, :event_name, :userpool_id, {subject_ids}, :subject_count, :digest, :content_type, :outcome,
        :subjects_digest)
RETURNING id
"""
_INSERT_EVENT_SQL = {
    "sqlite": _INSERT_EVENT_TEMPLATE.format(subject_ids=":subject_ids"),
    "postgresql": _INSERT_EVENT_TEMPLATE.format(subject_ids="CAST(:subject_ids AS JSON)"),
}


@dataclass(frozen=True)
class Delivery:
    """What the service keeps of one webhook: ids and a digest, never the payload."""

    event_name: str
    userpool_id: str
    subjects: tuple[Subject, ...]
    """Users, and departments and groups to expand into their members (sub-departments included)."""
    digest: str
    content_type: str
    outcome: str
    """``queued`` (the queue changed), ``ignored`` (an event the service does not act on) or ``test``."""
    changes_tree: bool = False
    """The event changed the organisation tree: the pool's tree generation moves with its record."""

    @property
    def priority(self) -> int:
        """``PRIORITY_EVENT`` for a delivery about one user, else ``PRIORITY_BULK`` (see service.store.queue)."""
        if len(self.subjects) == 1 and self.subjects[0].is_user:
            return PRIORITY_EVENT
        return PRIORITY_BULK


def record_delivery(engine: sa.Engine, delivery: Delivery, *, now: float) -> int:
    """Store the event record, the work rows and any dropped work; returns the event id."""
    return record_deliveries(engine, [(delivery, now)])[0]


def record_deliveries(engine: sa.Engine, received: Sequence[tuple[Delivery, float]]) -> list[int]:
    """Store several deliveries (each with the time it was received) in ONE transaction; returns their event ids."""
    with engine.begin() as connection:
        return write_deliveries(connection, received)


def write_deliveries(connection: sa.Connection, received: Sequence[tuple[Delivery, float]]) -> list[int]:
    """Write deliveries in the caller's transaction; returns their event ids.

    The same rows as recording each in turn, in the same order, so a user named by two of them gets the later
    one's reason and event id; but one commit for all (see ``Inbox``).
    """
    event_ids = _insert_events(connection, received)
    rows: list[dict[str, object]] = []
    for (delivery, now), event_id in zip(received, event_ids, strict=True):
        reason, priority = delivery.event_name[:100], delivery.priority
        rows.extend(
            work_row(delivery.userpool_id, subject, reason=reason, now=now, event_id=event_id, priority=priority)
            for subject in dict.fromkeys(delivery.subjects)
        )
    upsert_work(connection, rows)
    changed = [(delivery.userpool_id, now) for delivery, now in received if delivery.changes_tree]
    if changed:
        organisation_changes.bump(connection, (pool for pool, _ in changed), now=max(now for _, now in changed))
    return event_ids


def _insert_events(connection: sa.Connection, received: Sequence[tuple[Delivery, float]]) -> list[int]:
    parameters = []
    for delivery, now in received:
        subjects = [subject.encode() for subject in delivery.subjects]
        listed = json.dumps(subjects)
        subjects_digest = None
        if len(subjects) > MAX_LISTED_SUBJECTS:
            subjects_digest = hashlib.sha256(listed.encode("utf-8")).hexdigest()
            listed = "[]"
        parameters.append(
            {
                "received_at": now,
                "event_name": delivery.event_name[:100],
                "userpool_id": delivery.userpool_id,
                "subject_ids": listed,
                "subject_count": len(subjects),
                "digest": delivery.digest,
                "content_type": delivery.content_type[:60],
                "outcome": delivery.outcome,
                "subjects_digest": subjects_digest,
            }
        )
    dialect = connection.dialect
    sql = driver_sql(_INSERT_EVENT_SQL[dialect.name], dialect.name)
    with driver_cursor(connection) as cursor:
        if dialect.name == "postgresql" and len(parameters) > 1:
            # One round trip for all (psycopg pipelines executemany); each statement's id in order.
            cursor.executemany(sql, parameters, returning=True)
            event_ids = [int(cursor.fetchone()[0])]
            while cursor.nextset():
                event_ids.append(int(cursor.fetchone()[0]))
            return event_ids
        event_ids = []
        for values in parameters:
            cursor.execute(sql, values)
            event_ids.append(int(cursor.fetchone()[0]))
        return event_ids


def _is_item_error(error: BaseException) -> bool:
    """A failed batch is split, and each delivery written alone, unless the error is the database's (a lost
    connection, the lock, a timeout): then every delivery in it would fail again. Anything else may be one
    delivery's fault (a value the database or the driver refuses) and must not fail its neighbours."""
    return isinstance(error, Exception) and not isinstance(error, sa.exc.OperationalError | TimeoutError)


class Inbox:
    """Records deliveries from many request threads with group commit: one transaction per batch.

    One per process (``create_app`` makes it). ``record`` returns only once the delivery is committed, and then
    wakes one of the process's idle workers (``wakeup``, see ``service.store.wakeup``).
    """

    def __init__(
        self, engine: sa.Engine, *, wakeup: Wakeup | None = None, max_batch: int = 64, wait_timeout: float = 30.0
    ) -> None:
        self.engine = engine
        self.wakeup = wakeup
        self.commits: GroupCommit[tuple[Delivery, float], int, sa.Connection] = GroupCommit(
            write_deliveries,
            transaction=engine.begin,
            is_item_error=_is_item_error,
            max_batch=max_batch,
            wait_timeout=wait_timeout,
        )

    def record(self, delivery: Delivery, *, now: float) -> int:
        """Store one delivery (see ``record_delivery``); returns its event id once committed."""
        event_id = self.commits.submit((delivery, now))
        if self.wakeup is not None and delivery.subjects:
            self.wakeup.committed()
        return event_id
